//! `LiveSamples`: every sampled block that has not been freed yet.
//!
//! A sharded hash table keyed by address, kept in memory mapped straight from
//! the system (see [`crate::os`]). Each shard is a linear-probing table behind
//! its own [`SpinLock`]; deletion shifts later entries back instead of
//! leaving tombstones, so churn never degrades lookups. A shard doubles (a
//! fresh mapping, rehash, unmap) while the whole table stays under its
//! configured cap; past the cap a new sample is dropped and counted.
//!
//! Lock rule: nothing allocates while a shard lock is held. A free of a
//! sampled block takes the same lock, so an allocation (and the free of a
//! reallocation's old buffer) under the lock could deadlock on itself.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::filter::{address_hash, SampledFilter};
use crate::os;
use crate::sync::{CachePadded, SpinLock};

const SHARDS_LOG2: u32 = 6;
const SHARDS: usize = 1 << SHARDS_LOG2;
const MIN_SHARD_CAPACITY: usize = 256;

/// One sampled block that is still allocated.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct LiveSample {
    /// Address of the block (never 0 for a stored sample).
    pub addr: usize,
    /// Requested size in bytes.
    pub size: usize,
    /// How many blocks of this size the sample stands for.
    pub weight: f64,
    /// When it was allocated, on the monotonic clock (nanoseconds).
    pub allocated_at_nanos: u64,
    /// Interned stack id (see [`crate::stack`]).
    pub stack: u32,
    /// memprof's id of the allocating thread (1-based, in creation order).
    pub thread: u32,
    /// Innermost active scope id when allocated (0: none).
    pub scope: u32,
    _reserved: u32,
}

impl LiveSample {
    /// A sample record; `addr` must be non-zero.
    pub(crate) fn new(
        addr: usize,
        size: usize,
        weight: f64,
        allocated_at_nanos: u64,
        stack: u32,
        thread: u32,
        scope: u32,
    ) -> Self {
        LiveSample {
            addr,
            size,
            weight,
            allocated_at_nanos,
            stack,
            thread,
            scope,
            _reserved: 0,
        }
    }
}

/// One shard's open-addressing table. `slots` is null until first use.
struct Shard {
    slots: *mut LiveSample,
    capacity_log2: u32,
    len: usize,
}

// SAFETY: the raw pointer is owned by the shard and only touched under its lock.
unsafe impl Send for Shard {}

impl Shard {
    const EMPTY: Shard = Shard {
        slots: core::ptr::null_mut(),
        capacity_log2: 0,
        len: 0,
    };

    fn capacity(&self) -> usize {
        if self.slots.is_null() {
            0
        } else {
            1 << self.capacity_log2
        }
    }

