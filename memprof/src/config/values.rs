//! What each variable accepts: the defaults and bounds of memprof's
//! settings, and the parsers of their values.
//!
//! The parsers take the raw bytes of the environment and never allocate:
//! the allocator's slow path is where most of them first run.

use memprof_size::SizeError;

use super::Unwinder;

/// The default mean distance between samples: 512 KiB, as in Go and jemalloc.
pub const DEFAULT_RATE: u64 = 512 * 1024;

/// The largest rate `MEMPROF_RATE` accepts: a thread's countdown is an
/// `i64`, and larger rates would turn sampling off while claiming a rate.
pub(crate) const MAX_RATE: u64 = i64::MAX as u64;

/// How many return addresses a walk keeps unless `MEMPROF_MAX_FRAMES` says
/// otherwise.
pub const DEFAULT_MAX_FRAMES: usize = 64;

/// The deepest stack walk `MEMPROF_MAX_FRAMES` may ask for.
pub const MAX_FRAMES: usize = 256;

/// The default cap on distinct stacks: room for exact mode on large real
/// programs (parsing 16 MB of Rust sources with `syn` interns some
/// 805,000). The table's memory follows the stacks interned, not the cap.
pub const DEFAULT_MAX_STACKS: usize = 1 << 22;

/// The default cap on live samples: enough for exact mode over a few
/// million live blocks.
pub const DEFAULT_MAX_SAMPLES: usize = 4 << 20;

/// The default share of the previous high a `peak` dump's reading must
/// pass it by: 10%.
pub const DEFAULT_DUMP_PEAK_MARGIN: f64 = 0.10;
/// The default smallest step a `peak` dump's reading must pass the previous
/// high by: 64 MiB, so start-up does not spray dumps.
pub const DEFAULT_DUMP_PEAK_FLOOR_BYTES: u64 = 64 << 20;
/// The default shortest time between two `peak` dumps, in seconds.
pub const DEFAULT_DUMP_MIN_INTERVAL_SECONDS: u64 = 60;
/// The default shares of the memory limit, in percent, at which a `limit`
/// dump is written, each once per climb.
pub const DEFAULT_DUMP_LIMIT_THRESHOLDS: [u8; 3] = [80, 90, 95];
/// The default number of dumps kept in the directory.
pub const DEFAULT_DUMP_KEEP: usize = 20;
/// The default bytes the dumps in the directory may take together: 256 MiB.
pub const DEFAULT_DUMP_MAX_BYTES: u64 = 256 << 20;
/// The most limit thresholds kept.
pub(crate) const MAX_DUMP_THRESHOLDS: usize = 8;

/// Why a variable's value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueError {
    /// Not UTF-8.
    NotText,
    /// Not a size in bytes.
    Size(SizeError),
    /// A rate above [`MAX_RATE`].
    RateTooLarge,
    /// Not a whole number (a count was expected).
    NotWhole,
    /// A depth outside 1 to [`MAX_FRAMES`].
    FramesOutOfRange,
    /// A cap of 0.
    Zero,
    /// Not a walker's name.
    UnknownUnwinder,
    /// Not an address to listen on.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    NotAnAddress,
    /// Not a percentage from 0 to 1000.
    NotAPercentage,
    /// Not whole seconds.
    NotSeconds,
    /// Not a list of percentages from 1 to 100.
    NotThresholds,
    /// Not a yes or no.
    NotABool,
    /// Not SIGUSR1 or SIGUSR2.
    UnknownSignal,
}

impl ValueError {
    /// What is wrong, in words (static: the allocator's path says it).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            ValueError::NotText => "not UTF-8 text",
            ValueError::Size(e) => e.reason(),
            ValueError::RateTooLarge => "above the largest rate, 9223372036854775807 bytes",
            ValueError::NotWhole => "not a whole number",
            ValueError::FramesOutOfRange => "not from 1 to 256 frames",
            ValueError::Zero => "a cap must be at least 1",
            ValueError::UnknownUnwinder => "not one of auto, fp, frame_pointers, framehop, dwarf",
            ValueError::NotAnAddress => "not host:port, like 127.0.0.1:6060",
            ValueError::NotAPercentage => "not a percentage from 0 to 1000",
            ValueError::NotSeconds => "not whole seconds",
            ValueError::NotThresholds => {
                "not up to 8 percentages from 1 to 100 separated by commas"
            }
            ValueError::NotABool => "not 1, 0, true, false, yes, no, on or off",
            ValueError::UnknownSignal => "not SIGUSR1 or SIGUSR2",
        }
    }
}

