//! `StackTable`: interned stacks and their per-stack counters.
//!
//! Every distinct stack gets a small integer id, the same id every time it is
//! seen again. Records and frames live in regions reserved once with
//! `MAP_NORESERVE` for the configured maximum and filled in order, so only
//! the pages in use become resident. Lookup goes through a sharded hash
//! index whose shards grow by remapping. Past the maximum, new stacks are
//! attributed to [`OVERFLOW_STACK`] and counted, so totals stay honest.
//!
//! Counters are estimates (sums of sample weights) in fixed point, so one
//! `fetch_add` updates each: objects in 1/65536ths, bytes in 1/256ths. A
//! compare-and-swap loop over `f64` bits reads the line before it can write
//! it, two coherence trips where a cold line costs one. Sums wrap modulo
//! 2^64 (objects after 2^48 of them, bytes after 64 PiB per stripe), which
//! leaves "in use", a difference of two sums, exact; snapshot readers never
//! lock.
//! Each stack has one set of counters per stripe (see `crate::stripe`),
//! apart from the fields lookups read, so threads sampling the same stack at
//! once (every allocation, in exact mode) do not pass one line back and
//! forth, and a thread holding a stripe's lease adds without atomics.

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::fixed::Fixed;
use crate::os;
use crate::stripe::{self, STRIPES};
use crate::sync::{CachePadded, SpinLock};

pub use crate::config::{DEFAULT_MAX_FRAMES, MAX_FRAMES};

/// The most addresses one stored stack holds: the deepest walk, a
/// truncation marker and a scope marker.
pub(crate) const STACK_LEN_MAX: usize = MAX_FRAMES + 2;

/// The id standing for "a stack the full table could not store".
pub const OVERFLOW_STACK: u32 = 0;

/// Entries in the lock-free cache of recently interned stacks.
const RECENT: usize = 4096;
const INDEX_SHARDS_LOG2: u32 = 4;
const INDEX_SHARDS: usize = 1 << INDEX_SHARDS_LOG2;
const MIN_INDEX_CAPACITY: usize = 256;
/// Frames reserved per stack on average when sizing the frame region.
const AVERAGE_FRAMES: usize = 32;

/// One stack's record.
#[repr(C, align(64))]
struct StackRecord {
    hash: u64,
    /// Offset of the first frame in the frame region.
    frames_at: u64,
    /// `frame count + 1` once published; 0 while being written.
    published: AtomicU32,
    /// Summed by readers; see the module documentation.
    stripes: Stripes,
}

/// A stack's stripes, starting on a line of their own.
#[repr(C, align(64))]
struct Stripes([StripeCounters; STRIPES]);

/// One stripe of a stack's counters (fixed point, see `crate::fixed`).
#[repr(C)]
struct StripeCounters {
    alloc_objects: AtomicU64,
    alloc_bytes: AtomicU64,
    freed_objects: AtomicU64,
    freed_bytes: AtomicU64,
}

/// Per-stack estimates read from the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StackCounters {
    /// Estimated objects allocated from this stack since start.
    pub alloc_objects: f64,
    /// Estimated bytes allocated from this stack since start.
    pub alloc_bytes: f64,
    /// Estimated objects from this stack still allocated.
    pub inuse_objects: f64,
    /// Estimated bytes from this stack still allocated.
    pub inuse_bytes: f64,
}

struct IndexShard {
    /// Slots hold `id + 1`; 0 is empty.
    slots: *mut u32,
    capacity_log2: u32,
    len: usize,
}

// SAFETY: the index memory is owned by the shard and only used under its lock.
unsafe impl Send for IndexShard {}

/// The stack table; see the module documentation.
pub struct StackTable {
    init: SpinLock<bool>,
    records: AtomicPtr<StackRecord>,
    frames: AtomicPtr<usize>,
    max_stacks: AtomicUsize,
    frame_capacity: AtomicUsize,
    next_id: AtomicU32,
    next_frame: AtomicUsize,
    index: [CachePadded<SpinLock<IndexShard>>; INDEX_SHARDS],
    /// Recently interned stacks, `hash`'s high half beside the id, slot
    /// `hash % RECENT`: a stack seen before is found here without a lock
    /// (and without writing a line another thread reads); the index under
    /// its locks is the authority.
    recent: [AtomicU64; RECENT],
    index_bytes: AtomicUsize,
    dropped: AtomicU64,
}

