//! Reading heap profiles from files: pprof (gzipped or raw `profile.proto`)
//! and folded stacks, into a [`Snapshot`] every writer and [`Snapshot::diff`]
//! already understand.
//!
//! Profiles memprof wrote read whole; a heap profile another program wrote
//! (Go's `pprof.WriteHeapProfile`, jemalloc_pprof's dumps, gperftools'
//! through `pprof -proto`) reads as far as its format allows: the sample
//! types it has (of `inuse_space`, `inuse_objects`, `alloc_space`,
//! `alloc_objects`, and the legacy `space`/`objects`), its function names,
//! and for unsymbolized addresses their binary and offset. Anything else
//! is an error that says what was wrong.
//!
//! The input is outside data and may be hostile: a truncated file, garbage,
//! a gzip bomb, indexes pointing nowhere. Reading never panics, and its
//! memory is bounded by [`ReadLimits`]: the decompressed bytes are capped,
//! the top-level message is read one field at a time (never held whole),
//! and what the decoded tables hold is counted against a second cap.

mod folded_read;
mod pprof_read;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::human::format_bytes;
use crate::profile::Snapshot;

pub use folded_read::read_folded;
pub use pprof_read::read_pprof_profile;

/// How much reading one profile may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadLimits {
    /// The most bytes a profile may have once decompressed (the file's own
    /// size when it is not compressed). A gzip bomb stops here.
    pub max_input_bytes: u64,
    /// The most memory the decoded tables (samples, locations, functions,
    /// strings) may take, as counted while they are read.
    pub max_table_bytes: u64,
}

impl ReadLimits {
    /// The default for both caps: 512 MiB, far above any real heap profile
    /// (10,000 stacks make a few MiB) and below what a bomb would take.
    pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;

    /// Both caps set to `bytes`.
    pub fn with_max_bytes(bytes: u64) -> ReadLimits {
        ReadLimits {
            max_input_bytes: bytes,
            max_table_bytes: bytes,
        }
    }
}

impl Default for ReadLimits {
    fn default() -> ReadLimits {
        ReadLimits::with_max_bytes(ReadLimits::DEFAULT_MAX_BYTES)
    }
}

/// The formats a profile file may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProfileFormat {
    /// `profile.proto`, gzipped or not.
    Pprof,
    /// Folded stacks (`root;...;leaf count` lines), read as in-use bytes.
    Folded,
}

/// A profile read from a file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProfileFile {
    /// Its stacks: leaf first, values in the four estimates (those the
    /// file has no sample type for are 0).
    pub snapshot: Snapshot,
    /// The format it was in.
    pub format: ProfileFormat,
    /// The sample types the file declared (`inuse_space/bytes`, ...); for
    /// folded text, `inuse_space/bytes`.
    pub sample_types: Vec<String>,
}

/// Why a profile could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProfileError {
    /// Reading the input failed.
    Io(io::Error),
    /// The gzip stream is truncated or corrupt.
    Gzip(io::Error),
    /// The input decompresses to more than the cap
    /// ([`ReadLimits::max_input_bytes`]).
    TooLarge {
        /// The cap.
        limit: u64,
        /// What gave it away (`field 6 at byte 0 claims 2097152 bytes`).
        evidence: String,
    },
    /// The decoded tables would take more than
    /// [`ReadLimits::max_table_bytes`].
    TablesTooLarge {
        /// The cap.
        limit: u64,
    },
    /// The bytes are not a protobuf message of the shape `profile.proto`
    /// says: what is wrong and at which byte.
    Malformed(String),
    /// A field points at a string, location, function or mapping the
    /// profile does not have.
    BadReference(String),
    /// A valid profile, but not of the heap: none of its sample types is
    /// one a heap profile has.
    NotHeap {
        /// The sample types it has, `type/unit`, comma-separated.
        sample_types: String,
    },
    /// A line of folded text that is not `frames count`.
    FoldedLine {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::Io(e) => write!(f, "cannot read it: {e}"),
            ProfileError::Gzip(e) => write!(f, "not a complete gzip stream: {e}"),
            ProfileError::TooLarge { limit, evidence } => write!(
                f,
                "decompresses to more than {} ({evidence}), the cap on a profile's size",
                format_bytes(*limit)
            ),
            ProfileError::TablesTooLarge { limit } => write!(
                f,
                "its samples and tables need more than {} of memory, the cap on reading a profile",
                format_bytes(*limit)
            ),
            ProfileError::Malformed(what) => write!(f, "not a pprof profile: {what}"),
            ProfileError::BadReference(what) => write!(f, "a broken pprof profile: {what}"),
            ProfileError::NotHeap { sample_types } => write!(
                f,
                "not a heap profile: its sample types are {sample_types}, none of \
                 inuse_space, inuse_objects, alloc_space, alloc_objects, space or objects"
            ),
            ProfileError::FoldedLine { line, what } => {
                write!(f, "not folded stacks: line {line}: {what}")
            }
        }
    }
}

