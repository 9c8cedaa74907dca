//! Why a reading failed: parse errors (the text had the wrong shape) and read
//! errors (the file could not be read, or its text did not parse), each
//! naming the file so an operator knows where to look.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a text did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The input held no line this parser recognises.
    Empty,
    /// A line did not have the expected shape.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What the parser expected to find.
        expected: &'static str,
    },
    /// A field that must be a number was not one (or did not fit in 64 bits).
    BadNumber {
        /// 1-based line number.
        line: usize,
        /// The field's name.
        field: String,
    },
    /// A key the reading cannot do without was absent.
    Missing {
        /// The key that was looked for.
        key: &'static str,
    },
    /// The reader failed part-way (for /proc files, usually the process went
    /// away while it was being read).
    Io(io::ErrorKind),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty or no recognised line"),
            ParseError::Malformed { line, expected } => {
                write!(f, "line {line}: expected {expected}")
            }
            ParseError::BadNumber { line, field } => {
                write!(f, "line {line}: {field} is not a number")
            }
            ParseError::Missing { key } => write!(f, "no {key}"),
            ParseError::Io(kind) => write!(f, "read failed: {kind}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// What went wrong reading one file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The file does not exist (an older kernel, a missing controller, or a
    /// process that exited).
    NotFound,
    /// The file exists but this process may not read it.
    PermissionDenied,
    /// `ESRCH`: the process has no address space to report (a kernel
    /// thread, or a process that exited while being read).
    NoSuchProcess,
    /// Another I/O error.
    Io(io::ErrorKind),
    /// The file was read but its text did not parse.
    Parse(ParseError),
}

/// A file that could not be read or parsed, with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// The file, as opened (the root directory joined with the kernel path).
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ReadErrorKind,
}

impl ReadError {
    pub(crate) fn io(path: &Path, err: &io::Error) -> ReadError {
        let kind = match err.kind() {
            _ if err.raw_os_error() == Some(libc::ESRCH) => ReadErrorKind::NoSuchProcess,
            io::ErrorKind::NotFound => ReadErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ReadErrorKind::PermissionDenied,
            other => ReadErrorKind::Io(other),
        };
        ReadError {
            path: path.to_path_buf(),
            kind,
        }
    }

    pub(crate) fn parse(path: &Path, err: ParseError) -> ReadError {
        ReadError {
            path: path.to_path_buf(),
            kind: ReadErrorKind::Parse(err),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            ReadErrorKind::NotFound => write!(f, "{path}: not found"),
            ReadErrorKind::PermissionDenied => write!(f, "{path}: permission denied"),
            ReadErrorKind::NoSuchProcess => write!(f, "{path}: no such process"),
            ReadErrorKind::Io(kind) => write!(f, "{path}: {kind}"),
            ReadErrorKind::Parse(err) => write!(f, "{path}: {err}"),
        }
    }
}

impl std::error::Error for ReadError {}
