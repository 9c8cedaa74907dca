//! `StackTable`: interned stacks and their per-stack counters.
//!
//! Every distinct stack gets a small integer id, the same id every time it is
//! seen again. Records and frames live in storage that grows in bounded
//! steps as stacks are interned (see `storage`): a table with room for
//! millions of stacks maps only what the stacks it holds need, and a record
//! is found from its id in a few instructions without a lock. Lookup of a
//! stack goes through a sharded hash index whose shards grow by remapping.
//! Past the cap, or when memory is refused, new stacks are attributed to
//! [`OVERFLOW_STACK`] and counted, so totals stay honest.
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
//!
//! Locks: an index shard's, then (for a new stack) the growth lock, which
//! hands out ids and frame space and maps storage; never the other way
//! round (see `crate::fork`).

mod storage;

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::fixed::Fixed;
use crate::os;
use crate::stripe::{self, STRIPES};
use crate::sync::{CachePadded, SpinLock};
use storage::{FrameChunks, Segments};

pub(crate) use crate::config::{DEFAULT_MAX_FRAMES, MAX_FRAMES};

/// The most addresses one stored stack holds: the deepest walk, a
/// truncation marker and a scope marker.
pub(crate) const STACK_LEN_MAX: usize = MAX_FRAMES + 2;

/// The id standing for "a stack the full table could not store".
pub(crate) const OVERFLOW_STACK: u32 = 0;

/// Entries in the lock-free cache of recently interned stacks.
const RECENT: usize = 4096;
const INDEX_SHARDS_LOG2: u32 = 4;
const INDEX_SHARDS: usize = 1 << INDEX_SHARDS_LOG2;
const MIN_INDEX_CAPACITY: usize = 256;

const _: () = assert!(STACK_LEN_MAX < storage::CHUNK_WORDS);

/// One stack's record. All zero until written, which reads as unpublished.
#[repr(C, align(64))]
struct StackRecord {
    hash: u64,
    /// The first frame, in a frame chunk; null for a stack without frames.
    frames: *const usize,
    /// `frame count + 1` once published; 0 while being written.
    published: AtomicU32,
    /// Summed by readers; see the module documentation.
    stripes: Stripes,
}

// SAFETY: `hash` and `frames` are written once, by the thread the id was
// handed to, before `published` is stored with Release; readers load
// `published` with Acquire before reading them, and the frames are never
// written again. Everything else is atomic.
unsafe impl Sync for StackRecord {}
// SAFETY: as above; a record owns nothing (its frames belong to the table).
unsafe impl Send for StackRecord {}

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

/// An index slot: the low half of the stack's hash above `id + 1`, or 0
/// for an empty slot. The hash's low half gives the slot's home (capacity
/// stays below 2^32) and tells most stacks in a probe run apart, so probing
/// and growing read the slots alone, not the records they name.
type Slot = u64;

fn slot_of(id: u32, hash: u64) -> Slot {
    hash << 32 | u64::from(id + 1)
}

struct IndexShard {
    slots: *mut Slot,
    capacity_log2: u32,
    len: usize,
}

// SAFETY: the index memory is owned by the shard and only used under its lock.
unsafe impl Send for IndexShard {}

/// What the growth lock guards.
struct Growth {
    /// Whether the first record (the overflow stack's) is in place.
    ready: bool,
    frames: FrameChunks,
}

/// The stack table; see the module documentation.
pub(crate) struct StackTable {
    growth: SpinLock<Growth>,
    records: Segments<StackRecord>,
    max_stacks: AtomicUsize,
    /// One past the highest id handed out; only the growth lock's holder
    /// moves it.
    next_id: AtomicU32,
    index: [CachePadded<SpinLock<IndexShard>>; INDEX_SHARDS],
    /// Recently interned stacks, `hash`'s high half beside the id, slot
    /// `hash % RECENT`: a stack seen before is found here without a lock
    /// (and without writing a line another thread reads); the index under
    /// its locks is the authority.
    recent: [AtomicU64; RECENT],
    /// Bytes mapped for records and frames.
    storage_bytes: AtomicUsize,
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
    /// Default cap on distinct stacks (see `crate::config`). Memory
    /// follows the stacks actually interned, not the cap.
    pub(crate) const DEFAULT_MAX_STACKS: usize = crate::config::DEFAULT_MAX_STACKS;

    /// The highest cap: ids stay below 2^31.
    const MAX_CAP: usize = u32::MAX as usize / 2;

