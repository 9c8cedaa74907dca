//! Reading the `MEMPROF_*` variables: each one read, checked, recorded for
//! `/stats` and, when refused, said once on stderr, in this one place.
//!
//! The variables the allocator path reads (the rate, the walker, the depth
//! and the table caps, all read at the first sample, which may come before
//! `main`) are read with libc's `getenv` ([`crate::os::getenv`]): no
//! allocation and no lock (std's `env::var` allocates, and takes a lock
//! that `set_var` holds while it allocates). Their values are parsed from
//! the bytes, recorded in lock-free [`Slot`]s, and a refusal is written to
//! stderr with `write(2)`; none of it allocates. Each is read once, at its
//! owner's first use; the owner keeps the value in its own atomic.
//!
//! The endpoint's variables (`MEMPROF_ADDR`, `MEMPROF_TOKEN`) are read with
//! std when the endpoint is configured from the environment, each time it
//! is, and recorded again each time.

#[cfg(feature = "http")]
use std::net::{SocketAddr, ToSocketAddrs};

use super::slot::{EnvState, Record, Slot, VALUE_MAX};
use super::values::{self, ValueError};
use super::Unwinder;

/// A variable memprof reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Var {
    Rate,
    Unwind,
    MaxFrames,
    MaxStacks,
    MaxSamples,
    Addr,
    Token,
    DumpDir,
    DumpMargin,
    DumpFloor,
    DumpInterval,
    DumpThresholds,
    DumpKeep,
    DumpMaxBytes,
    DumpOnExit,
    DumpSignal,
}

impl Var {
    /// Every variable, in the order of the docs' table.
    pub(crate) const ALL: [Var; 16] = [
        Var::Rate,
        Var::Unwind,
        Var::MaxFrames,
        Var::MaxStacks,
        Var::MaxSamples,
        Var::Addr,
        Var::Token,
        Var::DumpDir,
        Var::DumpMargin,
        Var::DumpFloor,
        Var::DumpInterval,
        Var::DumpThresholds,
        Var::DumpKeep,
        Var::DumpMaxBytes,
        Var::DumpOnExit,
        Var::DumpSignal,
    ];