    fn home(&self, addr: usize) -> usize {
        ((addr as u64 >> 4).wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - self.capacity_log2))
            as usize
    }

    fn slots(&mut self) -> &mut [LiveSample] {
        if self.slots.is_null() {
            return &mut [];
        }
        // SAFETY: `slots` points to `capacity()` initialised (zeroed or
        // written) samples in a mapping this shard owns; we hold `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.slots, self.capacity()) }
    }

    fn find(&mut self, addr: usize) -> Option<usize> {
        let cap = self.capacity();
        if cap == 0 {
            return None;
        }
        let mask = cap - 1;
        let mut i = self.home(addr);
        let slots = self.slots();
        loop {
            match slots[i].addr {
                0 => return None,
                a if a == addr => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Inserts into a table known to have a free slot.
    fn insert_unchecked(&mut self, sample: LiveSample) -> Option<LiveSample> {
        let mask = self.capacity() - 1;
        let mut i = self.home(sample.addr);
        let slots = self.slots();
        loop {
            if slots[i].addr == 0 {
                slots[i] = sample;
                self.len += 1;
                return None;
            }
            if slots[i].addr == sample.addr {
                return Some(core::mem::replace(&mut slots[i], sample));
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes slot `i`, shifting back entries displaced past it.
    fn remove_at(&mut self, mut i: usize) -> LiveSample {
        let mask = self.capacity() - 1;
        let removed = self.slots()[i];
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let addr = self.slots()[j].addr;
            if addr == 0 {
                break;
            }
            let k = self.home(addr);
            // Entry j may stay if its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                let slots = self.slots();
                slots[i] = slots[j];
                i = j;
            }
        }
        self.slots()[i] = LiveSample::default();
        self.len -= 1;
        removed
    }
}

/// A shard and its length, on one line: the lock holder owns the line, so
/// keeping the length there costs no further line transfer.
struct ShardSlot {
    table: SpinLock<Shard>,
    /// `table.len`, for lock-free readers; written under the lock.
    len: AtomicUsize,
}

impl ShardSlot {
    /// Publishes the shard's length after a change (a plain store: only the
    /// lock holder writes it).
    fn publish_len(&self, shard: &Shard) {
        self.len.store(shard.len, Ordering::Relaxed);
    }
}

/// The table of live samples; see the module documentation.
pub struct LiveSamples {
    shards: [CachePadded<ShardSlot>; SHARDS],
    filter: SampledFilter,
    max_samples: AtomicUsize,
    mapped_bytes: AtomicUsize,
    dropped: AtomicU64,
}

impl LiveSamples {
    /// Default cap on live samples: enough for exact mode over a few million
    /// live blocks; at the default rate a 1 GiB heap needs a few thousand.
    pub const DEFAULT_MAX_SAMPLES: usize = 1 << 22;

    pub(crate) const fn new() -> Self {
        LiveSamples {
            shards: [const {
                CachePadded(ShardSlot {
                    table: SpinLock::new(Shard::EMPTY),
                    len: AtomicUsize::new(0),
                })
            }; SHARDS],
            filter: SampledFilter::new(),
            max_samples: AtomicUsize::new(Self::DEFAULT_MAX_SAMPLES),
            mapped_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The shard of `addr`: the top bits of the hash whose next bits pick
    /// its filter slot, so a shard's lock covers whole filter words.
    fn shard_of(addr: usize) -> usize {
        (address_hash(addr) >> (64 - SHARDS_LOG2)) as usize
    }

    /// Caps the number of live samples kept; later samples past it are dropped.
    pub(crate) fn set_max_samples(&self, max: usize) {
        self.max_samples.store(max.max(SHARDS), Ordering::Relaxed);
    }

    /// Whether `addr` may be live here; a `false` is certain. Lock-free.
    #[inline(always)]
    pub(crate) fn may_contain(&self, addr: usize) -> bool {
        self.filter.may_contain(addr)
    }

    /// Stores a sample. Returns `Err(())` when the table is full (the sample
    /// is dropped and counted), or `Ok(Some(old))` if a stale sample at the
    /// same address was replaced.
    pub(crate) fn insert(&self, sample: LiveSample) -> Result<Option<LiveSample>, ()> {
        debug_assert!(sample.addr != 0);
        let slot = &self.shards[Self::shard_of(sample.addr)];
        let mut shard = slot.table.lock();
        let per_shard_max = self.max_samples.load(Ordering::Relaxed).div_ceil(SHARDS);
        if shard.len >= per_shard_max {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        // Keep the load factor at or below 3/4.
        if (shard.len + 1) * 4 > shard.capacity() * 3 {
            let grown = (shard.capacity() * 2).max(MIN_SHARD_CAPACITY);
            if !self.grow(&mut shard, grown) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(());
            }
        }
        let old = shard.insert_unchecked(sample);
        if old.is_none() {
            slot.publish_len(&shard);
            // SAFETY: we hold the shard lock for `sample.addr`.
            unsafe { self.filter.insert(sample.addr) };
        }
        Ok(old)
    }

    /// Removes and returns the sample at `addr`, if there is one.
    pub(crate) fn remove(&self, addr: usize) -> Option<LiveSample> {
        let slot = &self.shards[Self::shard_of(addr)];
        let mut shard = slot.table.lock();
        let i = shard.find(addr)?;
        let removed = shard.remove_at(i);
        slot.publish_len(&shard);
        // SAFETY: we hold the shard lock for `addr`.
        unsafe { self.filter.remove(addr) };
        Some(removed)
    }

    /// Rehashes `shard` into a fresh mapping of `capacity` slots. Runs under
    /// the shard's lock; maps and unmaps, never allocates.
    fn grow(&self, shard: &mut Shard, capacity: usize) -> bool {
        let bytes = capacity * core::mem::size_of::<LiveSample>();
        let Some(mapping) = os::map_zeroed(bytes) else {
            return false;
        };
        let old_slots = shard.slots;
        let old_capacity = shard.capacity();
        shard.slots = mapping.as_ptr().cast();
        shard.capacity_log2 = capacity.trailing_zeros();
        shard.len = 0;
        if !old_slots.is_null() {
            for i in 0..old_capacity {
                // SAFETY: `old_slots` still maps `old_capacity` samples.
                let sample = unsafe { *old_slots.add(i) };
                if sample.addr != 0 {
                    shard.insert_unchecked(sample);
                }
            }
            let old_bytes = old_capacity * core::mem::size_of::<LiveSample>();
            // SAFETY: the old table was one mapping of `old_bytes`, fully
            // copied out above, and the shard no longer points to it.
            unsafe { os::unmap(NonNull::new_unchecked(old_slots.cast()), old_bytes) };
            self.mapped_bytes.fetch_sub(old_bytes, Ordering::Relaxed);
        }
        self.mapped_bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// Copies every live sample into `out` (appending).
    ///
    /// Each shard is copied under its lock into capacity reserved before
    /// taking it, so nothing allocates while the lock is held. Samples
    /// inserted between reserving and copying may be missed; a snapshot is a
    /// moment's view anyway.
    pub fn copy_into(&self, out: &mut Vec<LiveSample>) {
        for shard in &self.shards {
            out.reserve(shard.len.load(Ordering::Relaxed) + 16);
            let mut guard = shard.table.lock();
            for sample in guard.slots().iter() {
                if sample.addr != 0 {
                    if out.len() == out.capacity() {
                        break;
                    }
                    out.push(*sample);
                }
            }
        }
    }

    /// Number of live samples.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether no sample is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples dropped because the table was full (or memory was refused).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of memory the table has mapped.
    pub fn mapped_bytes(&self) -> usize {
        self.mapped_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn lock_all_for_fork(&self) {
        for shard in &self.shards {
            shard.table.lock_for_fork();
        }
    }

    /// # Safety
    ///
    /// Must follow [`LiveSamples::lock_all_for_fork`] in the same thread.
    pub(crate) unsafe fn unlock_all_after_fork(&self) {
        for shard in &self.shards {
            // SAFETY: taken by `lock_all_for_fork`, per the contract.
            unsafe { shard.table.unlock_after_fork() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(addr: usize) -> LiveSample {
        LiveSample::new(addr, 64, 1.0, 0, 1, 1, 0)
    }

    #[test]
    fn insert_find_remove_many() {
        let table = Box::new(LiveSamples::new());
        for a in 1..=20_000usize {
            assert!(table.insert(sample(a * 16)).unwrap().is_none());
        }
        assert_eq!(table.len(), 20_000);
        // Remove every other one; the rest must still be found.
        for a in (1..=20_000usize).step_by(2) {
            assert_eq!(table.remove(a * 16).unwrap().addr, a * 16);
        }
        for a in 1..=20_000usize {
            let found = table.remove(a * 16).is_some();
            assert_eq!(found, a % 2 == 0, "addr {a}");
        }
        assert!(table.is_empty());
        assert!(!table.may_contain(32));
    }

    #[test]
    fn concurrent_inserts_and_removes_keep_the_filter_exact() {
        let table = std::sync::Arc::new(LiveSamples::new());
        // Addresses that share filter words, from four threads at once.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let table = std::sync::Arc::clone(&table);
                std::thread::spawn(move || {
                    for round in 0..5_000usize {
                        let addr = 0x10_0000 + ((round * 4 + t) % 2048) * 16;
                        if table.insert(sample(addr)).unwrap().is_none() {
                            assert!(table.may_contain(addr));
                            assert!(table.remove(addr).is_some());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(table.is_empty());
        for i in 0..2048usize {
            assert!(
                !table.may_contain(0x10_0000 + i * 16),
                "every insert was removed, so every bit is clear"
            );
        }
    }

    #[test]
    fn full_table_drops_and_counts() {
        let table = Box::new(LiveSamples::new());
        table.set_max_samples(SHARDS * 10);
        let mut stored = 0;
        for a in 1..=100_000usize {
            if table.insert(sample(a * 16)).is_ok() {
                stored += 1;
            }
        }
        assert!(stored <= SHARDS * 10);
        assert!(stored >= SHARDS * 5, "every shard fills up to its share");
        assert_eq!(table.dropped() as usize, 100_000 - stored);
        let mut all = Vec::new();
        table.copy_into(&mut all);
        assert_eq!(all.len(), stored);
    }
}