    pub(crate) const fn new() -> Self {
        StackTable {
            growth: SpinLock::new(Growth {
                ready: false,
                frames: FrameChunks::new(),
            }),
            // SAFETY: a zeroed StackRecord is valid: zero hash, null frames,
            // atomics at zero (an unpublished record with empty counters).
            records: unsafe { Segments::new() },
            max_stacks: AtomicUsize::new(Self::DEFAULT_MAX_STACKS),
            next_id: AtomicU32::new(1),
            index: [const {
                CachePadded(SpinLock::new(IndexShard {
                    slots: core::ptr::null_mut(),
                    capacity_log2: 0,
                    len: 0,
                }))
            }; INDEX_SHARDS],
            recent: [const { AtomicU64::new(0) }; RECENT],
            storage_bytes: AtomicUsize::new(0),
            index_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets the cap on stacks, from the next new stack on. Returns whether
    /// every stack kept so far fits under it; those past it stay (their
    /// ids, frames and counters are never taken back), and new stacks go
    /// to the overflow stack until the cap is raised.
    pub(crate) fn set_max_stacks(&self, max: usize) -> bool {
        let _growth = self.growth.lock();
        self.store_max_stacks(max);
        self.id_limit() as usize <= self.max_stacks.load(Ordering::Relaxed)
    }

    /// The cap on distinct stacks.
    pub(crate) fn max_stacks(&self) -> usize {
        self.max_stacks.load(Ordering::Relaxed)
    }

    /// Sets the cap without the growth lock: for the environment's value,
    /// read while the first stack is being interned (with the lock held).
    pub(crate) fn store_max_stacks(&self, max: usize) {
        self.max_stacks
            .store(max.clamp(2, Self::MAX_CAP), Ordering::Relaxed);
    }

    /// Maps the overflow stack's record on first use. Returns false if
    /// memory was refused.
    fn ensure_init(&self) -> bool {
        if self.records.get(OVERFLOW_STACK).is_some() {
            return true;
        }
        let mut growth = self.growth.lock();
        if growth.ready {
            return true;
        }
        if core::ptr::eq(self, &super::STACKS) {
            super::limits::apply_env_once();
        }
        if !self.records.map_for(OVERFLOW_STACK, &self.storage_bytes) {
            return false;
        }
        // Record 0 is the overflow stack: published, with no frames.
        let overflow = self.records.get_mut_ptr(OVERFLOW_STACK);
        // SAFETY: just mapped; the Release store publishes it to readers.
        unsafe { (*overflow).published.store(1, Ordering::Release) };
        growth.ready = true;
        true
    }

    /// Hands out the next id and room for `len` frames, mapping storage as
    /// needed; `None` at the cap or when memory is refused (nothing is
    /// taken then). Call with the stack's index shard locked.
    fn allocate(&self, len: usize) -> Option<(u32, *mut usize)> {
        let mut growth = self.growth.lock();
        let id = self.next_id.load(Ordering::Relaxed);
        if id as usize >= self.max_stacks.load(Ordering::Relaxed)
            || !self.records.map_for(id, &self.storage_bytes)
        {
            return None;
        }
        let frames = if len == 0 {
            core::ptr::null_mut()
        } else {
            growth.frames.reserve(len, &self.storage_bytes)?
        };
        self.next_id.store(id + 1, Ordering::Relaxed);
        Some((id, frames))
    }

    /// Stack `id`'s record, if its storage is mapped. On every sampled
    /// allocation and free: keep it a handful of instructions.
    #[inline(always)]
    fn record(&self, id: u32) -> Option<&StackRecord> {
        self.records.get(id)
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
        let Some((id, stored)) = self.allocate(frames.len()) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return OVERFLOW_STACK;
        };
        if !stored.is_null() {
            // SAFETY: `allocate` handed these `frames.len()` words to us
            // alone, inside a mapped chunk.
            unsafe { core::ptr::copy_nonoverlapping(frames.as_ptr(), stored, frames.len()) };
        }
        let record = self.records.get_mut_ptr(id);
        // SAFETY: `allocate` mapped this id's segment and handed the id to
        // us alone; no reader looks at `hash`/`frames` before `published`
        // is set below.
        unsafe {
            (*record).hash = hash;
            (*record).frames = stored;
            (*record)
                .published
                .store(frames.len() as u32 + 1, Ordering::Release);
        }
        Self::insert_slot(&mut shard, slot_of(id, hash));
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
            if slot >> 32 == hash & 0xffff_ffff {
                let id = slot as u32 - 1;
                if let Some(record) = self.record(id) {
                    if record.hash == hash && self.frames(id) == Some(frames) {
                        return Some(id);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn grow_index(&self, shard: &mut IndexShard, capacity: usize) -> bool {
        let bytes = capacity * core::mem::size_of::<Slot>();
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
                Self::insert_slot(shard, slot);
            }
        }
        if !old.is_null() {
            // SAFETY: one mapping of `old_capacity` slots, copied out above.
            unsafe {
                os::unmap(
                    core::ptr::NonNull::new_unchecked(old.cast()),
                    old_capacity * core::mem::size_of::<Slot>(),
                )
            };
            self.index_bytes.fetch_sub(
                old_capacity * core::mem::size_of::<Slot>(),
                Ordering::Relaxed,
            );
        }
        self.index_bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// Puts `slot` (see [`Slot`]) in the first free place from its home.
    fn insert_slot(shard: &mut IndexShard, slot: Slot) {
        let mask = (1usize << shard.capacity_log2) - 1;
        let mut i = (slot >> 32) as usize & mask;
        loop {
            // SAFETY: `i <= mask`; the shard maps `mask + 1` slots.
            let place = unsafe { &mut *shard.slots.add(i) };
            if *place == 0 {
                *place = slot;
                shard.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// The return addresses of stack `id`, leaf first, once published.
    pub(crate) fn frames(&self, id: u32) -> Option<&[usize]> {
        let record = self.record(id)?;
        let published = record.published.load(Ordering::Acquire);
        if published == 0 {
            return None;
        }
        let len = (published - 1) as usize;
        if len == 0 {
            return Some(&[]);
        }
        // SAFETY: the Acquire load of `published` makes `frames` and the
        // frames it points at, written before its Release store, visible;
        // chunks live as long as the table, and frames are never rewritten.
        Some(unsafe { core::slice::from_raw_parts(record.frames, len) })
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
    pub(crate) fn counters(&self, id: u32) -> Option<StackCounters> {
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

    /// One past the highest id handed out. Readers skip ids whose records
    /// are not published yet.
    pub(crate) fn id_limit(&self) -> u32 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Stacks that could not be stored (their samples went to the overflow stack).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes mapped for the table: record segments, frame chunks and the
    /// index. Pages become resident as they are filled, so resident memory
    /// is at most this.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.storage_bytes.load(Ordering::Relaxed) + self.index_bytes.load(Ordering::Relaxed)
    }

    /// Takes every lock, in the order interning takes them: the index
    /// shards, then the growth lock.
    pub(crate) fn lock_all_for_fork(&self) {
        for shard in &self.index {
            shard.lock_for_fork();
        }
        self.growth.lock_for_fork();
    }

    /// # Safety
    ///
    /// Must follow [`StackTable::lock_all_for_fork`] in the same thread.
    pub(crate) unsafe fn unlock_all_after_fork(&self) {
        // SAFETY: taken by `lock_all_for_fork`, per the contract.
        unsafe { self.growth.unlock_after_fork() };
        for shard in &self.index {
            // SAFETY: as above.
            unsafe { shard.unlock_after_fork() };
        }
    }
}

impl Drop for StackTable {
    /// Unmaps the index; the record segments and frame chunks unmap
    /// themselves. (The process's table is a `static`, never dropped.)
    fn drop(&mut self) {
        for shard in &self.index {
            let shard = shard.lock();
            if let Some(slots) = core::ptr::NonNull::new(shard.slots) {
                // SAFETY: one mapping of `1 << capacity_log2` slots made by
                // `grow_index`; `&mut self` means no one uses it any more.
                unsafe {
                    os::unmap(
                        slots.cast(),
                        (1usize << shard.capacity_log2) * core::mem::size_of::<Slot>(),
                    )
                };
            }
        }
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

    /// Synthetic stack `i`: `len` frames, distinct for every `i`.
    fn synthetic(i: usize, len: usize) -> Vec<usize> {
        (0..len).map(|f| 0x5555_0000_0000 + (i << 12) + f).collect()
    }

    #[test]
    fn a_million_stacks_fit_by_default_and_memory_follows_use() {
        const N: usize = 1 << 20;
        const LEN: usize = 8;
        let table = Box::new(StackTable::new());
        let mut ids = Vec::with_capacity(N);
        let mut after_thousand = 0;
        for i in 0..N {
            ids.push(table.intern(&synthetic(i, LEN)));
            if i == 999 {
                after_thousand = table.memory_bytes();
            }
        }
        assert_eq!(table.dropped(), 0);
        assert_eq!(table.id_limit() as usize, N + 1);
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(id as usize, i + 1, "ids in order of interning");
        }
        for i in (0..N).step_by(97).chain(N - 3..N) {
            let frames = synthetic(i, LEN);
            assert_eq!(table.frames(ids[i]), Some(&frames[..]), "stack {i}");
            assert_eq!(table.intern(&frames), ids[i], "stack {i} keeps its id");
        }
        let after_million = table.memory_bytes();
        // A thousand stacks cost the first segment, a frame chunk and a
        // small index: under 2 MiB.
        assert!(after_thousand < 2 << 20, "{after_thousand} bytes");
        // A million cost at least their records, and at most twice.
        let records = N * core::mem::size_of::<StackRecord>();
        assert!(
            (records..4 * records).contains(&after_million),
            "{after_million} bytes for {N} stacks"
        );
    }

    #[test]
    fn the_deepest_stacks_reach_the_cap_before_frame_space_runs_out() {
        const CAP: usize = 20_000;
        let table = Box::new(StackTable::new());
        table.set_max_stacks(CAP);
        let ids: Vec<u32> = (0..CAP)
            .map(|i| table.intern(&synthetic(i, STACK_LEN_MAX)))
            .collect();
        assert!(ids[..CAP - 1].iter().all(|&id| id != OVERFLOW_STACK));
        assert_eq!(ids[CAP - 1], OVERFLOW_STACK);
        assert_eq!(table.dropped(), 1);
        let last = synthetic(CAP - 2, STACK_LEN_MAX);
        assert_eq!(table.frames(ids[CAP - 2]), Some(&last[..]));
    }

    #[test]
    fn a_cap_lowered_below_the_count_keeps_what_is_there() {
        let table = Box::new(StackTable::new());
        let ids: Vec<u32> = (0..100).map(|i| table.intern(&synthetic(i, 3))).collect();
        assert!(!table.set_max_stacks(10));
        assert_eq!(table.intern(&synthetic(500, 3)), OVERFLOW_STACK);
        assert_eq!(table.dropped(), 1);
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(table.intern(&synthetic(i, 3)), id);
            assert_eq!(table.frames(id), Some(&synthetic(i, 3)[..]));
        }
        assert_eq!(table.id_limit(), 101);
        assert!(table.set_max_stacks(1000));
        assert_eq!(table.intern(&synthetic(500, 3)), 101);
    }

    #[test]
    fn concurrent_interners_and_readers_agree() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 20_000;
        let table = StackTable::new();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut checked = 0u64;
                        while !done.load(Ordering::Relaxed) {
                            for id in 1..table.id_limit() {
                                if let Some(frames) = table.frames(id) {
                                    // Every stack's frames are its own.
                                    let i = (frames[0] - 0x5555_0000_0000) >> 12;
                                    assert_eq!(frames, &synthetic(i, frames.len())[..]);
                                    assert!(table.counters(id).is_some());
                                    checked += 1;
                                }
                            }
                        }
                        checked
                    })
                })
                .collect();
            let interners: Vec<_> = (0..THREADS)
                .map(|t| {
                    let table = &table;
                    scope.spawn(move || {
                        // Half of each thread's stacks are shared with the
                        // next thread, interned in the other order.
                        let mine = (t * PER_THREAD / 2..(t + 2) * PER_THREAD / 2)
                            .map(|i| i % (THREADS * PER_THREAD / 2));
                        let order: Vec<usize> = if t % 2 == 0 {
                            mine.collect()
                        } else {
                            mine.rev().collect()
                        };
                        order
                            .into_iter()
                            .map(|i| {
                                let id = table.intern(&synthetic(i, 1 + i % 40));
                                table.record_alloc(id, 8, 1.0);
                                (i, id)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut seen = std::collections::HashMap::new();
            for interner in interners {
                for (i, id) in interner.join().unwrap() {
                    assert_ne!(id, OVERFLOW_STACK);
                    assert_eq!(*seen.entry(i).or_insert(id), id, "stack {i}");
                }
            }
            done.store(true, Ordering::Relaxed);
            for reader in readers {
                reader.join().unwrap();
            }
            let distinct = THREADS * PER_THREAD / 2;
            assert_eq!(seen.len(), distinct);
            assert_eq!(table.id_limit() as usize, distinct + 1);
            for (&i, &id) in &seen {
                assert_eq!(table.frames(id), Some(&synthetic(i, 1 + i % 40)[..]));
                // Each stack was interned by two threads, each adding one.
                assert_eq!(table.counters(id).unwrap().alloc_objects, 2.0);
            }
        });
        assert_eq!(table.dropped(), 0);
    }
}
