//! Where the stack table keeps its records and frames: memory that grows in
//! bounded steps as stacks are interned, so a table with a cap of millions
//! of stacks costs only what the stacks it holds need.
//!
//! Records live in [`Segments`]: segment `s` holds `FIRST_SEGMENT << s`
//! records, so id `i` is in the segment given by the highest bit of
//! `i + FIRST_SEGMENT` (a leading-zero count), at that number with the bit
//! cleared. A fixed array of segment pointers covers every `u32` id; a
//! segment is mapped when the first id in it is handed out and never moves
//! or goes away, so readers find a record with a few instructions and no
//! lock. Frames live in fixed-size chunks ([`FrameChunks`]) handed out by a
//! bump pointer; a stack never straddles two chunks, and a record keeps
//! the address of its frames, so readers never look chunks up.
//!
//! Both grow only under the table's growth lock, and only through `mmap`:
//! never through the global allocator, which memprof is.

use core::marker::PhantomData;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::os;

/// Records in the first segment: a small program's stacks fit in it.
const FIRST_SEGMENT_LOG2: u32 = 10;
const FIRST_SEGMENT: u64 = 1 << FIRST_SEGMENT_LOG2;
/// Segments enough for every `u32` id: the highest bit of
/// `u32::MAX + FIRST_SEGMENT` is bit 32.
const SEGMENTS: usize = (33 - FIRST_SEGMENT_LOG2) as usize;

/// A segmented array of `T`s, all zero until written, growing by doubling
/// segments; see the module documentation.
pub(super) struct Segments<T> {
    segments: [AtomicPtr<T>; SEGMENTS],
    _records: PhantomData<T>,
}

/// Which segment holds item `id`, and where in it.
#[inline(always)]
fn place(id: u32) -> (usize, usize) {
    let n = u64::from(id) + FIRST_SEGMENT;
    let top = 63 - n.leading_zeros();
    (
        (top - FIRST_SEGMENT_LOG2) as usize,
        (n ^ (1 << top)) as usize,
    )
}

/// Items in segment `segment`.
fn segment_len(segment: usize) -> usize {
    (FIRST_SEGMENT as usize) << segment
}

impl<T> Segments<T> {
    /// An empty array; nothing is mapped until [`Segments::map_for`].
    ///
    /// # Safety
    ///
    /// All-zero bytes must be a valid `T`: items are read as mapped, before
    /// anything writes them.
    pub(super) const unsafe fn new() -> Self {
        Segments {
            segments: [const { AtomicPtr::new(null_mut()) }; SEGMENTS],
            _records: PhantomData,
        }
    }

    /// Item `id`, if its segment is mapped. Lock-free, a few instructions.
    #[inline(always)]
    pub(super) fn get(&self, id: u32) -> Option<&T> {
        let (segment, at) = place(id);
        // SAFETY: `place` returns a segment below SEGMENTS for every u32
        // (see SEGMENTS).
        let base = unsafe { self.segments.get_unchecked(segment) }.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: the Acquire load above pairs with the Release store in
        // `map_for`, so `base` points at a mapping of `segment_len(segment)`
        // zero-initialised items (valid per `new`'s contract), `at` is below
        // that, and the mapping lives as long as `self`.
        Some(unsafe { &*base.add(at) })
    }

    /// A raw pointer to item `id`, for its one writer; null if unmapped.
    pub(super) fn get_mut_ptr(&self, id: u32) -> *mut T {
        let (segment, at) = place(id);
        let Some(slot) = self.segments.get(segment) else {
            return null_mut();
        };
        let base = slot.load(Ordering::Acquire);
        if base.is_null() {
            return base;
        }
        // SAFETY: as in `get`: `at` is inside the segment's mapping.
        unsafe { base.add(at) }
    }

    /// Maps the segment holding item `id` unless it is mapped; returns
    /// whether it is now, adding what it mapped to `mapped_bytes`.
    ///
    /// Call under the owner's growth lock (one mapper at a time).
    pub(super) fn map_for(&self, id: u32, mapped_bytes: &AtomicUsize) -> bool {
        let (segment, _) = place(id);
        let Some(slot) = self.segments.get(segment) else {
            return false;
        };
        if !slot.load(Ordering::Relaxed).is_null() {
            return true;
        }
        let bytes = segment_len(segment) * core::mem::size_of::<T>();
        let Some(mapping) = os::map_zeroed(bytes) else {
            return false;
        };
        mapped_bytes.fetch_add(bytes, Ordering::Relaxed);
        // Release: a reader that sees the pointer sees the mapping.
        slot.store(mapping.as_ptr().cast(), Ordering::Release);
        true
    }
}

impl<T> Drop for Segments<T> {
    fn drop(&mut self) {
        for (segment, slot) in self.segments.iter_mut().enumerate() {
            if let Some(base) = NonNull::new(*slot.get_mut()) {
                // SAFETY: one mapping of this size made by `map_for`; `&mut
                // self` means no reference into it is left.
                unsafe {
                    os::unmap(
                        base.cast(),
                        segment_len(segment) * core::mem::size_of::<T>(),
                    )
                };
            }
        }
    }
}

