//! How one variable was read, kept without allocating or locking.
//!
//! The allocator path records the variables it reads (before `main`,
//! perhaps), and `/stats` reads the records from another thread at any
//! time; the endpoint's variables are recorded again each time they are
//! read. A record is a handful of atomics under a sequence count: a writer
//! makes the count odd, writes, and makes it even again; a reader copies
//! the fields and keeps the copy only if the count was even and unchanged
//! around it. Nobody waits on anybody for long, and a process forked while
//! a record was half written reads that record as not read rather than
//! hanging on it.

use core::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// The most bytes of a value kept (and echoed).
pub(crate) const VALUE_MAX: usize = 64;

/// How often a reader or a rewriting writer retries a record being written
/// before giving up (a writer holds a record for a few dozen instructions;
/// only a fork in the middle of one leaves it held for good).
const TRIES: u32 = 1000;

/// How a variable was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EnvState {
    /// Not read yet: nothing that uses it has run (the endpoint's variables
    /// are read only by `serve_from_env` and `http::EndpointConfig::from_env`).
    Unread = 0,
    /// Not set (or, for `MEMPROF_ADDR`, blank); the default or the code's
    /// setting applies.
    Unset = 1,
    /// Set and valid; it was applied.
    Applied = 2,
    /// Set but refused; the default was kept.
    Invalid = 3,
}

impl EnvState {
    fn from_u8(code: u8) -> EnvState {
        match code {
            1 => EnvState::Unset,
            2 => EnvState::Applied,
            3 => EnvState::Invalid,
            _ => EnvState::Unread,
        }
    }
}

/// One variable's record.
pub(crate) struct Slot {
    /// 0: never written; odd: being written; even: stable.
    seq: AtomicU32,
    state: AtomicU8,
    /// The value as it may be shown ([`crate::os::shown_byte`]s).
    value: [AtomicU8; VALUE_MAX],
    /// How many bytes of `value` are kept; [`NO_VALUE`] for none.
    value_len: AtomicUsize,
    /// Why the value was refused: a `&'static str`'s pointer and length
    /// (null for none).
    error_ptr: AtomicPtr<u8>,
    error_len: AtomicUsize,
}

const NO_VALUE: usize = usize::MAX;

/// What a record holds, copied out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) state: EnvState,
    /// The value as shown, and its length; `None` when not kept.
    pub(crate) value: Option<([u8; VALUE_MAX], usize)>,
    pub(crate) error: Option<&'static str>,
}

impl Record {
    /// The kept value, as shown.
    pub(crate) fn value(&self) -> Option<&[u8]> {
        self.value.as_ref().map(|(bytes, len)| &bytes[..*len])
    }
}

impl Slot {
    pub(crate) const fn new() -> Slot {
        Slot {
            seq: AtomicU32::new(0),
            state: AtomicU8::new(EnvState::Unread as u8),
            value: [const { AtomicU8::new(0) }; VALUE_MAX],
            value_len: AtomicUsize::new(NO_VALUE),
            error_ptr: AtomicPtr::new(core::ptr::null_mut()),
            error_len: AtomicUsize::new(0),
        }
    }

    /// Records a reading if nothing was recorded before; returns whether
    /// this call recorded it (the first reader of a variable says a bad
    /// value, racing ones do not). `value`, if given, is kept as shown.
    pub(crate) fn record_once(
        &self,
        state: EnvState,
        value: Option<&[u8]>,
        error: Option<&'static str>,
    ) -> bool {
        if self
            .seq
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.write(1, state, value, error);
        true
    }

