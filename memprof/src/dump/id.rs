//! Dump ids: `<UTC yyyymmddThhmmssZ>-<pid>-<trigger>[-<n>]`, so the
//! directory's names sort by time, and a name read back says when, by
//! whom and why without opening the dump.

/// The parts of a dump id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdParts {
    pub(crate) unix_seconds: u64,
    pub(crate) pid: u32,
    pub(crate) trigger: String,
}

/// The id of a dump written at `unix_seconds` by `pid` for `trigger`;
/// `n` above 0 tells apart dumps of one second.
pub(crate) fn format_id(unix_seconds: u64, pid: u32, trigger: &str, n: u32) -> String {
    let mut id = format!("{}-{pid}-{trigger}", utc_compact(unix_seconds));
    if n > 0 {
        id.push_str(&format!("-{n}"));
    }
    id
}

/// `yyyymmddThhmmssZ` of a Unix time.
pub(crate) fn utc_compact(unix_seconds: u64) -> String {
    let (y, m, d, hh, mm, ss) = crate::human::utc(unix_seconds);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `yyyy-mm-ddThh:mm:ssZ` of a Unix time.
pub(crate) fn utc_iso(unix_seconds: u64) -> String {
    let (y, m, d, hh, mm, ss) = crate::human::utc(unix_seconds);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// The days from 1970-01-01 to a date (`days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The parts of a dump id, or `None` when `name` is not one: only ASCII
/// letters, digits and `-`, so an id is always a plain file name.
pub(crate) fn parse_id(name: &str) -> Option<IdParts> {
    if name.is_empty()
        || name.len() > 100
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    let mut parts = name.splitn(4, '-');
    let time = parts.next()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    let trigger = parts.next()?;
    if let Some(n) = parts.next() {
        n.parse::<u32>().ok()?;
    }
    if trigger.is_empty() || !trigger.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let b = time.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> { time.get(range)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let unix = days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    Some(IdParts {
        unix_seconds: u64::try_from(unix).ok()?,
        pid,
        trigger: trigger.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_and_sort_by_time() {
        let id = format_id(1_796_554_800, 42, "limit", 0);
        assert_eq!(id, "20261206T110000Z-42-limit");
        assert_eq!(utc_iso(1_796_554_800), "2026-12-06T11:00:00Z");
        let parts = parse_id(&id).unwrap();
        assert_eq!(parts.unix_seconds, 1_796_554_800);
        assert_eq!((parts.pid, parts.trigger.as_str()), (42, "limit"));
        assert_eq!(parse_id("20261206T110000Z-42-peak-3").unwrap().pid, 42);
        assert!(format_id(1, 1, "peak", 0) < format_id(2, 1, "exit", 0));
        assert_eq!(
            parse_id(&format_id(0, 7, "exit", 0)).unwrap().unix_seconds,
            0
        );
    }

    #[test]
    fn other_names_are_not_ids() {
        for name in [
            "",
            "..",
            "../etc",
            "notes.txt",
            ".20261206T110000Z-42-limit.tmp",
            "20261206T110000Z-x-limit",
            "20261306T110000Z-42-limit",
            "20261206T110000Z-42-",
            "20261206T110000Z-42-Limit",
            "20261206T110000Z-42-limit-x",
            "20261206T110000Z-42-limit/..",
        ] {
            assert!(parse_id(name).is_none(), "{name}");
        }
    }
}
