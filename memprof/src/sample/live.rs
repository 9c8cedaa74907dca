//! `LiveSamples`: every sampled block that has not been freed yet.
//!
//! A hash table keyed by address in 256 shards, one per group of address
//! regions (see [`super::filter`] for why by region), kept in memory mapped
//! straight from the system (see `crate::os`). Each shard is a
//! linear-probing table behind its own `SpinLock`; deletion shifts later
//! entries back instead of leaving tombstones, so churn never degrades
//! lookups. A shard doubles (a fresh mapping, rehash, unmap) while the whole
//! table stays under its configured cap; past the cap a new sample is
//! dropped and counted. A shard whose samples fall to an eighth of its
//! slots is remapped at a quarter full, so the memory a burst took comes
//! back once its blocks are freed (see `LiveSamples::admits` for how the
//! cap is kept without a shared count).
//!
//! Lock rule: nothing allocates while a shard lock is held. A free of a
//! sampled block takes the same lock, so an allocation (and the free of a
//! reallocation's old buffer) under the lock could deadlock on itself.
//!
//! # The page gate
//!
//! Before the filter, a free meets the page gate, which settles most frees
//! by their address's low bits while every live sample is page-aligned. The
//! argument (promotion, and why the gate is never open over an unaligned
//! sample) is in `sample::promotion`; this table keeps it: inserts shut the
//! gate, and removing the last unaligned sample reopens it.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::filter::{self, SampledFilter};
pub(crate) use super::promotion::SAMPLED_BLOCK_ALIGN;
use super::promotion::{self, PAGE_MASK};
use crate::os;
use crate::sync::{CachePadded, SpinLock};

const SHARDS: usize = 1 << filter::SHARDS_LOG2;
const MIN_SHARD_CAPACITY: usize = 64;

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
    /// Interned stack id in the stack table.
    pub stack: u32,
    /// memprof's id of the allocating thread (1-based, in creation order).
    pub thread: u32,
    /// Innermost active scope id when allocated (0: none).
    pub scope: u32,
    /// Whether the allocator gave the block a page-aligned layout of at least
    /// a page instead of the one asked for (see [`LiveSample::is_promoted`]).
    promoted: bool,
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
            promoted: false,
        }
    }

    /// Marks the sample as living in a promoted block.
    pub(crate) fn promoted(mut self) -> Self {
        self.promoted = true;
        self
    }

    /// Whether the block was promoted: allocated with [`SAMPLED_BLOCK_ALIGN`]
    /// alignment and at least that size, whatever was asked for, so the free
    /// path can tell it from unsampled blocks by its address. Such a block
    /// must be freed with `promoted_layout` of the caller's layout.
    pub fn is_promoted(&self) -> bool {
        self.promoted
    }

    /// Bytes promotion added to the block (0 if it was not promoted).
    pub fn promotion_padding(&self) -> usize {
        if self.promoted {
            SAMPLED_BLOCK_ALIGN.saturating_sub(self.size)
        } else {
            0
        }
    }
}

/// The sample of a block about to be reallocated, as
/// [`LiveSamples::remove_unless_promoted`] leaves it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outgoing {
    /// An ordinary block's sample, out of the table: once the inner
    /// allocator frees or moves the block, another thread may be handed its
    /// address and sample it.
    Removed(LiveSample),
    /// A promoted block's sample, left in the table until the block is
    /// freed: only the sample says the block's real layout, so the block
    /// never lives without it, even if the reallocation fails.
    StaysUntilFreed,
}