/// Words in a frame chunk (1 MiB): hundreds of the deepest stacks, so the
/// tail a chunk leaves unused when the next stack does not fit is small,
/// and few enough mappings for millions of stacks.
pub(super) const CHUNK_WORDS: usize = 1 << 17;

/// Frame storage: fixed-size chunks, each stack's frames bump-allocated in
/// the current chunk. The first word of each chunk points at the chunk
/// before it, so the chunks can be found (and unmapped) without a list
/// that would have to grow.
pub(super) struct FrameChunks {
    /// The chunk being filled, or null before the first.
    chunk: *mut usize,
    /// Words of `chunk` handed out, its link included.
    used: usize,
}

// SAFETY: the chunks are owned by this value and only used under the
// owner's lock.
unsafe impl Send for FrameChunks {}

impl FrameChunks {
    pub(super) const fn new() -> Self {
        FrameChunks {
            chunk: null_mut(),
            used: 0,
        }
    }

    /// Room for `len` frames, which no one else will be handed, or `None`
    /// if a chunk was needed and memory was refused. `len` must be at most
    /// `CHUNK_WORDS - 1`.
    pub(super) fn reserve(&mut self, len: usize, mapped_bytes: &AtomicUsize) -> Option<*mut usize> {
        debug_assert!(len < CHUNK_WORDS);
        if self.chunk.is_null() || self.used + len > CHUNK_WORDS {
            let bytes = CHUNK_WORDS * core::mem::size_of::<usize>();
            let chunk: *mut usize = os::map_zeroed(bytes)?.as_ptr().cast();
            mapped_bytes.fetch_add(bytes, Ordering::Relaxed);
            // SAFETY: a fresh mapping of CHUNK_WORDS words; word 0 is the link.
            unsafe { *chunk = self.chunk as usize };
            self.chunk = chunk;
            self.used = 1;
        }
        // SAFETY: `used + len <= CHUNK_WORDS`, inside the current chunk.
        let at = unsafe { self.chunk.add(self.used) };
        self.used += len;
        Some(at)
    }
}

impl Drop for FrameChunks {
    fn drop(&mut self) {
        let mut chunk = self.chunk;
        while let Some(mapping) = NonNull::new(chunk) {
            // SAFETY: every chunk's word 0 links to the chunk before it
            // (null for the first), written when the chunk was mapped.
            chunk = unsafe { *chunk } as *mut usize;
            // SAFETY: one mapping of CHUNK_WORDS words made by `reserve`;
            // `&mut self` means no reference into it is left.
            unsafe { os::unmap(mapping.cast(), CHUNK_WORDS * core::mem::size_of::<usize>()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fill_segments_in_order_without_gaps() {
        assert_eq!(place(0), (0, 0));
        assert_eq!(place(1023), (0, 1023));
        assert_eq!(place(1024), (1, 0));
        assert_eq!(place(3071), (1, 2047));
        assert_eq!(place(3072), (2, 0));
        assert_eq!(place(u32::MAX).0, SEGMENTS - 1);
        let mut expected = (0, 0);
        for id in 0..1u32 << 16 {
            assert_eq!(place(id), expected, "id {id}");
            expected.1 += 1;
            if expected.1 == segment_len(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn a_segment_is_mapped_once_and_reads_back() {
        // SAFETY: zero is a valid u64.
        let segments = unsafe { Segments::<u64>::new() };
        let mapped = AtomicUsize::new(0);
        assert!(segments.get(5).is_none());
        assert!(segments.map_for(5, &mapped));
        assert!(segments.map_for(1023, &mapped));
        assert_eq!(mapped.load(Ordering::Relaxed), 1024 * 8);
        assert_eq!(segments.get(1023), Some(&0));
        assert!(segments.get(1024).is_none());
        // SAFETY: item 7's segment is mapped, and nothing else reads it now.
        unsafe { *segments.get_mut_ptr(7) = 42 };
        assert_eq!(segments.get(7), Some(&42));
    }

    #[test]
    fn stacks_never_straddle_chunks() {
        let mut chunks = FrameChunks::new();
        let mapped = AtomicUsize::new(0);
        let mut last = None;
        let len = 300;
        for _ in 0..(CHUNK_WORDS / len) * 3 {
            let at = chunks.reserve(len, &mapped).unwrap() as usize;
            let chunk = chunks.chunk as usize;
            assert!(at > chunk && at + len * 8 <= chunk + CHUNK_WORDS * 8);
            if let Some(previous) = last {
                assert!(at == previous + len * 8 || at == chunk + 8);
            }
            last = Some(at);
        }
        assert_eq!(mapped.load(Ordering::Relaxed), 3 * CHUNK_WORDS * 8);
    }
}