    /// Its name, NUL-terminated for `getenv`.
    fn c_name(self) -> &'static core::ffi::CStr {
        match self {
            Var::Rate => c"MEMPROF_RATE",
            Var::Unwind => c"MEMPROF_UNWIND",
            Var::MaxFrames => c"MEMPROF_MAX_FRAMES",
            Var::MaxStacks => c"MEMPROF_MAX_STACKS",
            Var::MaxSamples => c"MEMPROF_MAX_SAMPLES",
            Var::Addr => c"MEMPROF_ADDR",
            Var::Token => c"MEMPROF_TOKEN",
            Var::DumpDir => c"MEMPROF_DUMP_DIR",
            Var::DumpMargin => c"MEMPROF_DUMP_PEAK_MARGIN",
            Var::DumpFloor => c"MEMPROF_DUMP_PEAK_FLOOR",
            Var::DumpInterval => c"MEMPROF_DUMP_MIN_INTERVAL",
            Var::DumpThresholds => c"MEMPROF_DUMP_LIMIT_THRESHOLDS",
            Var::DumpKeep => c"MEMPROF_DUMP_KEEP",
            Var::DumpMaxBytes => c"MEMPROF_DUMP_MAX_BYTES",
            Var::DumpOnExit => c"MEMPROF_DUMP_ON_EXIT",
            Var::DumpSignal => c"MEMPROF_DUMP_SIGNAL",
        }
    }

    /// Its name.
    pub(crate) fn name(self) -> &'static str {
        match self.c_name().to_str() {
            Ok(name) => name,
            Err(_) => "MEMPROF_?",
        }
    }

    /// What a value should have been, after "is not".
    fn noun(self) -> &'static str {
        match self {
            Var::Rate => "a sampling rate",
            Var::Unwind => "a stack walker",
            Var::MaxFrames => "a stack depth",
            Var::MaxStacks | Var::MaxSamples => "a cap",
            Var::Addr => "an address to listen on",
            Var::Token => "a usable token",
            Var::DumpDir => "a dump directory",
            Var::DumpMargin => "a margin",
            Var::DumpFloor | Var::DumpMaxBytes => "a size",
            Var::DumpInterval => "an interval",
            Var::DumpThresholds => "a list of thresholds",
            Var::DumpKeep => "a count",
            Var::DumpOnExit => "a yes or no",
            Var::DumpSignal => "a signal to dump on",
        }
    }

    /// What to give instead, a sentence; empty where the reason says it.
    fn hint(self) -> &'static str {
        match self {
            Var::Rate => {
                "Give a number of bytes, with or without a unit (524288, 512KiB, 1 MiB; \
                 0 turns sampling off, 1 samples every allocation)."
            }
            Var::Unwind | Var::Addr => "",
            Var::MaxFrames => "Give a whole number of frames from 1 to 256.",
            Var::MaxStacks | Var::MaxSamples => "Give a whole number from 1 up.",
            Var::Token => "Give printable ASCII without spaces at either end.",
            Var::DumpDir => "",
            Var::DumpMargin => "Give a percentage from 0 to 1000 (10%, or 10).",
            Var::DumpFloor | Var::DumpMaxBytes => {
                "Give a number of bytes, with or without a unit (64MiB, 1 GiB)."
            }
            Var::DumpInterval => "Give whole seconds (60, or 60s).",
            Var::DumpThresholds => {
                "Give percentages from 1 to 100, separated by commas (80,90,95)."
            }
            Var::DumpKeep => "Give a whole number from 1 up.",
            Var::DumpOnExit => "Give 1, 0, true, false, yes, no, on or off.",
            Var::DumpSignal => "Give SIGUSR1 or SIGUSR2.",
        }
    }

    /// What happens instead, with the default if it is a number.
    fn kept(self) -> (&'static str, Option<u64>, &'static str) {
        match self {
            Var::Rate => (
                "Keeping the default rate of ",
                Some(values::DEFAULT_RATE),
                " bytes.",
            ),
            Var::Unwind => ("Keeping the automatic choice.", None, ""),
            Var::MaxFrames => (
                "Keeping the default of ",
                Some(values::DEFAULT_MAX_FRAMES as u64),
                " frames.",
            ),
            Var::MaxStacks => (
                "Keeping the default of ",
                Some(values::DEFAULT_MAX_STACKS as u64),
                ".",
            ),
            Var::MaxSamples => (
                "Keeping the default of ",
                Some(values::DEFAULT_MAX_SAMPLES as u64),
                ".",
            ),
            Var::Addr => ("No endpoint is started from the environment.", None, ""),
            Var::Token => (
                "serve() refuses to start and a router answers every request 401 \
                 until it is fixed or unset (a bad token never means no token).",
                None,
                "",
            ),
            Var::DumpDir => ("No dumps are written.", None, ""),
            Var::DumpMargin => ("Keeping the default of 10%.", None, ""),
            Var::DumpFloor => (
                "Keeping the default of ",
                Some(values::DEFAULT_DUMP_PEAK_FLOOR_BYTES),
                " bytes.",
            ),
            Var::DumpInterval => (
                "Keeping the default of ",
                Some(values::DEFAULT_DUMP_MIN_INTERVAL_SECONDS),
                " s.",
            ),
            Var::DumpThresholds => ("Keeping the default of 80,90,95.", None, ""),
            Var::DumpKeep => (
                "Keeping the default of ",
                Some(values::DEFAULT_DUMP_KEEP as u64),
                " dumps.",
            ),
            Var::DumpMaxBytes => (
                "Keeping the default of ",
                Some(values::DEFAULT_DUMP_MAX_BYTES),
                " bytes.",
            ),
            Var::DumpOnExit => ("Keeping the default: no dump at exit.", None, ""),
            Var::DumpSignal => ("No signal is handled.", None, ""),
        }
    }

    /// Whether its value may be shown (a token's never is).
    fn shown(self) -> bool {
        self != Var::Token
    }

    fn slot(self) -> &'static Slot {
        &SLOTS[self as usize]
    }
}

static SLOTS: [Slot; Var::ALL.len()] = [const { Slot::new() }; Var::ALL.len()];

/// How `var` was read, as recorded.
pub(crate) fn reading(var: Var) -> Record {
    var.slot().read()
}