/// What [`LiveSamples::remove_if`] found.
struct Removal {
    sample: LiveSample,
    /// Whether it was taken out of the table.
    removed: bool,
    /// It was taken out, unaligned, and its shard holds no other unaligned
    /// sample: the page gate may reopen.
    last_unaligned: bool,
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

/// A shard and its counts, on one line: the lock holder owns the line, so
/// keeping the counts there costs no further line transfer. The counts are
/// written only under the lock (plain stores) and read without it.
struct ShardSlot {
    table: SpinLock<Shard>,
    /// `table.len`.
    len: AtomicUsize,
    /// How many samples the shard may hold without asking the whole table
    /// (see `LiveSamples::admits`). Written under the shard's lock, and
    /// lowered (never raised) by other shards taking back what it does not
    /// use.
    allowance: AtomicUsize,
    /// Live samples whose address is not page-aligned (see the page gate).
    unaligned: AtomicUsize,
    /// Sum of the live samples' [`LiveSample::promotion_padding`].
    padding: AtomicUsize,
    /// Samples stored in the shard since start (a replaced one included).
    inserted: AtomicU64,
    /// Samples taken out of the shard since start (freed or replaced).
    removed: AtomicU64,
}

impl ShardSlot {
    /// Publishes the shard's length after a change.
    fn publish_len(&self, shard: &Shard) {
        self.len.store(shard.len, Ordering::Relaxed);
    }

    fn allowance(&self) -> usize {
        self.allowance.load(Ordering::Relaxed)
    }

    /// Lowers the allowance to the shard's length, if it is above; returns
    /// what was taken back.
    fn take_back_unused(&self) -> usize {
        let len = self.len.load(Ordering::Relaxed);
        let before = self.allowance.fetch_min(len, Ordering::Relaxed);
        before.saturating_sub(len)
    }

    /// What the shard holds or may fill without asking: the larger of its
    /// length and its allowance.
    fn reserved(&self) -> usize {
        (self.len.load(Ordering::Relaxed)).max(self.allowance.load(Ordering::Relaxed))
    }

    /// Adds one to a count written only under the shard lock: a load and a
    /// store, where an atomic add would be a locked instruction that waits
    /// for the core's store buffer to drain, on every sample in exact mode.
    fn bump(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// Adds (`sign` 1) or takes away (`sign` -1) `sample`'s share of the
    /// shard's unaligned count and padding. Returns the unaligned count.
    /// Caller holds the shard lock.
    fn count(&self, sample: &LiveSample, sign: isize) -> usize {
        let add = |counter: &AtomicUsize, n: usize| {
            let value = counter
                .load(Ordering::Relaxed)
                .wrapping_add_signed(n as isize * sign);
            counter.store(value, Ordering::Relaxed);
            value
        };
        add(&self.padding, sample.promotion_padding());
        add(&self.unaligned, usize::from(sample.addr & PAGE_MASK != 0))
    }
}

/// The table of live samples; see the module documentation.
pub(crate) struct LiveSamples {
    /// The page gate's mask (see the module docs), alone on its line: read
    /// by every free, written almost never.
    gate: CachePadded<AtomicUsize>,
    shards: [CachePadded<ShardSlot>; SHARDS],
    filter: SampledFilter,
    max_samples: AtomicUsize,
    mapped_bytes: AtomicUsize,
    dropped: AtomicU64,
}

impl LiveSamples {
    /// Default cap on live samples: enough for exact mode over a few million
    /// live blocks; at the default rate a 1 GiB heap needs a few thousand.
    pub(crate) const DEFAULT_MAX_SAMPLES: usize = crate::config::DEFAULT_MAX_SAMPLES;

