//! Pressure stall information: `/proc/pressure/memory` for the machine and
//! `memory.pressure` for a cgroup v2 (same format).
//!
//! See `Documentation/accounting/psi.rst`: `avg10`, `avg60` and `avg300` are
//! the percentage of wall time in which some (or all) non-idle tasks were
//! stalled on memory over the last 10, 60 and 300 seconds; `total` is the
//! accumulated stall time in microseconds.

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use super::error::{ParseError, ReadError};
use super::util;

/// Memory pressure: the `some` and `full` lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Pressure {
    /// Time in which at least one task was stalled on memory.
    pub some: PressureLine,
    /// Time in which all non-idle tasks were stalled at once (absent before
    /// Linux 5.13 for the host's CPU file; always there for memory).
    pub full: Option<PressureLine>,
}

/// One line of a pressure file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PressureLine {
    /// Percent of the last 10 seconds spent stalled.
    pub avg10: f64,
    /// Percent of the last 60 seconds spent stalled.
    pub avg60: f64,
    /// Percent of the last 300 seconds spent stalled.
    pub avg300: f64,
    /// Total stall time since boot (or since the cgroup was created), in
    /// microseconds.
    pub total_microseconds: u64,
}

impl Pressure {
    /// Parses a pressure file
    /// (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0`, then `full ...`).
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<Pressure, ParseError> {
        let mut some = None;
        let mut full = None;
        util::for_each_line(reader, |line, text| {
            let mut fields = text.split_whitespace();
            let slot = match fields.next() {
                Some("some") => &mut some,
                Some("full") => &mut full,
                None => return Ok(()),
                Some(_) => {
                    return Err(ParseError::Malformed {
                        line,
                        expected: "some|full avg10=.. avg60=.. avg300=.. total=..",
                    })
                }
            };
            *slot = Some(parse_line(line, fields)?);
            Ok(())
        })?;
        Ok(Pressure {
            some: some.ok_or(ParseError::Missing { key: "some" })?,
            full,
        })
    }

    /// Parses pressure text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<Pressure, ParseError> {
        Pressure::parse(text.as_bytes())
    }

    /// Reads a pressure file at `path` (already joined with the root).
    ///
    /// # Errors
    ///
    /// A `ReadError` naming `path` when it cannot be read or does not parse.
    pub fn read_file(path: &Path) -> Result<Pressure, ReadError> {
        util::read_with(path, |bytes| Pressure::parse(bytes))
    }

    /// Reads `<root>/proc/pressure/memory` (since Linux 4.20, with
    /// `CONFIG_PSI`).
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>) -> Result<Pressure, ReadError> {
        Pressure::read_file(&util::join(root.as_ref(), "/proc/pressure/memory"))
    }
}

fn parse_line<'a>(
    line: usize,
    fields: impl Iterator<Item = &'a str>,
) -> Result<PressureLine, ParseError> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            return Err(ParseError::Malformed {
                line,
                expected: "key=value",
            });
        };
        let bad = || ParseError::BadNumber {
            line,
            field: key.to_owned(),
        };
        let avg = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(bad)
        };
        match key {
            "avg10" => avg10 = Some(avg()?),
            "avg60" => avg60 = Some(avg()?),
            "avg300" => avg300 = Some(avg()?),
            "total" => total = Some(util::number(value, line, key)?),
            _ => {}
        }
    }
    Ok(PressureLine {
        avg10: avg10.ok_or(ParseError::Missing { key: "avg10" })?,
        avg60: avg60.ok_or(ParseError::Missing { key: "avg60" })?,
        avg300: avg300.ok_or(ParseError::Missing { key: "avg300" })?,
        total_microseconds: total.ok_or(ParseError::Missing { key: "total" })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_some_and_full() {
        let p = Pressure::parse_str(
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n\
             full avg10=0.10 avg60=0.00 avg300=0.00 total=789\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total_microseconds, 123_456);
        assert_eq!(p.full.map(|f| f.total_microseconds), Some(789));
    }

    #[test]
    fn refuses_bad_lines() {
        assert!(Pressure::parse_str("").is_err());
        assert!(Pressure::parse_str("full avg10=0 avg60=0 avg300=0 total=0\n").is_err());
        assert!(Pressure::parse_str("some avg10=x avg60=0 avg300=0 total=0\n").is_err());
        assert!(Pressure::parse_str("some avg10=NaN avg60=0 avg300=0 total=0\n").is_err());
        assert!(Pressure::parse_str("some avg10=0 avg60=0 avg300=0\n").is_err());
        assert!(Pressure::parse_str("both avg10=0 avg60=0 avg300=0 total=0\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Pressure::parse(&bytes[..]);
        }

        #[test]
        fn never_panics_on_truncation(total in any::<u64>(), cut in 0usize..120) {
            let text = format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={total}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
            let _ = Pressure::parse(&text.as_bytes()[..cut.min(text.len())]);
            prop_assert_eq!(Pressure::parse_str(&text).unwrap().some.total_microseconds, total);
        }
    }
}
