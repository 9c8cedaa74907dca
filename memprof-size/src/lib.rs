//! Byte sizes with units, as memprof reads them: `"16 B"`, `"512KiB"`,
//! `"1.5 MB"`, `"1_000 B"`, and, where the caller allows it, a bare number
//! of bytes (`"524288"`).
//!
//! One parser for the `#[memprof::test]` attribute's sizes (memprof-macros,
//! a proc-macro crate, which cannot depend on memprof) and for memprof's
//! environment variables (`MEMPROF_RATE`), which are read inside the global
//! allocator: so it never allocates, and the arithmetic is exact (integers,
//! not floating point).
//!
//! ```
//! use memprof_size::{parse_size, SizeError};
//!
//! assert_eq!(parse_size("512KiB").map(|s| s.bytes), Ok(524_288));
//! assert_eq!(parse_size("1.5 MB").map(|s| s.bytes), Ok(1_500_000));
//! let bare = parse_size("4096").unwrap();
//! assert_eq!((bare.bytes, bare.unit_given), (4096, false));
//! assert_eq!(parse_size("4 KX"), Err(SizeError::UnknownUnit));
//! ```

#![no_std]
#![warn(missing_docs)]

use core::fmt;

/// A parsed size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// The size in bytes.
    pub bytes: u64,
    /// Whether the text named a unit (a bare number is bytes).
    pub unit_given: bool,
}

/// Why a text is not a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeError {
    /// No number at the start (empty, or a unit alone).
    NoNumber,
    /// Digits that do not make a number (`1.2.3`, a lone `.`).
    NotANumber,
    /// A unit memprof does not know.
    UnknownUnit,
    /// More bytes than a `u64` holds.
    TooLarge,
    /// A fraction of a byte (`0.5 B`, `1.0001 KB`).
    NotWhole,
}

impl SizeError {
    /// What is wrong, in words (no allocation, for the allocator's path).
    pub fn reason(self) -> &'static str {
        match self {
            SizeError::NoNumber => {
                "expected a number of bytes, with or without a unit, like 524288 or \"512 KiB\""
            }
            SizeError::NotANumber => "not a number",
            SizeError::UnknownUnit => "unknown unit; use B, KB, KiB, MB, MiB, GB or GiB",
            SizeError::TooLarge => "too large: more than 18446744073709551615 bytes",
            SizeError::NotWhole => "not a whole number of bytes",
        }
    }
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Parses a size: a decimal number (`_` between digits allowed, one `.`
/// for a fraction), optional spaces, and an optional unit. Decimal units
/// (KB, MB, GB) are powers of 1000, binary ones (KiB, MiB, GiB) powers of
/// 1024; units are case-sensitive. Leading and trailing whitespace is
/// ignored. The result must be a whole number of bytes that fits a `u64`.
pub fn parse_size(text: &str) -> Result<Size, SizeError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u128 = match unit.trim_start() {
        "" => 1,
        "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ if number.is_empty() => return Err(SizeError::NoNumber),
        _ => return Err(SizeError::UnknownUnit),
    };
    let (numerator, denominator) = decimal(number)?;
    let scaled = numerator
        .checked_mul(multiplier)
        .ok_or(SizeError::TooLarge)?;
    if scaled % denominator != 0 {
        return Err(SizeError::NotWhole);
    }
    let bytes = u64::try_from(scaled / denominator).map_err(|_| SizeError::TooLarge)?;
    Ok(Size {
        bytes,
        unit_given: !unit.trim_start().is_empty(),
    })
}

/// A decimal number as `numerator / 10^fraction digits`.
fn decimal(number: &str) -> Result<(u128, u128), SizeError> {
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    let mut digits = 0;
    let mut seen_point = false;
    for c in number.chars() {
        match c {
            '_' => {}
            '.' if !seen_point => seen_point = true,
            '0'..='9' => {
                digits += 1;
                // Past 38 digits u128 overflows; no byte count needs them.
                numerator = numerator
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u128::from(c as u8 - b'0')))
                    .ok_or(SizeError::TooLarge)?;
                if seen_point {
                    denominator = denominator.checked_mul(10).ok_or(SizeError::TooLarge)?;
                }
            }
            _ => return Err(SizeError::NotANumber),
        }
    }
    match digits {
        0 if number.is_empty() => Err(SizeError::NoNumber),
        0 => Err(SizeError::NotANumber),
        _ => Ok((numerator, denominator)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Result<u64, SizeError> {
        parse_size(text).map(|s| s.bytes)
    }

    #[test]
    fn units() {
        assert_eq!(bytes("16 B"), Ok(16));
        assert_eq!(bytes("4 KiB"), Ok(4096));
        assert_eq!(bytes("4KB"), Ok(4000));
        assert_eq!(bytes("512KiB"), Ok(524_288));
        assert_eq!(bytes("1.5 MiB"), Ok(1_572_864));
        assert_eq!(bytes("2 GB"), Ok(2_000_000_000));
        assert_eq!(bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(bytes("1_000 B"), Ok(1000));
        assert_eq!(bytes(" 7 "), Ok(7));
        assert_eq!(bytes("0"), Ok(0));
        assert_eq!(bytes("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(bytes("0.001 KB"), Ok(1));
    }

    #[test]
    fn a_bare_number_says_it_had_no_unit() {
        assert!(!parse_size("524288").unwrap().unit_given);
        assert!(parse_size("524288 B").unwrap().unit_given);
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(bytes("4 KX"), Err(SizeError::UnknownUnit));
        assert_eq!(bytes("12k"), Err(SizeError::UnknownUnit));
        assert_eq!(bytes("garbage"), Err(SizeError::NoNumber));
        assert_eq!(bytes("KiB"), Err(SizeError::NoNumber));
        assert_eq!(bytes(""), Err(SizeError::NoNumber));
        assert_eq!(bytes("-1"), Err(SizeError::NoNumber));
        assert_eq!(bytes("1.2.3 B"), Err(SizeError::NotANumber));
        assert_eq!(bytes(". B"), Err(SizeError::NotANumber));
        assert_eq!(bytes("0.5 B"), Err(SizeError::NotWhole));
        assert_eq!(bytes("99999999999 GiB"), Err(SizeError::TooLarge));
        assert_eq!(bytes("18446744073709551616"), Err(SizeError::TooLarge));
        assert_eq!(
            bytes("999999999999999999999999999999999999999999"),
            Err(SizeError::TooLarge)
        );
    }
}