    pub(crate) const fn new() -> Self {
        LiveSamples {
            gate: CachePadded(AtomicUsize::new(PAGE_MASK)),
            shards: [const {
                CachePadded(ShardSlot {
                    table: SpinLock::new(Shard::EMPTY),
                    len: AtomicUsize::new(0),
                    allowance: AtomicUsize::new(0),
                    unaligned: AtomicUsize::new(0),
                    padding: AtomicUsize::new(0),
                    inserted: AtomicU64::new(0),
                    removed: AtomicU64::new(0),
                })
            }; SHARDS],
            filter: SampledFilter::new(),
            max_samples: AtomicUsize::new(Self::DEFAULT_MAX_SAMPLES),
            mapped_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The shard of `addr`, by its region (see [`filter`]).
    fn shard_of(addr: usize) -> usize {
        filter::shard_of(addr)
    }

    /// The cap on live samples.
    pub(crate) fn max_samples(&self) -> usize {
        self.max_samples.load(Ordering::Relaxed)
    }

    /// Caps the number of live samples kept; later samples past it are dropped.
    pub(crate) fn set_max_samples(&self, max: usize) {
        self.max_samples.store(max.max(SHARDS), Ordering::Relaxed);
    }

    /// Whether `addr` may be live here; a `false` is certain. Lock-free, and
    /// while the page gate is open, a free of an unaligned address reads
    /// one hot word and nothing else.
    #[inline(always)]
    pub(crate) fn may_contain(&self, addr: usize) -> bool {
        // Relaxed: the gate closes before an unaligned sample's insert,
        // which happened-before its free through the program's handoff of
        // the pointer; it reopens only when no such sample is live.
        addr & self.gate.load(Ordering::Relaxed) == 0 && self.filter.may_contain(addr)
    }

    /// Whether the page gate is open: every live sample is page-aligned, so
    /// frees of other addresses skip the filter.
    pub(crate) fn page_gate_open(&self) -> bool {
        self.gate.load(Ordering::Relaxed) != 0
    }

    /// Live samples that are not page-aligned (while there are any, the page
    /// gate stays shut).
    pub(crate) fn unaligned(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.unaligned.load(Ordering::Relaxed))
            .sum()
    }

    /// Bytes that promotion adds to the live sampled blocks.
    pub(crate) fn promotion_padding(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.padding.load(Ordering::Relaxed))
            .sum()
    }

    /// Reopens the page gate if no unaligned sample is live. Cheap when one
    /// is (a scan of the shards' counts); otherwise takes every shard lock,
    /// in order, so no insert can slip in between the check and the store.
    /// The caller holds no shard lock.
    pub(crate) fn try_open_gate(&self) {
        if self.page_gate_open() || self.unaligned() != 0 {
            return;
        }
        let guards: [_; SHARDS] = core::array::from_fn(|i| self.shards[i].table.lock());
        if self.unaligned() == 0 {
            self.gate.store(PAGE_MASK, Ordering::Relaxed);
        }
        drop(guards);
    }

    /// Stores a sample. Returns `Err(())` when the table is full (the sample
    /// is dropped and counted), or `Ok(Some(old))` if a stale sample at the
    /// same address was replaced.
    pub(crate) fn insert(&self, sample: LiveSample) -> Result<Option<LiveSample>, ()> {
        debug_assert!(sample.addr != 0);
        let slot = &self.shards[Self::shard_of(sample.addr)];
        let mut shard = slot.table.lock();
        if !self.admits(slot, &mut shard) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        // Keep the load factor at or below 3/4.
        if (shard.len + 1) * 4 > shard.capacity() * 3 {
            let grown = (shard.capacity() * 2).max(MIN_SHARD_CAPACITY);
            if !self.resize(&mut shard, grown) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(());
            }
        }
        if sample.addr & PAGE_MASK != 0 && self.page_gate_open() {
            // Under this shard's lock, so `try_open_gate` cannot interleave.
            self.gate.store(0, Ordering::Relaxed);
        }
        let old = shard.insert_unchecked(sample);
        ShardSlot::bump(&slot.inserted);
        if let Some(old) = &old {
            slot.count(old, -1);
            ShardSlot::bump(&slot.removed);
        }
        slot.count(&sample, 1);
        if old.is_none() {
            slot.publish_len(&shard);
            // SAFETY: we hold the shard lock for `sample.addr`.
            unsafe { self.filter.insert(sample.addr) };
        }
        Ok(old)
    }

    /// Whether the cap leaves room for one more sample in `slot`'s shard
    /// (`shard`, locked).
    ///
    /// The cap is kept without a shared count: each shard fills up to its
    /// *allowance* without asking; past it, it reads every shard's published
    /// length and allowance, and takes a `1/SHARDS` part of what no shard
    /// holds or may fill yet. So the table-wide figures are read once per
    /// allowance, not per insert (regions do not spread evenly over the
    /// shards: a small heap may lie in a few of them, and those few may
    /// fill the whole cap). When nothing is left, it first takes back what
    /// other shards were allowed but do not hold (a shard whose region the
    /// heap has moved on from keeps an unused allowance otherwise).
    ///
    /// Allowances never sum past the cap, and neither do the samples but for
    /// inserts racing the few moments an allowance is granted or taken back
    /// (at most one per thread inserting then). A shard whose samples are
    /// freed gives its allowance back once it is twice
    /// [`LiveSamples::slack`] above its length.
    fn admits(&self, slot: &ShardSlot, shard: &mut Shard) -> bool {
        if shard.len < slot.allowance() {
            return true;
        }
        let max = self.max_samples.load(Ordering::Relaxed);
        let mut left = max.saturating_sub(self.reserved());
        if left == 0 {
            let unused: usize = self.shards.iter().map(|s| s.take_back_unused()).sum();
            if unused == 0 {
                return false;
            }
            left = max.saturating_sub(self.reserved());
            if left == 0 {
                return false;
            }
        }
        let allowance = shard.len + (left / SHARDS).max(1);
        slot.allowance.store(allowance, Ordering::Relaxed);
        true
    }

