//! Shared helpers: joining kernel paths onto a root, reading a file whole,
//! walking lines without trusting their encoding, and unit conversion.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::error::{ParseError, ReadError};

/// `root` joined with an absolute kernel path such as `/proc/meminfo`.
pub(crate) fn join(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Reads `path` and parses its bytes, naming the path in any error.
pub(crate) fn read_with<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
) -> Result<T, ReadError> {
    let bytes = std::fs::read(path).map_err(|err| ReadError::io(path, &err))?;
    parse(&bytes).map_err(|err| ReadError::parse(path, err))
}

/// Calls `f` with each line (1-based number, text without the newline).
/// Bytes that are not UTF-8 are replaced rather than refused: /proc text is
/// ASCII, and a stray byte should spoil one field at most.
pub(crate) fn for_each_line<R: BufRead>(
    mut reader: R,
    mut f: impl FnMut(usize, &str) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|err| ParseError::Io(err.kind()))?;
        if read == 0 {
            return Ok(());
        }
        number = number.saturating_add(1);
        let text: Cow<'_, str> = String::from_utf8_lossy(&buf);
        f(number, text.trim_end_matches(['\n', '\r']))?;
    }
}

/// Parses a decimal `u64`, naming the field on failure.
pub(crate) fn number(text: &str, line: usize, field: &str) -> Result<u64, ParseError> {
    text.parse::<u64>().map_err(|_| ParseError::BadNumber {
        line,
        field: field.to_owned(),
    })
}

/// KiB to bytes. /proc's "kB" means KiB (see `Documentation/filesystems/proc.rst`);
/// saturates rather than wraps.
pub(crate) fn kib(value: u64) -> u64 {
    value.saturating_mul(1024)
}

/// Parses a `Key:   value [kB]` line into `(key, value)`, with `kB` values
/// converted to bytes. `None` when the line has another shape.
pub(crate) fn key_value_kb(
    line: &str,
    number_line: usize,
) -> Option<Result<(&str, u64), ParseError>> {
    let (key, rest) = line.split_once(':')?;
    let mut fields = rest.split_whitespace();
    let value = fields.next()?;
    let unit = fields.next();
    if fields.next().is_some() {
        return None;
    }
    let key = key.trim();
    Some(number(value, number_line, key).and_then(|v| match unit {
        None => Ok((key, v)),
        Some("kB") => Ok((key, kib(v))),
        Some(_) => Err(ParseError::Malformed {
            line: number_line,
            expected: "a value in kB or a plain count",
        }),
    }))
}

/// The system's base page size in bytes (4096 on most machines).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it reads a constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// Parses `name value` lines (`/proc/vmstat`, cgroup `memory.stat`,
/// `memory.events`, `memory.oom_control`) into a map. Blank lines are
/// skipped; any other shape is an error, and so is an input with no line.
pub(crate) fn flat_keyed<R: BufRead>(reader: R) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut map = BTreeMap::new();
    for_each_line(reader, |line, text| {
        let mut fields = text.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (None, _, _) => Ok(()),
            (Some(key), Some(value), None) => {
                map.insert(key.to_owned(), number(value, line, key)?);
                Ok(())
            }
            _ => Err(ParseError::Malformed {
                line,
                expected: "name value",
            }),
        }
    })?;
    if map.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(map)
}
