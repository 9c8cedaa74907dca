//! A lock-free prefilter that answers "was this address sampled?" on free.
//!
//! Almost every `dealloc` is of a block that was never sampled, and must learn
//! that without a lock or a shared write. Most learn it from the page gate in
//! front of the filter (see [`super::live`]); the page-aligned rest, and every
//! free while the gate is shut, ask the filter. It hashes an address to one
//! of 65,536 slots. Each slot has a counter of live samples hashed there, and
//! one bit that is set exactly while the counter is non-zero. The fast path
//! reads only the bits: a clear bit proves the address is not in the live
//! table; a set one sends the free to the locked lookup, which settles it.
//!
//! Why bits beside counters: the fast path's footprint is what it costs. A
//! byte per slot (64 KiB) does not stay in a 32-48 KiB L1 cache next to the
//! program's own data, and every free touches a random line of it; the
//! 8 KiB bitmap does. The counters are only touched when a sample is
//! recorded or forgotten, by [`LiveSamples`](super::LiveSamples) under the
//! lock of the shard the address belongs to. A shard owns whole bitmap
//! words: an address's slot is its shard's number in the top bits (see
//! `shard_of`) above a hash of the address, so the shard lock serialises
//! every change to a word and its counters, and a bit and its counter
//! change together without a lock of the filter's own.
//!
//! Shards are picked by address *region* (64 KiB), not by address: the
//! inner allocator gives each thread an arena of its own (jemalloc, glibc),
//! whose blocks lie in regions of their own, so threads sampling and freeing
//! their own blocks mostly take different shard locks and write different
//! filter words. Hashed by address, every shard's lock line moved between
//! the cores on almost every sample, which in exact mode cost more than the
//! table work itself.
//!
//! With `n` live samples the false-positive rate is about `n / 65536`: at the
//! default rate a 1 GiB heap holds a few thousand samples, so a few percent of
//! frees take the cold path and find nothing. Counters saturate at 255 and
//! then stick (their bit stays set), which can only add false positives;
//! exact mode, where every block is sampled, sets most bits and every free
//! takes the lookup, as it must.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const SLOTS_LOG2: u32 = 16;
const SLOTS: usize = 1 << SLOTS_LOG2;
const WORDS: usize = SLOTS / 64;
const STUCK: u8 = u8::MAX;

/// log2 of the number of shards the filter's slots are grouped by.
pub(crate) const SHARDS_LOG2: u32 = 8;
/// log2 of the slots in one shard's group.
const SHARD_SLOTS_LOG2: u32 = SLOTS_LOG2 - SHARDS_LOG2;
const _: () = assert!(SHARD_SLOTS_LOG2 >= 6, "a shard owns whole bitmap words");

/// log2 of a region's size: every address in one region has one shard.
pub(crate) const REGION_SHIFT: u32 = 16;

/// The shard of `addr`: Fibonacci hashing of its region's number, so an
/// arena's neighbouring regions spread over the shards.
#[inline(always)]
pub(crate) fn shard_of(addr: usize) -> usize {
    ((addr as u64 >> REGION_SHIFT).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS_LOG2))
        as usize
}

/// The hash that spreads a shard's addresses over its slots: Fibonacci
/// hashing of the address without its alignment bits.
#[inline(always)]
fn address_hash(addr: usize) -> u64 {
    (addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Per-address bits and counters; see the module documentation.
pub(crate) struct SampledFilter {
    bits: [AtomicU64; WORDS],
    counts: [AtomicU8; SLOTS],
}

impl SampledFilter {
    pub(crate) const fn new() -> Self {
        SampledFilter {
            bits: [const { AtomicU64::new(0) }; WORDS],
            counts: [const { AtomicU8::new(0) }; SLOTS],
        }
    }

    /// `addr`'s slot: its shard's group, and a slot within it.
    #[inline(always)]
    fn slot(addr: usize) -> usize {
        shard_of(addr) << SHARD_SLOTS_LOG2
            | (address_hash(addr) >> (64 - SHARD_SLOTS_LOG2)) as usize
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

    /// Rewrites bitmap word `w`. A load and a store, not an atomic
    /// read-modify-write: every writer of the word holds the same lock (see
    /// `insert`'s contract); readers see the old word or the new one.
    #[inline(always)]
    fn set_bits(&self, w: usize, f: impl FnOnce(u64) -> u64) {
        let word = &self.bits[w];
        word.store(f(word.load(Ordering::Relaxed)), Ordering::Relaxed);
    }

    /// Records that `addr` is now a live sample.
    ///
    /// # Safety
    ///
    /// The caller holds a lock that every writer of `addr`'s bitmap word
    /// holds: `LiveSamples`' shard lock for `addr` (see the module docs).
    pub(crate) unsafe fn insert(&self, addr: usize) {
        let slot = Self::slot(addr);
        let count = self.counts[slot].load(Ordering::Relaxed);
        if count == STUCK {
            return;
        }
        self.counts[slot].store(count + 1, Ordering::Relaxed);
        if count == 0 {
            self.set_bits(slot / 64, |word| word | 1 << (slot % 64));
        }
    }

    /// Records that `addr`, inserted earlier, is no longer a live sample.
    ///
    /// # Safety
    ///
    /// As for [`SampledFilter::insert`].
    pub(crate) unsafe fn remove(&self, addr: usize) {
        let slot = Self::slot(addr);
        let count = self.counts[slot].load(Ordering::Relaxed);
        if count == STUCK || count == 0 {
            return;
        }
        self.counts[slot].store(count - 1, Ordering::Relaxed);
        if count == 1 {
            self.set_bits(slot / 64, |word| word & !(1 << (slot % 64)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `insert` from the test's single thread (no other writer exists).
    fn insert(f: &SampledFilter, addr: usize) {
        // SAFETY: only this thread writes to `f`.
        unsafe { f.insert(addr) }
    }

    /// `remove` from the test's single thread (no other writer exists).
    fn remove(f: &SampledFilter, addr: usize) {
        // SAFETY: only this thread writes to `f`.
        unsafe { f.remove(addr) }
    }

    #[test]
    fn insert_then_remove_clears() {
        let f = Box::new(SampledFilter::new());
        assert!(!f.may_contain(0x1000));
        insert(&f, 0x1000);
        insert(&f, 0x1000);
        assert!(f.may_contain(0x1000));
        remove(&f, 0x1000);
        assert!(f.may_contain(0x1000), "one of two still live");
        remove(&f, 0x1000);
        assert!(!f.may_contain(0x1000));
        remove(&f, 0x1000);
        assert!(!f.may_contain(0x1000), "an extra remove does not underflow");
    }

    #[test]
    fn saturated_counters_stick() {
        let f = Box::new(SampledFilter::new());
        for _ in 0..300 {
            insert(&f, 0x2000);
        }
        for _ in 0..300 {
            remove(&f, 0x2000);
        }
        assert!(f.may_contain(0x2000), "a stuck counter never says no");
    }

    #[test]
    fn a_shard_owns_whole_filter_words() {
        let mut x = 0x1234_5678_9abc_u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = (x as usize & 0x7fff_ffff_fff0) | 16;
            assert_eq!(
                SampledFilter::slot(addr) >> SHARD_SLOTS_LOG2,
                shard_of(addr)
            );
            assert_eq!(
                shard_of(addr),
                shard_of(addr ^ 0xfff0),
                "one region, one shard"
            );
        }
    }
}