    /// What the shards hold or may fill without asking.
    fn reserved(&self) -> usize {
        self.shards.iter().map(|s| s.reserved()).sum()
    }

    /// How far above its length a shard keeps its allowance once samples
    /// are freed: a 1/32 part of an even share, so churn does not make it
    /// ask again at every insert, nor give back at every free.
    fn slack(&self) -> usize {
        (self.max_samples.load(Ordering::Relaxed) / SHARDS / 32).max(1)
    }

    /// Removes and returns the sample at `addr`, if there is one. If it was
    /// its shard's last unaligned sample, tries to reopen the page gate (see
    /// [`super::promotion`]), with the shard's lock released.
    pub(crate) fn remove(&self, addr: usize) -> Option<LiveSample> {
        let removal = self.remove_if(addr, |_| true)?;
        if removal.last_unaligned && promotion::promotes_at(super::rate::rate()) {
            self.try_open_gate();
        }
        Some(removal.sample)
    }

    /// Takes the sample of a block about to be reallocated out of the
    /// table, unless the block is promoted: see [`Outgoing`].
    pub(crate) fn remove_unless_promoted(&self, addr: usize) -> Option<Outgoing> {
        let removal = self.remove_if(addr, |s| !s.is_promoted())?;
        Some(if removal.removed {
            Outgoing::Removed(removal.sample)
        } else {
            Outgoing::StaysUntilFreed
        })
    }

    /// Finds the sample at `addr` and removes it if `remove` says so.
    fn remove_if(&self, addr: usize, remove: impl FnOnce(&LiveSample) -> bool) -> Option<Removal> {
        let slot = &self.shards[Self::shard_of(addr)];
        let mut shard = slot.table.lock();
        let i = shard.find(addr)?;
        let sample = shard.slots()[i];
        if !remove(&sample) {
            return Some(Removal {
                sample,
                removed: false,
                last_unaligned: false,
            });
        }
        shard.remove_at(i);
        slot.publish_len(&shard);
        let slack = self.slack();
        if slot.allowance() > shard.len + 2 * slack {
            slot.allowance
                .fetch_min(shard.len + slack, Ordering::Relaxed);
        }
        if shard.capacity() > MIN_SHARD_CAPACITY && shard.len * 8 <= shard.capacity() {
            // A quarter full after; a failed mapping keeps the larger table.
            let smaller = (shard.len * 4).next_power_of_two().max(MIN_SHARD_CAPACITY);
            self.resize(&mut shard, smaller);
        }
        ShardSlot::bump(&slot.removed);
        let unaligned_left = slot.count(&sample, -1);
        // SAFETY: we hold the shard lock for `addr`.
        unsafe { self.filter.remove(addr) };
        Some(Removal {
            sample,
            removed: true,
            last_unaligned: addr & PAGE_MASK != 0 && unaligned_left == 0,
        })
    }

