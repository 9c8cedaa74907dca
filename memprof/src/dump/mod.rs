//! The flight recorder: dumps of the heap profile and the readings around
//! it, written to a directory so the evidence outlives an OOM kill.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! fn main() -> std::io::Result<()> {
//!     // Or MEMPROF_DUMP_DIR=/var/lib/myservice/memprof and memprof::serve(..),
//!     // which starts the watcher when a directory is set.
//!     memprof::Config::new()
//!         .dumps(memprof::config::DumpSettings::from_env().dir("/var/lib/myservice/memprof"))
//!         .apply()
//!         .expect("settings");
//!     memprof::dump::start()?;
//!     let dump = memprof::dump::dump_now("before the batch").expect("a dump");
//!     println!("wrote {}", dump.id);
//!     Ok(())
//! }
//! ```
//!
//! A dump is a directory `<id>/` (`<UTC yyyymmddThhmmssZ>-<pid>-<trigger>[-<n>]`)
//! holding `summary.json`, `heap.pb.gz` (pprof, as `/heap` serves it: the
//! 1,000 largest stacks by in-use bytes and one `[other N stacks]`
//! remainder, so totals stay exact) and `heap.folded` (the same stacks,
//! the largest first), written as
//! `.<id>.tmp/` and renamed once every file and the directory are fsync'd.
//!
//! Triggers ([`Trigger`]): `peak` and `limit` from the watcher thread
//! (`memprof-dumps`), which reads the heap estimate, the RSS and the
//! cgroup's usage (or the host's MemAvailable) once a second, off the
//! allocation path; `request` from `POST /debug/memprof/dumps`,
//! [`dump_now`] or the opt-in signal (its handler only sets a flag the
//! watcher reads); `exit` at normal exit when asked for (an `atexit` hook:
//! it runs when the process calls `exit`, returning from `main` or
//! `std::process::exit`, never on a kill by a signal, an abort or the OOM
//! killer, which is what the `limit` dumps are for).
//!
//! The directory is created if missing. At start the watcher removes the
//! temporary directories killed writers left, and keeps at most the
//! configured number and bytes of dumps (oldest first; a previous run's
//! dumps count like this run's). Anything else in the directory is left
//! alone and listed as a note. A failure to write (missing permission, a
//! full disk, a file-size limit) is counted, named in one line in `/stats`
//! and `/dumps`, and never stops the program.

mod dir;
mod id;
mod previous;
mod summary;
mod trigger;
mod watcher;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

pub use self::dir::{DumpEntry, DumpFiles};
pub use self::previous::{OomKillSummary, PreviousRun};
pub use self::trigger::Trigger;
pub use self::watcher::{ensure_started, start};

use crate::config::DumpSettings;

/// Why a dump was not written or a file not served.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpError {
    /// No dump directory is set (`MEMPROF_DUMP_DIR` or
    /// [`DumpSettings::dir`]).
    Disabled,
    /// No dump has this id, or it has no such file.
    NotFound(String),
    /// Reading or writing the directory failed: the line `/stats` shows.
    Io(String),
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpError::Disabled => f.write_str(
                "dumps are off: set MEMPROF_DUMP_DIR or memprof::Config::dumps with a directory",
            ),
            DumpError::NotFound(what) | DumpError::Io(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for DumpError {}

/// The flight recorder's state and its dumps, as `GET /debug/memprof/dumps`
/// answers it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Listing {
    /// The dump directory, if one is set.
    pub dir: Option<String>,
    /// Whether dumps are written (a directory is set).
    pub enabled: bool,
    /// The last failure, in one line, until a dump is written again.
    pub error: Option<String>,
    /// Dumps this process wrote.
    pub written: u64,
    /// Dumps this process failed to write.
    pub failed: u64,
    /// What in the directory was ignored or removed, and why.
    pub notes: Vec<String>,
    /// The dumps in the directory, newest first.
    pub dumps: Vec<DumpEntry>,
    /// The newest dump of another process, with whether the kernel killed
    /// it for memory.
    pub previous_run: Option<PreviousRun>,
}

/// The one-line state `/stats` shows under `dumps`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DumpStatus {
    /// The dump directory, if one is set.
    pub dir: Option<String>,
    /// Whether dumps are written.
    pub enabled: bool,
    /// The last failure, in one line, until a dump is written again.
    pub error: Option<String>,
    /// Dumps this process wrote.
    pub written: u64,
    /// Dumps this process failed to write.
    pub failed: u64,
}

#[derive(Default)]
struct State {
    /// The directory prepared (created, cleaned) for this process.
    prepared: Option<PathBuf>,
    error: Option<String>,
    written: u64,
    failed: u64,
    notes: Vec<String>,
    /// The second of the last id, and how many ids it gave.
    last_second: u64,
    in_second: u32,
}