    /// Records a reading over any earlier one; false if a writer in the
    /// middle of a record kept it too long (the reading is then not kept).
    pub(crate) fn record(
        &self,
        state: EnvState,
        value: Option<&[u8]>,
        error: Option<&'static str>,
    ) -> bool {
        for _ in 0..TRIES {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq.is_multiple_of(2)
                && self
                    .seq
                    .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                self.write(seq + 1, state, value, error);
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    /// Writes the fields while `seq` (odd) is held; then releases it.
    fn write(&self, seq: u32, state: EnvState, value: Option<&[u8]>, error: Option<&'static str>) {
        // Release: a reader that sees any field below also sees the odd
        // count, and so rejects its copy.
        fence(Ordering::Release);
        self.state.store(state as u8, Ordering::Relaxed);
        match value {
            Some(value) => {
                let value = &value[..value.len().min(VALUE_MAX)];
                for (slot, &b) in self.value.iter().zip(value) {
                    slot.store(crate::os::shown_byte(b), Ordering::Relaxed);
                }
                self.value_len.store(value.len(), Ordering::Relaxed);
            }
            None => self.value_len.store(NO_VALUE, Ordering::Relaxed),
        }
        let (ptr, len) = error.map_or((core::ptr::null_mut(), 0), |e| {
            (e.as_ptr().cast_mut(), e.len())
        });
        self.error_ptr.store(ptr, Ordering::Relaxed);
        self.error_len.store(len, Ordering::Relaxed);
        // Release: a reader that sees the even count sees every field.
        self.seq.store(seq.wrapping_add(1), Ordering::Release);
    }

    /// The record as last written; [`EnvState::Unread`] if never written
    /// (or held by a writer for longer than a reader waits).
    pub(crate) fn read(&self) -> Record {
        for _ in 0..TRIES {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                break;
            }
            if !before.is_multiple_of(2) {
                std::thread::yield_now();
                continue;
            }
            let state = EnvState::from_u8(self.state.load(Ordering::Relaxed));
            let len = self.value_len.load(Ordering::Relaxed);
            let mut bytes = [0u8; VALUE_MAX];
            for (out, slot) in bytes.iter_mut().zip(&self.value) {
                *out = slot.load(Ordering::Relaxed);
            }
            let ptr = self.error_ptr.load(Ordering::Relaxed);
            let error_len = self.error_len.load(Ordering::Relaxed);
            // Acquire: the loads above happen before the check below, so a
            // write overlapping them shows as a changed count.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            let error = (!ptr.is_null()).then(|| {
                // SAFETY: the unchanged, even count shows that `ptr` and
                // `error_len` come from one `write`, which stored the
                // pointer and length of a `&'static str`: valid UTF-8 that
                // lives for the whole program.
                unsafe {
                    core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, error_len))
                }
            });
            return Record {
                state,
                value: (len != NO_VALUE).then_some((bytes, len.min(VALUE_MAX))),
                error,
            };
        }
        Record {
            state: EnvState::Unread,
            value: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_starts_unread() {
        let slot = Slot::new();
        assert_eq!(slot.read().state, EnvState::Unread);
        assert_eq!(slot.read().value(), None);
    }

    #[test]
    fn the_first_record_stays_and_shows_its_value_safely() {
        let slot = Slot::new();
        assert!(slot.record_once(EnvState::Invalid, Some(b"bad\x1b[2Jvalue"), Some("why")));
        assert!(!slot.record_once(EnvState::Applied, Some(b"good"), None));
        let record = slot.read();
        assert_eq!(record.state, EnvState::Invalid);
        assert_eq!(record.value(), Some(&b"bad?[2Jvalue"[..]));
        assert_eq!(record.error, Some("why"));
    }

    #[test]
    fn long_values_are_cut_and_secrets_not_kept() {
        let slot = Slot::new();
        slot.record(EnvState::Applied, Some(&[b'x'; 100]), None);
        assert_eq!(slot.read().value().map(<[u8]>::len), Some(VALUE_MAX));
        slot.record(EnvState::Applied, None, None);
        assert_eq!(slot.read().value(), None);
        assert_eq!(slot.read().state, EnvState::Applied);
    }

    #[test]
    fn a_rewrite_replaces_the_record() {
        let slot = Slot::new();
        slot.record(EnvState::Invalid, Some(b"a"), Some("first"));
        slot.record(EnvState::Unset, None, None);
        let record = slot.read();
        assert_eq!((record.state, record.error), (EnvState::Unset, None));
    }

    #[test]
    fn readers_never_see_half_a_record() {
        static SLOT: Slot = Slot::new();
        let writer = std::thread::spawn(|| {
            for i in 0..20_000u32 {
                if i % 2 == 0 {
                    SLOT.record(EnvState::Applied, Some(b"aaaaaaaa"), None);
                } else {
                    SLOT.record(EnvState::Invalid, Some(b"bbbb"), Some("b"));
                }
            }
        });
        for _ in 0..20_000 {
            let record = SLOT.read();
            match record.state {
                EnvState::Unread => {}
                EnvState::Applied => {
                    assert_eq!(
                        (record.value(), record.error),
                        (Some(&b"aaaaaaaa"[..]), None)
                    )
                }
                EnvState::Invalid => {
                    assert_eq!(
                        (record.value(), record.error),
                        (Some(&b"bbbb"[..]), Some("b"))
                    )
                }
                EnvState::Unset => panic!("never written"),
            }
        }
        writer.join().unwrap();
    }

    #[test]
    fn a_record_held_forever_reads_as_unread() {
        // As in a child forked while another thread was writing.
        let slot = Slot::new();
        slot.record(EnvState::Applied, Some(b"v"), None);
        slot.seq.fetch_add(1, Ordering::Relaxed);
        assert_eq!(slot.read().state, EnvState::Unread);
        assert!(!slot.record(EnvState::Unset, None, None));
    }
}