    /// Rehashes `shard` into a fresh mapping of `capacity` slots, which
    /// must be a power of two above its length. Runs under the shard's
    /// lock; maps and unmaps, never allocates.
    fn resize(&self, shard: &mut Shard, capacity: usize) -> bool {
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
    pub(crate) fn copy_into(&self, out: &mut Vec<LiveSample>) {
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
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether no sample is live.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples offered to the table since start: stored or dropped.
    pub(crate) fn samples_taken(&self) -> u64 {
        let stored: u64 = (self.shards.iter())
            .map(|s| s.inserted.load(Ordering::Relaxed))
            .sum();
        stored + self.dropped()
    }

    /// Samples taken out of the table since start: their blocks were freed
    /// (or a stale sample was replaced by a new one at its address).
    pub(crate) fn samples_freed(&self) -> u64 {
        (self.shards.iter())
            .map(|s| s.removed.load(Ordering::Relaxed))
            .sum()
    }

    /// Samples dropped because the table was full (or memory was refused).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of memory the table has mapped.
    pub(crate) fn mapped_bytes(&self) -> usize {
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
    fn page_gate_shuts_for_unaligned_samples_and_reopens_without_them() {
        let table = Box::new(LiveSamples::new());
        let page = SAMPLED_BLOCK_ALIGN;
        assert!(table.page_gate_open());
        assert!(table
            .insert(sample(40 * page).promoted())
            .unwrap()
            .is_none());
        assert!(table.page_gate_open(), "aligned samples keep it open");
        assert!(table.may_contain(40 * page));
        for i in 1..256 {
            assert!(
                !table.may_contain(40 * page + i * 16),
                "settled by the gate"
            );
        }
        assert_eq!(table.promotion_padding(), page - 64);

        // Two unaligned samples, in different shards.
        let region = 1 << filter::REGION_SHIFT;
        let b = (1..)
            .map(|r| r * region + 48)
            .find(|&b| LiveSamples::shard_of(b) != LiveSamples::shard_of(16))
            .unwrap();
        let a = 7 * page + 16;
        assert_ne!(LiveSamples::shard_of(a), LiveSamples::shard_of(b));
        table.insert(sample(a)).unwrap();
        table.insert(sample(b)).unwrap();
        assert!(!table.page_gate_open());
        assert_eq!(table.unaligned(), 2);
        assert!(table.may_contain(a) && table.may_contain(b));
        let removal = table.remove_if(a, |_| true).unwrap();
        assert!(
            removal.last_unaligned,
            "a was its shard's only unaligned sample"
        );
        table.try_open_gate();
        assert!(!table.page_gate_open(), "b is still live");
        assert!(table.may_contain(b));
        table.remove(b).unwrap();
        table.try_open_gate();
        assert!(table.page_gate_open());
        let removal = table.remove_if(40 * page, |_| true).unwrap();
        assert!(removal.sample.is_promoted() && !removal.last_unaligned);
        assert_eq!(table.promotion_padding(), 0);
    }

    #[test]
    fn page_gate_never_opens_over_a_live_unaligned_sample() {
        let table = std::sync::Arc::new(LiveSamples::new());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let opener = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    table.try_open_gate();
                }
            })
        };
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let table = table.clone();
                std::thread::spawn(move || {
                    for round in 0..20_000usize {
                        let addr = (round % 512 + 1) * SAMPLED_BLOCK_ALIGN * 2 + t * 16;
                        if table.insert(sample(addr)).unwrap().is_none() {
                            if t == 1 {
                                assert!(!table.page_gate_open(), "round {round}");
                            }
                            assert!(table.may_contain(addr));
                            table.remove(addr).unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        opener.join().unwrap();
        table.try_open_gate();
        assert!(table.page_gate_open(), "all unaligned samples are gone");
    }

    #[test]
    fn a_promoted_sample_stays_through_a_reallocation_and_an_ordinary_one_leaves() {
        let table = Box::new(LiveSamples::new());
        let page = SAMPLED_BLOCK_ALIGN;
        table.insert(sample(9 * page).promoted()).unwrap();
        table.insert(sample(9 * page + 64)).unwrap();
        assert!(matches!(
            table.remove_unless_promoted(9 * page),
            Some(Outgoing::StaysUntilFreed)
        ));
        assert!(matches!(
            table.remove_unless_promoted(9 * page + 64),
            Some(Outgoing::Removed(s)) if s.addr == 9 * page + 64
        ));
        assert_eq!(table.len(), 1, "only the promoted sample is left");
        assert!(table.remove_unless_promoted(9 * page + 64).is_none());
        assert!(table.remove(9 * page).is_some());
    }

    /// Inserts `addrs`, returning how many were stored.
    fn fill(table: &LiveSamples, addrs: impl Iterator<Item = usize>) -> usize {
        addrs.filter(|&a| table.insert(sample(a)).is_ok()).count()
    }

    #[test]
    fn taken_and_freed_count_every_insert_and_removal() {
        let table = Box::new(LiveSamples::new());
        for a in 1..=1000usize {
            table.insert(sample(a * 16)).unwrap();
        }
        table.insert(sample(16)).unwrap(); // replaces a stale sample
        for a in 1..=300usize {
            table.remove(a * 16).unwrap();
        }
        assert!(table.remove(16).is_none());
        assert_eq!(table.samples_taken(), 1001);
        assert_eq!(table.samples_freed(), 301);
        assert_eq!(
            table.samples_taken() - table.samples_freed(),
            table.len() as u64
        );
    }

    #[test]
    fn full_table_drops_and_counts() {
        let table = Box::new(LiveSamples::new());
        let max = SHARDS * 10;
        table.set_max_samples(max);
        // Spread over many regions, so over every shard.
        let stored = fill(
            &table,
            (1..=100_000usize).map(|a| a << filter::REGION_SHIFT | 16),
        );
        assert_eq!(stored, max, "exactly the cap");
        assert_eq!(table.dropped() as usize, 100_000 - stored);
        assert_eq!(table.samples_taken(), 100_000);
        let mut all = Vec::new();
        table.copy_into(&mut all);
        assert_eq!(all.len(), stored);
    }

    #[test]
    fn a_few_regions_may_fill_the_whole_cap() {
        let table = Box::new(LiveSamples::new());
        let max = SHARDS * 10;
        table.set_max_samples(max);
        // 3 regions: 3 shards at most, each far past its even share.
        let addrs = (1..=3 << (filter::REGION_SHIFT - 4)).map(|a| (1 << 30) + a * 16);
        let stored = fill(&table, addrs);
        assert_eq!(stored, max, "exactly the cap");
        assert_eq!(table.len(), stored);
        let region = (1 << 30) + (1 << filter::REGION_SHIFT);
        assert!(table.insert(sample(region + 8)).is_err(), "full");
        // Freed room goes back to the other shards.
        for a in 1..=3 {
            assert!(table.remove((1 << 30) + a * 16).is_some());
        }
        for k in 0..3 {
            assert!(
                table.insert(sample(region + 8 + 16 * k)).is_ok(),
                "room again"
            );
        }
        assert!(table.insert(sample(region + 56)).is_err(), "full again");
        assert!(table.insert(sample((1 << 30) + 16)).is_err(), "full");
        assert_eq!(table.len(), max);
    }

    /// A heap growing through region after region leaves each region's
    /// shard with an allowance it no longer uses; the cap is filled all the
    /// same, and not passed.
    #[test]
    fn a_heap_moving_through_regions_fills_the_cap_exactly() {
        let table = Box::new(LiveSamples::new());
        table.set_max_samples(100_000);
        let stored = fill(&table, (1..=120_000usize).map(|a| (1 << 32) + a * 32));
        assert_eq!(stored, 100_000);
    }

    #[test]
    fn shards_give_their_memory_back_when_emptied() {
        let table = Box::new(LiveSamples::new());
        let empty = table.mapped_bytes();
        let addrs = || (1..=50_000usize).map(|a| a << filter::REGION_SHIFT | 16);
        assert_eq!(fill(&table, addrs()), 50_000);
        let full = table.mapped_bytes();
        assert!(full > empty + 2 * 50_000 * core::mem::size_of::<LiveSample>());
        for a in addrs().skip(1) {
            assert!(table.remove(a).is_some());
        }
        let smallest = SHARDS * MIN_SHARD_CAPACITY * core::mem::size_of::<LiveSample>();
        assert!(
            table.mapped_bytes() <= smallest,
            "{} bytes mapped after the samples were freed, {full} at most",
            table.mapped_bytes()
        );
        // The sample left is still found after its shard shrank.
        assert!(table.may_contain(1 << filter::REGION_SHIFT | 16));
        assert!(table.remove(1 << filter::REGION_SHIFT | 16).is_some());
        assert!(table.is_empty());
    }
}