static STATE: Mutex<State> = Mutex::new(State {
    prepared: None,
    error: None,
    written: 0,
    failed: 0,
    notes: Vec::new(),
    last_second: 0,
    in_second: 0,
});
/// Held while a dump is written: one at a time, so two triggers at once
/// never double the memory a dump takes.
static WRITING: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent between statements; nothing panics while
    // holding it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The directory of `settings`, prepared once for it: created if missing,
/// killed writers' leftovers removed, the limits applied.
fn prepared_dir(settings: &DumpSettings) -> Result<PathBuf, DumpError> {
    let dir = settings.dir.clone().ok_or(DumpError::Disabled)?;
    let mut state = lock(&STATE);
    if state.prepared.as_ref() == Some(&dir) {
        return Ok(dir);
    }
    match dir::prepare(&dir) {
        Ok(notes) => {
            state.notes = notes;
            state.prepared = Some(dir.clone());
            if state
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("dump directory"))
            {
                state.error = None;
            }
            drop(state);
            apply_retention(&dir, settings);
            Ok(dir)
        }
        Err(e) => {
            let line = format!("dump directory {}: {e}", dir.display());
            state.error = Some(line.clone());
            Err(DumpError::Io(line))
        }
    }
}

fn apply_retention(dir: &Path, settings: &DumpSettings) {
    let Ok(mut scan) = dir::scan(dir) else { return };
    let notes = dir::retain(dir, &mut scan.entries, settings.keep, settings.max_bytes);
    if !notes.is_empty() {
        lock(&STATE).notes.extend(notes);
    }
}

/// The next dump id for `trigger`.
fn next_id(trigger: Trigger, unix_ms: u64) -> String {
    let second = unix_ms / 1000;
    let mut state = lock(&STATE);
    if state.last_second == second {
        state.in_second += 1;
    } else {
        state.last_second = second;
        state.in_second = 0;
    }
    id::format_id(second, std::process::id(), trigger.name(), state.in_second)
}

/// Writes a `request` dump now, with `detail` saying who asked; its entry.
///
/// Blocks while it takes the profile, reads the process, cgroup and host,
/// and writes the files (tens of milliseconds for a few thousand stacks;
/// see the README's figures), and while another dump is being written.
///
/// # Errors
///
/// [`DumpError::Disabled`] without a directory; [`DumpError::Io`] when the
/// directory cannot be prepared or the dump cannot be written (also
/// counted and shown in `/stats`).
pub fn dump_now(detail: &str) -> Result<DumpEntry, DumpError> {
    write_dump(Trigger::Request, detail)
}

/// Writes one dump for `trigger`.
pub(crate) fn write_dump(trigger: Trigger, detail: &str) -> Result<DumpEntry, DumpError> {
    let settings = crate::config::dump::current();
    crate::thread_state::unsampled(|| {
        let _writing = lock(&WRITING);
        let dir = match prepared_dir(&settings) {
            Ok(dir) => dir,
            Err(DumpError::Io(line)) => {
                lock(&STATE).failed += 1;
                return Err(DumpError::Io(line));
            }
            Err(e) => return Err(e),
        };
        let snapshot = crate::profile::snapshot();
        let id = next_id(trigger, snapshot.taken_at_unix_ms);
        let history = crate::history::get();
        let input = match &history {
            Some(h) => crate::doctor::read_with_history(h),
            None => crate::doctor::read_live_with(
                &crate::doctor::LiveOptions::default().interval(std::time::Duration::ZERO),
            ),
        };
        let cx = summary::Context {
            id: &id,
            trigger: trigger.name(),
            detail,
            build_version: settings.build_version.as_deref(),
        };
        let summary = summary::build(&cx, &snapshot, &input, history.as_ref());
        drop(input);
        // As `/heap` serves it: the largest stacks and one remainder, so a
        // dump's size and time stay bounded whatever the stack count.
        let bound = crate::profile::Bound::new(Some(crate::profile::Bound::DEFAULT_LIMIT), 0.0);
        let bounded = snapshot.bounded(crate::profile::Kind::InuseSpace, bound);
        let written = writer::write(&dir, &id, &bounded, &summary);
        drop(bounded);
        match written {
            Ok(bytes) => {
                {
                    let mut state = lock(&STATE);
                    state.written += 1;
                    state.error = None;
                }
                apply_retention(&dir, &settings);
                Ok(DumpEntry::of(&summary, bytes))
            }
            Err(e) => {
                let line = format!("writing dump {id} in {}: {e}", dir.display());
                let mut state = lock(&STATE);
                state.failed += 1;
                state.error = Some(line.clone());
                Err(DumpError::Io(line))
            }
        }
    })
}