fn text(value: &[u8]) -> Result<&str, ValueError> {
    core::str::from_utf8(value).map_err(|_| ValueError::NotText)
}

/// A whole number, surrounding whitespace allowed; one too large for a
/// `usize` is `usize::MAX` (no bound is that high).
fn whole(value: &[u8]) -> Result<usize, ValueError> {
    match text(value)?.trim().parse::<usize>() {
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == core::num::IntErrorKind::PosOverflow => Ok(usize::MAX),
        Err(_) => Err(ValueError::NotWhole),
    }
}

/// `MEMPROF_RATE`: a number of bytes, with or without a unit (`524288`,
/// `512KiB`, `1 MiB`), as `#[memprof::test]` sizes are written, up to
/// [`MAX_RATE`].
pub(crate) fn rate(value: &[u8]) -> Result<u64, ValueError> {
    let size = memprof_size::parse_size(text(value)?).map_err(ValueError::Size)?;
    if size.bytes > MAX_RATE {
        return Err(ValueError::RateTooLarge);
    }
    Ok(size.bytes)
}

/// `MEMPROF_MAX_FRAMES`: a whole number from 1 to [`MAX_FRAMES`].
pub(crate) fn max_frames(value: &[u8]) -> Result<usize, ValueError> {
    let frames = whole(value)?;
    if (1..=MAX_FRAMES).contains(&frames) {
        Ok(frames)
    } else {
        Err(ValueError::FramesOutOfRange)
    }
}

/// `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES`: a whole number from 1 up.
pub(crate) fn cap(value: &[u8]) -> Result<usize, ValueError> {
    match whole(value)? {
        0 => Err(ValueError::Zero),
        cap => Ok(cap),
    }
}

/// `MEMPROF_UNWIND`: `auto`, `fp`, `frame_pointers`, `framehop` or `dwarf`.
pub(crate) fn unwinder(value: &[u8]) -> Result<Unwinder, ValueError> {
    Unwinder::from_name(text(value)?.trim()).ok_or(ValueError::UnknownUnwinder)
}

/// `MEMPROF_DUMP_PEAK_MARGIN`: a percentage from 0 to 1000, with or without
/// `%` (`10%`, `10`, `2.5`); returned as a share (0.10).
pub(crate) fn percentage(value: &[u8]) -> Result<f64, ValueError> {
    let text = text(value)?.trim();
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=1000.0).contains(&p) => Ok(p / 100.0),
        _ => Err(ValueError::NotAPercentage),
    }
}

/// `MEMPROF_DUMP_PEAK_FLOOR` and `MEMPROF_DUMP_MAX_BYTES`: a size in bytes
/// with or without a unit.
pub(crate) fn size(value: &[u8]) -> Result<u64, ValueError> {
    Ok(memprof_size::parse_size(text(value)?)
        .map_err(ValueError::Size)?
        .bytes)
}

/// `MEMPROF_DUMP_MIN_INTERVAL`: whole seconds, with or without `s`.
pub(crate) fn seconds(value: &[u8]) -> Result<u64, ValueError> {
    let text = text(value)?.trim();
    let number = text.strip_suffix('s').unwrap_or(text).trim();
    number.parse::<u64>().map_err(|_| ValueError::NotSeconds)
}

