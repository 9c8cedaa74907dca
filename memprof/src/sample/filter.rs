//! A lock-free prefilter that answers "was this address sampled?" on free.
//!
//! Almost every `dealloc` is of a block that was never sampled, and must learn
//! that without a lock or a shared write. The filter hashes an address to one
//! of 65,536 slots. Each slot has a counter of live samples hashed there, and
//! one bit that is set exactly while the counter is non-zero. The fast path
//! reads only the bits: a clear bit proves the address is not in the live
//! table; a set one sends the free to the locked lookup, which settles it.
//!
//! Why bits beside counters: the fast path's footprint is what it costs. A
//! byte per slot (64 KiB) does not stay in a 32-48 KiB L1 cache next to the
//! program's own data, and every free touches a random line of it; the
//! 8 KiB bitmap does. The counters are only touched when a sample is
//! recorded or forgotten, under a small lock per bitmap word, so a bit and
//! its counter always change together.
//!
//! With `n` live samples the false-positive rate is about `n / 65536`: at the
//! default rate a 1 GiB heap holds a few thousand samples, so a few percent of
//! frees take the cold path and find nothing. Counters saturate at 255 and
//! then stick (their bit stays set), which can only add false positives;
//! exact mode, where every block is sampled, sets most bits and every free
//! takes the lookup, as it must.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::sync::SpinLock;

const SLOTS_LOG2: u32 = 16;
const SLOTS: usize = 1 << SLOTS_LOG2;
const WORDS: usize = SLOTS / 64;
const LOCKS: usize = 64;
const STUCK: u8 = u8::MAX;

/// Per-address bits and counters; see the module documentation.
pub(crate) struct SampledFilter {
    bits: [AtomicU64; WORDS],
    counts: [AtomicU8; SLOTS],
    /// Lock `w % LOCKS` guards word `w` of `bits` and its 64 counters.
    locks: [SpinLock<()>; LOCKS],
}

impl SampledFilter {
    pub(crate) const fn new() -> Self {
        SampledFilter {
            bits: [const { AtomicU64::new(0) }; WORDS],
            counts: [const { AtomicU8::new(0) }; SLOTS],
            locks: [const { SpinLock::new(()) }; LOCKS],
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
        let slot = Self::slot(addr);
        // Relaxed: a block's own insert happened-before its free through the
        // program's handoff of the pointer; other slots' races only change
        // the answer for other addresses.
        self.bits[slot / 64].load(Ordering::Relaxed) & (1 << (slot % 64)) != 0
    }

    /// Records that `addr` is now a live sample.
    pub(crate) fn insert(&self, addr: usize) {
        let slot = Self::slot(addr);
        let _guard = self.locks[(slot / 64) % LOCKS].lock();
        let count = self.counts[slot].load(Ordering::Relaxed);
        if count == STUCK {
            return;
        }
        self.counts[slot].store(count + 1, Ordering::Relaxed);
        if count == 0 {
            self.bits[slot / 64].fetch_or(1 << (slot % 64), Ordering::Relaxed);
        }
    }

    /// Records that `addr`, inserted earlier, is no longer a live sample.
    pub(crate) fn remove(&self, addr: usize) {
        let slot = Self::slot(addr);
        let _guard = self.locks[(slot / 64) % LOCKS].lock();
        let count = self.counts[slot].load(Ordering::Relaxed);
        if count == STUCK || count == 0 {
            return;
        }
        self.counts[slot].store(count - 1, Ordering::Relaxed);
        if count == 1 {
            self.bits[slot / 64].fetch_and(!(1 << (slot % 64)), Ordering::Relaxed);
        }
    }

    pub(crate) fn lock_all_for_fork(&self) {
        for lock in &self.locks {
            lock.lock_for_fork();
        }
    }

    /// # Safety
    ///
    /// Must follow [`SampledFilter::lock_all_for_fork`] in the same thread.
    pub(crate) unsafe fn unlock_all_after_fork(&self) {
        for lock in &self.locks {
            // SAFETY: taken by `lock_all_for_fork`, per the contract.
            unsafe { lock.unlock_after_fork() };
        }
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
        assert!(f.may_contain(0x1000), "one of two still live");
        f.remove(0x1000);
        assert!(!f.may_contain(0x1000));
        f.remove(0x1000);
        assert!(!f.may_contain(0x1000), "an extra remove does not underflow");
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

    #[test]
    fn concurrent_inserts_and_removes_keep_bits_and_counts_together() {
        let f = std::sync::Arc::new(SampledFilter::new());
        // Addresses that share bitmap words, from four threads at once.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let f = std::sync::Arc::clone(&f);
                std::thread::spawn(move || {
                    for round in 0..2_000usize {
                        let addr = 0x10_0000 + ((round * 4 + t) % 512) * 16;
                        f.insert(addr);
                        assert!(f.may_contain(addr));
                        f.remove(addr);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for i in 0..512usize {
            assert!(
                !f.may_contain(0x10_0000 + i * 16),
                "every insert was removed"
            );
        }
    }
}