/// The one-line state `/stats` shows.
pub fn status() -> DumpStatus {
    let settings = crate::config::dump::current();
    let state = lock(&STATE);
    DumpStatus {
        dir: settings.dir.as_ref().map(|d| d.display().to_string()),
        enabled: settings.dir.is_some(),
        error: state.error.clone(),
        written: state.written,
        failed: state.failed,
    }
}

/// The dumps in the directory (read now), this process's counters, and
/// the previous run.
pub fn listing() -> Listing {
    let settings = crate::config::dump::current();
    let status = status();
    let mut listing = Listing {
        dir: status.dir,
        enabled: status.enabled,
        error: status.error,
        written: status.written,
        failed: status.failed,
        notes: Vec::new(),
        dumps: Vec::new(),
        previous_run: None,
    };
    let dir = match prepared_dir(&settings) {
        Ok(dir) => dir,
        Err(DumpError::Disabled) => return listing,
        Err(e) => {
            listing.error = Some(e.to_string());
            return listing;
        }
    };
    listing.notes = lock(&STATE).notes.clone();
    match dir::scan(&dir) {
        Ok(scan) => {
            listing.notes.extend(scan.notes);
            listing.dumps = scan.entries;
        }
        Err(e) => {
            listing.error = Some(format!("reading dump directory {}: {e}", dir.display()));
        }
    }
    listing.previous_run = previous::previous_run(&listing.dumps);
    listing
}

/// The path of `file` of dump `id`: only a listed dump's files, by the
/// names the listing gives (`summary.json`, `heap.pb.gz`, `heap.folded`).
pub(crate) fn file_path(id: &str, file: &str) -> Result<PathBuf, DumpError> {
    let settings = crate::config::dump::current();
    let dir = prepared_dir(&settings)?;
    if !writer::FILES.contains(&file) {
        return Err(DumpError::NotFound(format!(
            "no file {file:?}: a dump has summary.json, heap.pb.gz, heap.folded and flamegraph"
        )));
    }
    let dump = dir.join(id);
    dir::read_dump(&dump, id)
        .map_err(|why| DumpError::NotFound(format!("no dump {id:?}: {why}")))?;
    Ok(dump.join(file))
}

/// The most bytes of a folded profile read back for a flamegraph.
#[cfg(feature = "http")]
const MAX_FOLDED_BYTES: u64 = 256 << 20;

/// An SVG flamegraph of dump `id`'s in-use bytes, or, with `base_current`,
/// a differential one from the dump to the live heap now.
#[cfg(feature = "http")]
pub(crate) fn flamegraph(id: &str, base_current: bool) -> Result<Vec<u8>, DumpError> {
    use std::collections::HashMap;
    use std::fmt::Write as _;

    let path = file_path(id, writer::FOLDED)?;
    let io = |e: std::io::Error| DumpError::Io(format!("{}: {e}", path.display()));
    let len = std::fs::metadata(&path).map_err(io)?.len();
    if len > MAX_FOLDED_BYTES {
        return Err(DumpError::Io(format!(
            "{}: larger than 256 MiB, too large to draw",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let mut options =
        crate::export::flamegraph::FlamegraphOptions::for_kind(crate::profile::Kind::InuseSpace);
    let mut folded = String::new();
    if base_current {
        options.title = format!("memprof inuse_space: dump {id} to now");
        let now = crate::thread_state::unsampled(crate::profile::snapshot);
        let mut pairs: HashMap<String, (u64, u64)> = HashMap::new();
        for line in text.lines() {
            if let Some((key, value)) = split_folded(line) {
                pairs.entry(key.to_owned()).or_default().0 += value;
            }
        }
        for stack in &now.stacks {
            let bytes = stack.estimates.inuse_bytes.round() as u64;
            if bytes > 0 {
                pairs.entry(stack.folded_key()).or_default().1 += bytes;
            }
        }
        for (key, (before, after)) in pairs {
            let _ = writeln!(folded, "{key} {before} {after}");
        }
    } else {
        options.title = format!("memprof inuse_space: dump {id}");
        folded = text;
    }
    let mut out = Vec::new();
    crate::export::flamegraph::write_folded_flamegraph(folded.as_bytes(), &options, &mut out)
        .map_err(|e| DumpError::Io(format!("drawing dump {id}: {e}")))?;
    Ok(out)
}

/// `stack count` of a folded line.
#[cfg(feature = "http")]
fn split_folded(line: &str) -> Option<(&str, u64)> {
    let (key, value) = line.trim_end().rsplit_once(' ')?;
    Some((key, value.parse().ok()?))
}

/// The previous run as the doctor reads it, if the directory holds a dump
/// of another process.
pub fn previous_run_for_doctor() -> Option<crate::doctor::PreviousRun> {
    let listing = listing();
    let run = listing.previous_run?;
    previous::for_doctor(&run)
}

#[cfg(test)]
mod tests;
