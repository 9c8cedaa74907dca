//! A lock-free prefilter that answers "was this address sampled?" on free.
//!
//! Almost every `dealloc` is of a block that was never sampled, and must learn
//! that without a lock or a shared write. This is a counting Bloom filter with
//! one hash: 65,536 one-byte counters (64 KiB, one L2-resident table). A
//! sampled address increments its counter; freeing it decrements. A zero
//! counter proves the address is not in the live table; a non-zero one sends
//! the free to the locked lookup, which settles it.
//!
//! With `n` live samples the false-positive rate is about `n / 65536`: at the
//! default rate a 1 GiB heap holds a few thousand samples, so a few percent of
//! frees take the cold path and find nothing. Counters saturate at 255 and
//! then stick (never decrement), which can only add false positives; exact
//! mode, where every block is sampled, fills the filter and every free takes
//! the lookup, as it must.

use core::sync::atomic::{AtomicU8, Ordering};

const SLOTS_LOG2: u32 = 16;
const SLOTS: usize = 1 << SLOTS_LOG2;
const STUCK: u8 = u8::MAX;

/// Per-address counters; see the module documentation.
pub(crate) struct SampledFilter {
    counts: [AtomicU8; SLOTS],
}

impl SampledFilter {
    pub(crate) const fn new() -> Self {
        SampledFilter {
            counts: [const { AtomicU8::new(0) }; SLOTS],
        }
    }

    #[inline(always)]
    fn slot(addr: usize) -> usize {
        // Fibonacci hashing of the address without its alignment bits.
        ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS_LOG2)) as usize
    }

    /// Whether `addr` may be a live sample. `false` is certain.
    #[inline(always)]
    pub(crate) fn may_contain(&self, addr: usize) -> bool {
        // Relaxed: a block's own insert happened-before its free through the
        // program's handoff of the pointer; other slots' races only change
        // the answer for other addresses.
        self.counts[Self::slot(addr)].load(Ordering::Relaxed) != 0
    }

    /// Records that `addr` is now a live sample.
    pub(crate) fn insert(&self, addr: usize) {
        let slot = &self.counts[Self::slot(addr)];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            (c != STUCK).then(|| c + 1)
        });
    }

    /// Records that `addr`, inserted earlier, is no longer a live sample.
    pub(crate) fn remove(&self, addr: usize) {
        let slot = &self.counts[Self::slot(addr)];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            (c != STUCK && c != 0).then(|| c - 1)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_then_remove_clears() {
        let f = Box::new(SampledFilter::new());
        assert!(!f.may_contain(0x1000));
        f.insert(0x1000);
        f.insert(0x1000);
        assert!(f.may_contain(0x1000));
        f.remove(0x1000);
        assert!(f.may_contain(0x1000));
        f.remove(0x1000);
        assert!(!f.may_contain(0x1000));
    }

    #[test]
    fn saturated_counters_stick() {
        let f = Box::new(SampledFilter::new());
        for _ in 0..300 {
            f.insert(0x2000);
        }
        for _ in 0..300 {
            f.remove(0x2000);
        }
        assert!(f.may_contain(0x2000), "a stuck counter never says no");
    }
}
