//! The stack walkers, as `MEMPROF_UNWIND` names them, as code forces them,
//! and as `/stats` reports the one in use: one enum for all three, held in
//! an atomic `u8` by its discriminant where the allocator path needs it.

/// A stack walker, or the automatic choice among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Unwinder {
    /// The automatic choice: the first samples compare frame pointers and
    /// framehop with backtrace, and the cheapest that agreed every time is
    /// kept. As the walker in use: still comparing.
    Verifying = 0,
    /// Walking frame pointers.
    FramePointers = 1,
    /// DWARF unwinding through `backtrace` (libgcc).
    Dwarf = 2,
    /// DWARF unwinding through framehop, with per-thread rule caches.
    Framehop = 3,
}

impl Unwinder {
    /// The walker a `MEMPROF_UNWIND` value names: `auto`, `fp` or
    /// `frame_pointers` (the name `/stats` shows), `framehop`, `dwarf`.
    pub(crate) fn from_name(name: &str) -> Option<Unwinder> {
        match name {
            "auto" => Some(Unwinder::Verifying),
            "fp" | "frame_pointers" => Some(Unwinder::FramePointers),
            "framehop" => Some(Unwinder::Framehop),
            "dwarf" => Some(Unwinder::Dwarf),
            _ => None,
        }
    }

    /// The walker whose discriminant is `code`; any other code is
    /// [`Unwinder::Verifying`].
    #[inline(always)]
    pub(crate) fn from_u8(code: u8) -> Unwinder {
        match code {
            1 => Unwinder::FramePointers,
            2 => Unwinder::Dwarf,
            3 => Unwinder::Framehop,
            _ => Unwinder::Verifying,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Unwinder;

    /// The values `MEMPROF_UNWIND` accepts, in the order the docs list them.
    pub(crate) const NAMES: [&str; 5] = ["auto", "fp", "frame_pointers", "framehop", "dwarf"];

    #[test]
    fn discriminants_survive_a_round_trip() {
        for w in [
            Unwinder::Verifying,
            Unwinder::FramePointers,
            Unwinder::Dwarf,
            Unwinder::Framehop,
        ] {
            assert_eq!(Unwinder::from_u8(w as u8), w);
        }
        assert_eq!(Unwinder::from_u8(200), Unwinder::Verifying);
    }

    #[test]
    fn every_name_parses_and_reports_as_stats_shows_it() {
        for name in NAMES {
            assert!(Unwinder::from_name(name).is_some(), "{name}");
        }
        // The name /stats shows for a forced walker is accepted back.
        for w in [Unwinder::FramePointers, Unwinder::Dwarf, Unwinder::Framehop] {
            let shown = serde_json::to_value(w).unwrap();
            assert_eq!(Unwinder::from_name(shown.as_str().unwrap()), Some(w));
        }
    }
}
