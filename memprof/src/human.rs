//! Amounts written for people: bytes in binary units with three significant
//! digits (`512 B`, `1.50 KiB`, `12.0 MiB`, `300 MiB`). Every text memprof
//! writes (the doctor's findings, leak summaries, the endpoint's and the
//! command line's `text` views, the test harness's messages) goes through
//! these two, so one amount reads the same wherever it shows. Times are
//! written in UTC through [`utc`], the one calendar conversion.

/// Bytes for people, in binary units: `512 B`, `1.50 KiB`, `12.0 MiB`,
/// `3.25 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {}", UNITS[unit])
}

/// [`format_bytes`] for a signed, possibly fractional amount (an estimate,
/// a change, a rate): rounded to whole bytes, `-` before a negative one,
/// `?` for NaN or an infinity.
pub(crate) fn format_bytes_signed(n: f64) -> String {
    if !n.is_finite() {
        return "?".to_owned();
    }
    let magnitude = format_bytes(n.abs().round() as u64);
    if n <= -0.5 {
        format!("-{magnitude}")
    } else {
        magnitude
    }
}

/// The UTC date and time of a Unix time: year, month, day, hour, minute,
/// second (Howard Hinnant's `civil_from_days`).
pub(crate) fn utc(unix_seconds: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        ((secs / 60) % 60) as u32,
        (secs % 60) as u32,
    )
}

/// A Unix time as `2026-12-06 08:21:07 UTC`.
pub(crate) fn utc_text(unix_seconds: u64) -> String {
    let (y, m, d, hh, mm, ss) = utc(unix_seconds);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits_in_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.00 KiB");
        assert_eq!(format_bytes(1536), "1.50 KiB");
        assert_eq!(format_bytes(12 << 20), "12.0 MiB");
        assert_eq!(format_bytes(300 << 20), "300 MiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn signed_and_fractional_amounts() {
        assert_eq!(format_bytes_signed(1536.4), "1.50 KiB");
        assert_eq!(format_bytes_signed(-2048.0), "-2.00 KiB");
        assert_eq!(format_bytes_signed(511.6), "512 B");
        // Rounds to zero: no sign on nothing.
        assert_eq!(format_bytes_signed(-0.2), "0 B");
        assert_eq!(format_bytes_signed(f64::NAN), "?");
        assert_eq!(format_bytes_signed(f64::NEG_INFINITY), "?");
    }
}