/// Hashes a stack: FxHash-style mixing (fast; stacks are not adversarial)
/// in four lanes, each frame going to lane `i % 4`. One lane is a chain of
/// dependent multiplies, about five cycles a frame; four interleave, and a
/// stack is hashed on every sample.
fn hash_frames(frames: &[usize]) -> u64 {
    const K: u64 = 0x51_7C_C1_B7_27_22_0A_95;
    let mix = |h: u64, f: usize| (h.rotate_left(5) ^ f as u64).wrapping_mul(K);
    let mut lanes = [frames.len() as u64, 1, 2, 3];
    let mut quads = frames.chunks_exact(4);
    for quad in &mut quads {
        for (lane, &f) in lanes.iter_mut().zip(quad) {
            *lane = mix(*lane, f);
        }
    }
    for (lane, &f) in lanes.iter_mut().zip(quads.remainder()) {
        *lane = mix(*lane, f);
    }
    let h = lanes.into_iter().fold(0, |h, lane| mix(h, lane as usize));
    h ^ (h >> 29)
}

impl StackTable {
    /// Default cap on distinct stacks.
    pub const DEFAULT_MAX_STACKS: usize = crate::config::DEFAULT_MAX_STACKS;

    pub(crate) const fn new() -> Self {
        StackTable {
            init: SpinLock::new(false),
            records: AtomicPtr::new(core::ptr::null_mut()),
            frames: AtomicPtr::new(core::ptr::null_mut()),
            max_stacks: AtomicUsize::new(Self::DEFAULT_MAX_STACKS),
            frame_capacity: AtomicUsize::new(0),
            next_id: AtomicU32::new(1),
            next_frame: AtomicUsize::new(0),
            index: [const {
                CachePadded(SpinLock::new(IndexShard {
                    slots: core::ptr::null_mut(),
                    capacity_log2: 0,
                    len: 0,
                }))
            }; INDEX_SHARDS],
            recent: [const { AtomicU64::new(0) }; RECENT],
            index_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets the cap if the table is not in use yet; returns whether it did
    /// (the regions are sized for the cap when the first stack is interned).
    pub(crate) fn set_max_stacks(&self, max: usize) -> bool {
        let in_use = self.init.lock();
        if *in_use {
            return false;
        }
        self.store_max_stacks(max);
        true
    }

    /// The cap on distinct stacks.
    pub(crate) fn max_stacks(&self) -> usize {
        self.max_stacks.load(Ordering::Relaxed)
    }

    /// Sets the cap without looking: for the environment's value, read
    /// before the regions are sized, with or without the init lock held.
    pub(crate) fn store_max_stacks(&self, max: usize) {
        self.max_stacks
            .store(max.clamp(2, u32::MAX as usize / 2), Ordering::Relaxed);
    }

    /// Reserves the regions on first use. Returns false if memory was refused.
    fn ensure_init(&self) -> bool {
        if !self.records.load(Ordering::Acquire).is_null() {
            return true;
        }
        let mut done = self.init.lock();
        if *done {
            return true;
        }
        if core::ptr::eq(self, &super::STACKS) {
            super::limits::apply_env_once();
        }
        let max = self.max_stacks.load(Ordering::Relaxed);
        let frame_capacity = max * AVERAGE_FRAMES + STACK_LEN_MAX;
        let Some(records) = os::map_zeroed(max * core::mem::size_of::<StackRecord>()) else {
            return false;
        };
        let Some(frames) = os::map_zeroed(frame_capacity * core::mem::size_of::<usize>()) else {
            // SAFETY: just mapped with this size, never shared.
            unsafe { os::unmap(records, max * core::mem::size_of::<StackRecord>()) };
            return false;
        };
        let records: *mut StackRecord = records.as_ptr().cast();
        // Record 0 is the overflow stack: published, with no frames.
        // SAFETY: the region holds at least two zeroed records.
        unsafe { (*records).published.store(1, Ordering::Relaxed) };
        self.frame_capacity.store(frame_capacity, Ordering::Relaxed);
        self.frames.store(frames.as_ptr().cast(), Ordering::Release);
        // Release: a reader that sees `records` sees everything above.
        self.records.store(records, Ordering::Release);
        *done = true;
        true
    }

    fn record(&self, id: u32) -> Option<&StackRecord> {
        let records = self.records.load(Ordering::Acquire);
        if records.is_null() || id as usize >= self.max_stacks.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: `records` maps `max_stacks` records for the life of the
        // process (it is never unmapped), and every field is an atomic or is
        // written before `published` is set with Release.
        Some(unsafe { &*records.add(id as usize) })
    }

    /// Returns the id of `frames`, interning it if new.
    ///
    /// Never allocates. Returns [`OVERFLOW_STACK`] when the table is full or
    /// memory could not be mapped.
    pub(crate) fn intern(&self, frames: &[usize]) -> u32 {
        let frames = &frames[..frames.len().min(STACK_LEN_MAX)];
        if !self.ensure_init() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return OVERFLOW_STACK;
        }
        let hash = hash_frames(frames);
        let recent = &self.recent[hash as usize % RECENT];
        let seen = recent.load(Ordering::Relaxed);
        if seen >> 32 == hash >> 32 && self.is_stack(seen as u32, hash, frames) {
            return seen as u32;
        }
        let mut shard = self.index[(hash >> (64 - INDEX_SHARDS_LOG2)) as usize].lock();
        if let Some(id) = self.find(&shard, hash, frames) {
            recent.store(hash >> 32 << 32 | u64::from(id), Ordering::Relaxed);
            return id;
        }
        // Grow the index shard at 3/4 load.
        let capacity = if shard.slots.is_null() {
            0
        } else {
            1 << shard.capacity_log2
        };
        if (shard.len + 1) * 4 > capacity * 3
            && !self.grow_index(&mut shard, (capacity * 2).max(MIN_INDEX_CAPACITY))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return OVERFLOW_STACK;
        }
        let max = self.max_stacks.load(Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frames_at = self.next_frame.fetch_add(frames.len(), Ordering::Relaxed);
        if id as usize >= max
            || frames_at + frames.len() > self.frame_capacity.load(Ordering::Relaxed)
        {
            self.next_id.store(max as u32, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return OVERFLOW_STACK;
        }
        let base = self.frames.load(Ordering::Acquire);
        // SAFETY: `frames_at..frames_at + len` lies inside the frame region
        // (checked above) and was handed to us alone by the fetch_add.
        unsafe {
            core::ptr::copy_nonoverlapping(frames.as_ptr(), base.add(frames_at), frames.len())
        };
        let records = self.records.load(Ordering::Acquire);
        // SAFETY: `id < max`, and this id was handed to us alone; no reader
        // looks at `hash`/`frames_at` before `published` is set below.
        unsafe {
            let record = records.add(id as usize);
            (*record).hash = hash;
            (*record).frames_at = frames_at as u64;
            (*record)
                .published
                .store(frames.len() as u32 + 1, Ordering::Release);
        }
        Self::insert_index_with_hash(&mut shard, id, hash);
        recent.store(hash >> 32 << 32 | u64::from(id), Ordering::Relaxed);
        id
    }

    /// Whether `id` is the published stack `frames` (with `hash`). Lock-free.
    fn is_stack(&self, id: u32, hash: u64, frames: &[usize]) -> bool {
        if id == OVERFLOW_STACK {
            return false;
        }
        // `frames` first: its Acquire load of `published` makes `hash`, written
        // before the Release that published the record, visible.
        match (self.frames(id), self.record(id)) {
            (Some(stored), Some(record)) => record.hash == hash && stored == frames,
            _ => false,
        }
    }

    fn find(&self, shard: &IndexShard, hash: u64, frames: &[usize]) -> Option<u32> {
        if shard.slots.is_null() {
            return None;
        }
        let mask = (1usize << shard.capacity_log2) - 1;
        let mut i = (hash as usize) & mask;
        loop {
            // SAFETY: `i <= mask` and the shard maps `mask + 1` slots.
            let slot = unsafe { *shard.slots.add(i) };
            if slot == 0 {
                return None;
            }
            let id = slot - 1;
            if let Some(record) = self.record(id) {
                if record.hash == hash && self.frames(id) == Some(frames) {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn grow_index(&self, shard: &mut IndexShard, capacity: usize) -> bool {
        let bytes = capacity * core::mem::size_of::<u32>();
        let Some(mapping) = os::map_zeroed(bytes) else {
            return false;
        };
        let old = shard.slots;
        let old_capacity = if old.is_null() {
            0
        } else {
            1 << shard.capacity_log2
        };
        shard.slots = mapping.as_ptr().cast();
        shard.capacity_log2 = capacity.trailing_zeros();
        shard.len = 0;
        for i in 0..old_capacity {
            // SAFETY: the old index maps `old_capacity` slots.
            let slot = unsafe { *old.add(i) };
            if slot != 0 {
                let hash = self.record(slot - 1).map_or(0, |r| r.hash);
                Self::insert_index_with_hash(shard, slot - 1, hash);
            }
        }
        if !old.is_null() {
            // SAFETY: one mapping of `old_capacity` slots, copied out above.
            unsafe {
                os::unmap(
                    core::ptr::NonNull::new_unchecked(old.cast()),
                    old_capacity * 4,
                )
            };
            self.index_bytes
                .fetch_sub(old_capacity * 4, Ordering::Relaxed);
        }
        self.index_bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    fn insert_index_with_hash(shard: &mut IndexShard, id: u32, hash: u64) {
        let mask = (1usize << shard.capacity_log2) - 1;
        let mut i = (hash as usize) & mask;
        loop {
            // SAFETY: `i <= mask`; the shard maps `mask + 1` slots.
            let slot = unsafe { &mut *shard.slots.add(i) };
            if *slot == 0 {
                *slot = id + 1;
                shard.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// The return addresses of stack `id`, leaf first, once published.
    pub fn frames(&self, id: u32) -> Option<&[usize]> {
        let record = self.record(id)?;
        let published = record.published.load(Ordering::Acquire);
        if published == 0 {
            return None;
        }
        let len = (published - 1) as usize;
        if len == 0 {
            return Some(&[]);
        }
        let base = self.frames.load(Ordering::Acquire);
        // SAFETY: the Acquire load of `published` makes the frames written
        // before its Release store visible; the region is never unmapped and
        // these frames are never rewritten.
        Some(unsafe { core::slice::from_raw_parts(base.add(record.frames_at as usize), len) })
    }

    /// Adds an allocation of `bytes` with `weight` to stack `id`'s counters.
    pub(crate) fn record_alloc(&self, id: u32, bytes: usize, weight: f64) {
        if let Some(r) = self.record(id) {
            let stripe = stripe::current();
            let c = &r.stripes.0[stripe.index()];
            let add = Fixed::new(bytes, weight);
            stripe.add(&c.alloc_objects, add.objects);
            stripe.add(&c.alloc_bytes, add.bytes);
        }
    }

    /// Removes a freed sample's contribution from the in-use estimate.
    pub(crate) fn record_free(&self, id: u32, bytes: usize, weight: f64) {
        if let Some(r) = self.record(id) {
            let stripe = stripe::current();
            let c = &r.stripes.0[stripe.index()];
            let add = Fixed::new(bytes, weight);
            stripe.add(&c.freed_objects, add.objects);
            stripe.add(&c.freed_bytes, add.bytes);
        }
    }

    /// Reads stack `id`'s estimates.
    pub fn counters(&self, id: u32) -> Option<StackCounters> {
        let r = self.record(id)?;
        if r.published.load(Ordering::Acquire) == 0 {
            return None;
        }
        let sum = |field: fn(&StripeCounters) -> &AtomicU64| {
            r.stripes.0.iter().fold(0u64, |sum, c| {
                sum.wrapping_add(field(c).load(Ordering::Relaxed))
            })
        };
        let alloc_objects = sum(|c| &c.alloc_objects);
        let alloc_bytes = sum(|c| &c.alloc_bytes);
        Some(StackCounters {
            alloc_objects: Fixed::objects(alloc_objects),
            alloc_bytes: Fixed::bytes(alloc_bytes),
            inuse_objects: Fixed::objects(Fixed::in_use(alloc_objects, sum(|c| &c.freed_objects))),
            inuse_bytes: Fixed::bytes(Fixed::in_use(alloc_bytes, sum(|c| &c.freed_bytes))),
        })
    }

    /// One past the highest id handed out.
    pub fn id_limit(&self) -> u32 {
        (self.next_id.load(Ordering::Relaxed) as usize).min(self.max_stacks.load(Ordering::Relaxed))
            as u32
    }

    /// Stacks that could not be stored (their samples went to the overflow stack).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Resident-equivalent bytes used: records and frames in use, plus the index.
    pub fn memory_bytes(&self) -> usize {
        let ids = self.id_limit() as usize;
        ids * core::mem::size_of::<StackRecord>()
            + self
                .next_frame
                .load(Ordering::Relaxed)
                .min(self.frame_capacity.load(Ordering::Relaxed))
                * core::mem::size_of::<usize>()
            + self.index_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn lock_all_for_fork(&self) {
        self.init.lock_for_fork();
        for shard in &self.index {
            shard.lock_for_fork();
        }
    }

    /// # Safety
    ///
    /// Must follow [`StackTable::lock_all_for_fork`] in the same thread.
    pub(crate) unsafe fn unlock_all_after_fork(&self) {
        for shard in &self.index {
            // SAFETY: taken by `lock_all_for_fork`, per the contract.
            unsafe { shard.unlock_after_fork() };
        }
        // SAFETY: as above.
        unsafe { self.init.unlock_after_fork() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_hashes_tell_frames_order_and_length_apart() {
        let mut seen = std::collections::HashSet::new();
        let mut x = 0x9e37_79b9_u64;
        for len in 0..=MAX_FRAMES {
            for _ in 0..200 {
                let frames: Vec<usize> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        0x5555_0000_0000 + (x as usize & 0xff_fff0)
                    })
                    .collect();
                seen.insert(hash_frames(&frames));
                let mut swapped = frames.clone();
                if len >= 2 {
                    swapped.swap(0, len - 1);
                    swapped.swap(1, len / 2);
                }
                let mut longer = frames.clone();
                longer.push(0);
                seen.insert(hash_frames(&swapped));
                seen.insert(hash_frames(&longer));
            }
        }
        // Distinct stacks: the empty one and `[0]`; 200 one-frame stacks
        // (a swap changes nothing) and their longer twins; 3 x 200 for each
        // longer length. Each should have its own hash.
        let distinct = 2 + 2 * 200 + 3 * 200 * (MAX_FRAMES - 1);
        assert_eq!(seen.len(), distinct);
    }

    #[test]
    fn same_stack_same_id() {
        let table = Box::new(StackTable::new());
        let a = table.intern(&[1, 2, 3]);
        let b = table.intern(&[1, 2, 4]);
        assert_ne!(a, b);
        assert_ne!(a, OVERFLOW_STACK);
        assert_eq!(table.intern(&[1, 2, 3]), a);
        assert_eq!(table.frames(a), Some(&[1usize, 2, 3][..]));
        for i in 0..5_000usize {
            let id = table.intern(&[i, i + 1]);
            assert_eq!(table.intern(&[i, i + 1]), id);
        }
        assert_eq!(table.id_limit(), 5_003);
    }

    #[test]
    fn counters_track_alloc_and_free() {
        let table = Box::new(StackTable::new());
        let id = table.intern(&[7]);
        table.record_alloc(id, 100, 2.0);
        table.record_alloc(id, 100, 2.0);
        table.record_free(id, 100, 2.0);
        let c = table.counters(id).unwrap();
        assert_eq!(c.alloc_objects, 4.0);
        assert_eq!(c.alloc_bytes, 400.0);
        assert_eq!(c.inuse_objects, 2.0);
        assert_eq!(c.inuse_bytes, 200.0);
    }

    #[test]
    fn fractional_weights_return_exactly_to_zero() {
        let table = Box::new(StackTable::new());
        let id = table.intern(&[8]);
        let samples: Vec<(usize, f64)> = (1..2000usize)
            .map(|i| (i * 37 % 5000 + 1, 1.0 + 1.0 / i as f64))
            .collect();
        for &(bytes, weight) in &samples {
            table.record_alloc(id, bytes, weight);
        }
        let c = table.counters(id).unwrap();
        let objects: f64 = samples.iter().map(|s| s.1).sum();
        let bytes: f64 = samples.iter().map(|s| s.0 as f64 * s.1).sum();
        assert!(
            (c.inuse_objects - objects).abs() < 0.01,
            "{c:?} vs {objects}"
        );
        assert!((c.inuse_bytes - bytes).abs() < 1.0, "{c:?} vs {bytes}");
        for &(bytes, weight) in samples.iter().rev() {
            table.record_free(id, bytes, weight);
        }
        let c = table.counters(id).unwrap();
        assert_eq!((c.inuse_objects, c.inuse_bytes), (0.0, 0.0));
        assert!((c.alloc_objects - objects).abs() < 0.01);
    }

    #[test]
    fn full_table_overflows_and_counts() {
        let table = Box::new(StackTable::new());
        table.set_max_stacks(10);
        let ids: Vec<u32> = (0..20usize).map(|i| table.intern(&[i + 100])).collect();
        assert_eq!(ids.iter().filter(|&&id| id == OVERFLOW_STACK).count(), 11);
        assert_eq!(table.dropped(), 11);
        assert_eq!(table.frames(OVERFLOW_STACK), Some(&[][..]));
    }
}