/// `MEMPROF_DUMP_LIMIT_THRESHOLDS`: up to [`MAX_DUMP_THRESHOLDS`]
/// percentages from 1 to 100, separated by commas (`%` allowed); sorted
/// and without repeats.
pub(crate) fn thresholds(value: &[u8]) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::new();
    for part in text(value)?.split(',') {
        let part = part.trim();
        let number = part.strip_suffix('%').unwrap_or(part).trim();
        match number.parse::<u8>() {
            Ok(p) if (1..=100).contains(&p) => out.push(p),
            _ => return Err(ValueError::NotThresholds),
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_DUMP_THRESHOLDS {
        return Err(ValueError::NotThresholds);
    }
    Ok(out)
}

/// `MEMPROF_DUMP_ON_EXIT`: `1`, `0`, `true`, `false`, `yes`, `no`, `on`,
/// `off` (any case).
pub(crate) fn boolean(value: &[u8]) -> Result<bool, ValueError> {
    match text(value)?.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ValueError::NotABool),
    }
}

/// `MEMPROF_DUMP_SIGNAL`: `SIGUSR1` or `SIGUSR2` (also `USR1`, `USR2`, any
/// case). Other signals are refused: their default actions (terminate,
/// stop) are ones programs rely on.
pub(crate) fn signal(value: &[u8]) -> Result<DumpSignal, ValueError> {
    let name = text(value)?.trim().to_ascii_uppercase();
    match name.strip_prefix("SIG").unwrap_or(&name) {
        "USR1" => Ok(DumpSignal::Usr1),
        "USR2" => Ok(DumpSignal::Usr2),
        _ => Err(ValueError::UnknownSignal),
    }
}

/// The signal a user may opt into for a dump on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DumpSignal {
    /// `SIGUSR1`.
    #[serde(rename = "SIGUSR1")]
    Usr1,
    /// `SIGUSR2`.
    #[serde(rename = "SIGUSR2")]
    Usr2,
}

impl DumpSignal {
    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            DumpSignal::Usr1 => libc::SIGUSR1,
            DumpSignal::Usr2 => libc::SIGUSR2,
        }
    }
}

