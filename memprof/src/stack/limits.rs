//! `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES`: the table caps, read from
//! the environment once, before the stack table is first used, so they hold
//! even when sampling starts before `main` (`MEMPROF_RATE=1`).
//!
//! A cap set in code wins over the environment: the setters read the
//! environment first, then apply their own value.

use core::sync::atomic::{AtomicBool, Ordering};

/// The defaults, as said when a bad value keeps them.
const DEFAULT_MAX_STACKS_SHOWN: &[u8] = b"4194304";
const DEFAULT_MAX_SAMPLES_SHOWN: &[u8] = b"4194304";

/// Whether the environment has been read (or is being read).
static READ: AtomicBool = AtomicBool::new(false);

/// Applies `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES` the first time it
/// is called; later calls do nothing. Never allocates (it runs on the
/// allocator's slow path, before the stack table's first use).
pub(crate) fn apply_env_once() {
    if READ.load(Ordering::Relaxed) || READ.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Some(max) = read_cap(
        c"MEMPROF_MAX_STACKS",
        b"MEMPROF_MAX_STACKS",
        DEFAULT_MAX_STACKS_SHOWN,
    ) {
        super::STACKS.store_max_stacks(max);
    }
    if let Some(max) = read_cap(
        c"MEMPROF_MAX_SAMPLES",
        b"MEMPROF_MAX_SAMPLES",
        DEFAULT_MAX_SAMPLES_SHOWN,
    ) {
        crate::sample::LIVE.set_max_samples(max);
    }
}

/// A cap: a whole number from 1 up.
fn parse_cap(value: &[u8]) -> Option<usize> {
    let cap: usize = core::str::from_utf8(value).ok()?.trim().parse().ok()?;
    (cap > 0).then_some(cap)
}

/// The variable's value if set and valid; a bad value is said on stderr
/// (naming `default`, which stays).
fn read_cap(var: &core::ffi::CStr, name: &[u8], default: &[u8]) -> Option<usize> {
    let value = crate::os::getenv(var)?;
    let cap = parse_cap(value);
    if cap.is_none() {
        let mut buf = [0u8; 64];
        let shown = crate::os::shown(value, &mut buf);
        crate::os::write_stderr(&[
            b"memprof: ",
            name,
            b"=\"",
            shown,
            b"\" is not a cap: give a whole number from 1 up. Keeping the default of ",
            default,
            b".\n",
        ]);
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::live::LiveSamples;
    use crate::stack::StackTable;

    #[test]
    fn caps_are_whole_positive_numbers() {
        assert_eq!(parse_cap(b"200000"), Some(200_000));
        assert_eq!(parse_cap(b" 7 "), Some(7));
        assert_eq!(parse_cap(b"0"), None);
        assert_eq!(parse_cap(b"-3"), None);
        assert_eq!(parse_cap(b"1e6"), None);
        assert_eq!(parse_cap(b"\xff"), None);
    }

    #[test]
    fn the_defaults_said_for_bad_caps_are_the_defaults() {
        assert_eq!(
            parse_cap(DEFAULT_MAX_STACKS_SHOWN),
            Some(StackTable::DEFAULT_MAX_STACKS)
        );
        assert_eq!(
            parse_cap(DEFAULT_MAX_SAMPLES_SHOWN),
            Some(LiveSamples::DEFAULT_MAX_SAMPLES)
        );
    }
}