/// Says on stderr, without allocating, that `value` of `var` was refused.
fn say_refused(var: Var, value: &[u8], error: ValueError, detail: &str) {
    let mut buf = [0u8; VALUE_MAX];
    let shown = crate::os::shown(value, &mut buf);
    let (before, default, after) = var.kept();
    let mut digits = [0u8; 20];
    let default = default.map_or(&[][..], |n| values::decimal(n, &mut digits));
    let (open, value, close): (&[u8], &[u8], &[u8]) = if var.shown() {
        (b"=\"", shown, b"\" is not ")
    } else {
        (b" is not ", b"", b"")
    };
    let (detail_open, detail_close): (&[u8], &[u8]) = if detail.is_empty() {
        (b"", b"")
    } else {
        (b" (", b")")
    };
    crate::os::write_stderr(&[
        b"memprof: ",
        var.name().as_bytes(),
        open,
        value,
        close,
        var.noun().as_bytes(),
        b": ",
        error.reason().as_bytes(),
        detail_open,
        detail.as_bytes(),
        detail_close,
        b". ",
        var.hint().as_bytes(),
        if var.hint().is_empty() { b"" } else { b" " },
        before.as_bytes(),
        default,
        after.as_bytes(),
        b"\n",
    ]);
}

/// Reads `var` once for the allocator path: its value if set and valid.
/// The first call records the reading (and says a refusal); later and
/// racing calls read and parse again but record nothing.
fn read_once<T>(var: Var, parse: fn(&[u8]) -> Result<T, ValueError>) -> Option<T> {
    let Some(value) = crate::os::getenv(var.c_name()) else {
        var.slot().record_once(EnvState::Unset, None, None);
        return None;
    };
    match parse(value) {
        Ok(parsed) => {
            var.slot().record_once(EnvState::Applied, Some(value), None);
            Some(parsed)
        }
        Err(error) => {
            if var
                .slot()
                .record_once(EnvState::Invalid, Some(value), Some(error.reason()))
            {
                say_refused(var, value, error, "");
            }
            None
        }
    }
}

/// `MEMPROF_RATE`, if set and valid. No allocation, no lock.
pub(crate) fn rate() -> Option<u64> {
    read_once(Var::Rate, values::rate)
}

/// `MEMPROF_UNWIND`, if set and valid ([`Unwinder::Verifying`] for `auto`).
/// No allocation, no lock.
pub(crate) fn unwinder() -> Option<Unwinder> {
    read_once(Var::Unwind, values::unwinder)
}

/// `MEMPROF_MAX_FRAMES`, if set and valid. No allocation, no lock.
pub(crate) fn max_frames() -> Option<usize> {
    read_once(Var::MaxFrames, values::max_frames)
}

/// `MEMPROF_MAX_STACKS`, if set and valid. No allocation, no lock.
pub(crate) fn max_stacks() -> Option<usize> {
    read_once(Var::MaxStacks, values::cap)
}

/// `MEMPROF_MAX_SAMPLES`, if set and valid. No allocation, no lock.
pub(crate) fn max_samples() -> Option<usize> {
    read_once(Var::MaxSamples, values::cap)
}

/// Reads `var` with std, for settings read off the allocator path (the
/// dump settings): `None` when unset or blank, else its parsed value, or
/// `None` after recording and saying the refusal. Records the reading each
/// time it is called.
pub(crate) fn read_std<T>(
    var: Var,
    parse: impl FnOnce(&[u8]) -> Result<T, ValueError>,
) -> Option<T> {
    let Some(raw) = std::env::var_os(var.name()) else {
        var.slot().record(EnvState::Unset, None, None);
        return None;
    };
    let bytes = raw.as_encoded_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        var.slot().record(EnvState::Unset, None, None);
        return None;
    }
    match parse(bytes) {
        Ok(value) => {
            var.slot().record(EnvState::Applied, Some(bytes), None);
            Some(value)
        }
        Err(error) => {
            var.slot()
                .record(EnvState::Invalid, Some(bytes), Some(error.reason()));
            say_refused(var, bytes, error, "");
            None
        }
    }
}

/// A `MEMPROF_ADDR` that names no address to listen on.
#[cfg(feature = "http")]
#[derive(Debug)]
pub(crate) struct BadAddr {
    /// The value, quoted.
    pub(crate) address: String,
    /// Why it was refused.
    pub(crate) reason: String,
}