/// Writes `n` in decimal at the end of `buf`; returns the digits.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_sizes_like_the_test_attributes() {
        assert_eq!(rate(b"524288"), Ok(524_288));
        assert_eq!(rate(b" 1 "), Ok(1));
        assert_eq!(rate(b"0"), Ok(0));
        assert_eq!(rate(b"512KiB"), Ok(524_288));
        assert_eq!(rate(b"1 MiB"), Ok(1 << 20));
        assert_eq!(rate(b"64 KB"), Ok(64_000));
        assert_eq!(rate(b"1.5 KiB"), Ok(1536));
        assert_eq!(rate(b"1_000"), Ok(1000));
        assert_eq!(rate(b"9223372036854775807"), Ok(MAX_RATE));
    }

    #[test]
    fn bad_rates_say_why() {
        let err = |v: &[u8]| rate(v).unwrap_err();
        assert_eq!(err(b"garbage"), ValueError::Size(SizeError::NoNumber));
        assert_eq!(err(b"12k"), ValueError::Size(SizeError::UnknownUnit));
        assert_eq!(err(b""), ValueError::Size(SizeError::NoNumber));
        assert_eq!(err(b"0.5 B"), ValueError::Size(SizeError::NotWhole));
        assert_eq!(err(b"\xff\xfe"), ValueError::NotText);
        assert_eq!(err(b"9223372036854775808"), ValueError::RateTooLarge);
        assert_eq!(err(b"16 EiB"), ValueError::Size(SizeError::UnknownUnit));
        assert_eq!(
            err(b"99999999999999999999999"),
            ValueError::Size(SizeError::TooLarge)
        );
        assert!(ValueError::RateTooLarge
            .reason()
            .contains(&MAX_RATE.to_string()));
    }

    #[test]
    fn frames_are_whole_numbers_up_to_the_deepest_walk() {
        assert_eq!(max_frames(b"1"), Ok(1));
        assert_eq!(max_frames(b" 128\n"), Ok(128));
        assert_eq!(max_frames(b"256"), Ok(MAX_FRAMES));
        assert_eq!(max_frames(b"0"), Err(ValueError::FramesOutOfRange));
        assert_eq!(max_frames(b"257"), Err(ValueError::FramesOutOfRange));
        assert_eq!(
            max_frames(b"99999999999999999999999"),
            Err(ValueError::FramesOutOfRange)
        );
        assert_eq!(max_frames(b"64 frames"), Err(ValueError::NotWhole));
        assert_eq!(max_frames(b"-1"), Err(ValueError::NotWhole));
        assert_eq!(max_frames(b"+5"), Ok(5));
        assert_eq!(max_frames(b""), Err(ValueError::NotWhole));
        assert_eq!(max_frames(b"\xff"), Err(ValueError::NotText));
        let range = format!("1 to {MAX_FRAMES}");
        assert!(ValueError::FramesOutOfRange.reason().contains(&range));
    }

    #[test]
    fn caps_are_whole_numbers_from_one_up() {
        assert_eq!(cap(b"200000"), Ok(200_000));
        assert_eq!(cap(b" 7 "), Ok(7));
        assert_eq!(cap(b"1"), Ok(1));
        assert_eq!(cap(b"99999999999999999999999"), Ok(usize::MAX));
        assert_eq!(cap(b"0"), Err(ValueError::Zero));
        assert_eq!(cap(b"-3"), Err(ValueError::NotWhole));
        assert_eq!(cap(b"1e6"), Err(ValueError::NotWhole));
        assert_eq!(cap(b"64KiB"), Err(ValueError::NotWhole));
        assert_eq!(cap(b"\xff"), Err(ValueError::NotText));
    }

    #[test]
    fn walkers_are_named_as_documented() {
        assert_eq!(unwinder(b"auto"), Ok(Unwinder::Verifying));
        assert_eq!(unwinder(b"fp"), Ok(Unwinder::FramePointers));
        assert_eq!(unwinder(b"frame_pointers"), Ok(Unwinder::FramePointers));
        assert_eq!(unwinder(b" framehop "), Ok(Unwinder::Framehop));
        assert_eq!(unwinder(b"dwarf"), Ok(Unwinder::Dwarf));
        for bad in [
            &b"backtrace"[..],
            b"unwinder",
            b"frame-pointers",
            b"FP",
            b"",
            b"\xff",
        ] {
            assert!(unwinder(bad).is_err(), "{bad:?}");
        }
        for name in crate::config::unwinder::tests::NAMES {
            assert!(
                ValueError::UnknownUnwinder.reason().contains(name),
                "{name}"
            );
        }
    }

    #[test]
    fn dump_settings_parse_as_documented() {
        assert_eq!(percentage(b"10%"), Ok(0.10));
        assert_eq!(percentage(b" 25 "), Ok(0.25));
        assert_eq!(percentage(b"0"), Ok(0.0));
        assert_eq!(percentage(b"-1"), Err(ValueError::NotAPercentage));
        assert_eq!(percentage(b"lots"), Err(ValueError::NotAPercentage));
        assert_eq!(size(b"64MiB"), Ok(64 << 20));
        assert!(size(b"x").is_err());
        assert_eq!(seconds(b"60"), Ok(60));
        assert_eq!(seconds(b"5s"), Ok(5));
        assert_eq!(seconds(b"1m"), Err(ValueError::NotSeconds));
        assert_eq!(thresholds(b"95, 80,90,80%"), Ok(vec![80, 90, 95]));
        assert_eq!(thresholds(b"0"), Err(ValueError::NotThresholds));
        assert_eq!(thresholds(b"101"), Err(ValueError::NotThresholds));
        assert_eq!(thresholds(b"80,,90"), Err(ValueError::NotThresholds));
        assert_eq!(
            thresholds(b"1,2,3,4,5,6,7,8,9"),
            Err(ValueError::NotThresholds)
        );
        assert_eq!(boolean(b"Yes"), Ok(true));
        assert_eq!(boolean(b"off"), Ok(false));
        assert_eq!(boolean(b"maybe"), Err(ValueError::NotABool));
        assert_eq!(signal(b"SIGUSR2"), Ok(DumpSignal::Usr2));
        assert_eq!(signal(b"usr1"), Ok(DumpSignal::Usr1));
        assert_eq!(signal(b"SIGTERM"), Err(ValueError::UnknownSignal));
    }

    #[test]
    fn decimals_need_no_allocation() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(524_288, &mut buf), b"524288");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
    }
}