impl std::error::Error for ProfileError {}

/// A [`ProfileError`] with the file it came from.
#[derive(Debug)]
pub struct ProfileFileError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong.
    pub error: ProfileError,
}

impl fmt::Display for ProfileFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for ProfileFileError {}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a profile file: pprof when it is gzipped, is named `.pb`, `.pb.gz`
/// or `.pprof`, or is not text; folded stacks when it is named `.folded`
/// or `.txt`, or its first line ends in a count.
///
/// # Errors
///
/// A [`ProfileFileError`] naming the file and what was wrong with it.
pub fn read_profile_file(
    path: &Path,
    limits: &ReadLimits,
) -> Result<ProfileFile, ProfileFileError> {
    let fail = |error| ProfileFileError {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::open(path).map_err(|e| fail(ProfileError::Io(e)))?;
    let mut head = [0u8; 512];
    let head_len = read_head(&mut file, &mut head).map_err(|e| fail(ProfileError::Io(e)))?;
    let head = &head[..head_len];
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(ProfileError::Io(e)))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let folded = !head.starts_with(&GZIP_MAGIC)
        && (name.ends_with(".folded")
            || name.ends_with(".txt")
            || (!name.ends_with(".pb") && !name.ends_with(".pprof") && looks_folded(head)));
    if folded {
        let snapshot = read_folded(BufReader::new(file), limits).map_err(fail)?;
        return Ok(ProfileFile {
            snapshot,
            format: ProfileFormat::Folded,
            sample_types: vec!["inuse_space/bytes".to_string()],
        });
    }
    let (snapshot, sample_types) = read_pprof_profile(file, limits).map_err(fail)?;
    Ok(ProfileFile {
        snapshot,
        format: ProfileFormat::Pprof,
        sample_types,
    })
}

/// Fills `head` from the start of `file` as far as it goes.
fn read_head(file: &mut File, head: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether the first line of `head` is UTF-8 text ending in a number after
/// a space: a folded stack.
fn looks_folded(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    line.trim_end()
        .rsplit_once(' ')
        .is_some_and(|(frames, count)| !frames.is_empty() && count.parse::<f64>().is_ok())
}

/// A reader that fails with [`ProfileError::TooLarge`] (inside an
/// `io::Error`) once more than `limit` bytes come through.
struct Capped<R> {
    inner: R,
    remaining: u64,
}

/// The marker inside the `io::Error` [`Capped`] returns.
#[derive(Debug)]
struct PastCap;

impl fmt::Display for PastCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("past the cap")
    }
}

impl std::error::Error for PastCap {}

impl<R: Read> Capped<R> {
    fn new(inner: R, limit: u64) -> Capped<R> {
        Capped {
            inner,
            remaining: limit,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => Err(io::Error::other(PastCap)),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The error for an `io::Error` from reading through [`Capped`]: the cap,
/// or the gzip stream's or the input's own error.
fn input_error(e: io::Error, limit: u64, gzipped: bool) -> ProfileError {
    if e.get_ref().is_some_and(|inner| inner.is::<PastCap>()) {
        return ProfileError::TooLarge {
            limit,
            evidence: "it was read that far".to_string(),
        };
    }
    if gzipped {
        ProfileError::Gzip(e)
    } else {
        ProfileError::Io(e)
    }
}

#[cfg(test)]
mod tests;