/// `MEMPROF_ADDR`: `None` when unset or blank, else the address it names
/// (resolved, as `serve` would) or why it names none. A refusal is said on
/// stderr. Allocates: for the endpoint, never the allocator path.
#[cfg(feature = "http")]
pub(crate) fn addr() -> Option<Result<SocketAddr, BadAddr>> {
    let var = Var::Addr;
    let Some(raw) = std::env::var_os(var.name()) else {
        var.slot().record(EnvState::Unset, None, None);
        return None;
    };
    let bytes = raw.as_encoded_bytes();
    let refuse = |error: ValueError, detail: String| {
        var.slot()
            .record(EnvState::Invalid, Some(bytes), Some(error.reason()));
        say_refused(var, bytes, error, &detail);
        Some(Err(BadAddr {
            address: format!("{:?}", String::from_utf8_lossy(bytes)),
            reason: if detail.is_empty() {
                error.reason().to_owned()
            } else {
                detail
            },
        }))
    };
    let Some(text) = raw.to_str() else {
        return refuse(ValueError::NotText, String::new());
    };
    let text = text.trim();
    if text.is_empty() {
        var.slot().record(EnvState::Unset, None, None);
        return None;
    }
    match text.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(addr)) => {
            var.slot().record(EnvState::Applied, Some(bytes), None);
            Some(Ok(addr))
        }
        Ok(None) => refuse(
            ValueError::NotAnAddress,
            "resolved to no address".to_owned(),
        ),
        Err(e) => refuse(ValueError::NotAnAddress, e.to_string()),
    }
}

/// `MEMPROF_TOKEN`: `None` when unset, else the token, or why no request
/// could carry it (`check` says which tokens can be carried). A refusal is
/// said on stderr without the value, which is never echoed or kept.
#[cfg(feature = "http")]
pub(crate) fn token(
    check: impl FnOnce(&str) -> Result<(), &'static str>,
) -> Option<Result<String, &'static str>> {
    let var = Var::Token;
    let Some(raw) = std::env::var_os(var.name()) else {
        var.slot().record(EnvState::Unset, None, None);
        return None;
    };
    let checked = match raw.into_string() {
        Ok(token) => check(&token).map(|()| token),
        Err(_) => Err("it is not valid UTF-8"),
    };
    match &checked {
        Ok(_) => var.slot().record(EnvState::Applied, None, None),
        Err(reason) => {
            var.slot().record(EnvState::Invalid, None, Some(reason));
            say_refused_token(reason);
            true
        }
    };
    Some(checked)
}

/// Says on stderr that `MEMPROF_TOKEN` was refused, without its value.
#[cfg(feature = "http")]
fn say_refused_token(reason: &str) {
    let var = Var::Token;
    crate::os::write_stderr(&[
        b"memprof: ",
        var.name().as_bytes(),
        b" is not ",
        var.noun().as_bytes(),
        b": ",
        reason.as_bytes(),
        b". ",
        var.hint().as_bytes(),
        b" ",
        var.kept().0.as_bytes(),
        b"\n",
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_variables() {
        let names: Vec<&str> = Var::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(
            names,
            [
                "MEMPROF_RATE",
                "MEMPROF_UNWIND",
                "MEMPROF_MAX_FRAMES",
                "MEMPROF_MAX_STACKS",
                "MEMPROF_MAX_SAMPLES",
                "MEMPROF_ADDR",
                "MEMPROF_TOKEN",
                "MEMPROF_DUMP_DIR",
                "MEMPROF_DUMP_PEAK_MARGIN",
                "MEMPROF_DUMP_PEAK_FLOOR",
                "MEMPROF_DUMP_MIN_INTERVAL",
                "MEMPROF_DUMP_LIMIT_THRESHOLDS",
                "MEMPROF_DUMP_KEEP",
                "MEMPROF_DUMP_MAX_BYTES",
                "MEMPROF_DUMP_ON_EXIT",
                "MEMPROF_DUMP_SIGNAL",
            ]
        );
        for (i, var) in Var::ALL.iter().enumerate() {
            assert_eq!(*var as usize, i, "{var:?} indexes its slot");
        }
    }

    #[test]
    fn hints_name_what_the_parsers_accept() {
        let range = format!("from 1 to {}", values::MAX_FRAMES);
        assert!(Var::MaxFrames.hint().contains(&range));
    }
}
