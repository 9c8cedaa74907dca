//! The sampler's slow paths: recording a sample, and forgetting a freed one.
//!
//! Reached only when a thread's countdown crosses zero or when the free
//! path's gate and prefilter say a freed address may have been sampled. The
//! thread is marked busy while recording, so anything allocated meanwhile
//! (by the unwinder, say) goes straight to the inner allocator.
//!
//! At promoting rates a sampled block gets a page-aligned layout, and a
//! promoted block never lives without its sample: the argument, and the
//! page gate it serves, are in [`crate::sample::promotion`].

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::Ordering;

use crate::sample::live::Outgoing;
use crate::sample::per_thread::{draw_distance, effective_rate};
use crate::sample::promotion::{self, promoted_layout};
use crate::sample::rate::{self, sample_weight};
use crate::sample::{LiveSample, ACTIVE, LIVE, SKIPPED_BUSY};
use crate::stack::{capture, STACKS};
use crate::thread_state as thread;

/// How far a thread runs between re-reading the rate while sampling is off.
const OFF_RECHECK_BYTES: i64 = 64 << 20;

/// Whether an allocation wants zeroed memory.
#[derive(Clone, Copy)]
pub(super) enum Fill {
    Uninit,
    Zeroed,
}

impl Fill {
    /// # Safety
    ///
    /// `layout` has a non-zero size.
    unsafe fn alloc<A: GlobalAlloc>(self, inner: &A, layout: Layout) -> *mut u8 {
        match self {
            // SAFETY: per this function's contract.
            Fill::Uninit => unsafe { inner.alloc(layout) },
            // SAFETY: per this function's contract.
            Fill::Zeroed => unsafe { inner.alloc_zeroed(layout) },
        }
    }
}

/// Which layout a sampled block was allocated with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockLayout {
    /// The caller's.
    AsAsked,
    /// [`promoted_layout`] of the caller's.
    Promoted,
}

/// A sample point reached with sampling on: the thread is busy until it is
/// dropped, which also draws the distance to the next one.
struct SamplePoint {
    rate: u64,
    _busy: thread::BusyGuard,
}

impl Drop for SamplePoint {
    fn drop(&mut self) {
        thread::set_countdown(draw_distance(self.rate));
    }
}

impl SamplePoint {
    /// The layout to give the sampled block, if it is to be promoted.
    fn promotion(&self, layout: Layout) -> Option<Layout> {
        promotion::layout_for(self.rate, layout)
    }
}

/// Called when the countdown crossed zero at an allocation of `size`
/// bytes: decides whether this crossing is a sample, and sets the countdown
/// for the next one if it is not.
fn sample_point(size: usize) -> Option<SamplePoint> {
    let Some(busy) = thread::BusyGuard::enter() else {
        // memprof allocating for itself; the outer call redraws the countdown.
        SKIPPED_BUSY.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    // Nested allocations must not cross again while we work.
    thread::set_countdown(i64::MAX);
    once_per_process();
    crate::stripe::lease();
    thread::context::settle_thread();

    let rate = effective_rate();
    if rate == 0 {
        thread::set_countdown(OFF_RECHECK_BYTES);
        thread::set_generation(rate::generation());
        return None;
    }
    // A thread's first crossing, or the first after a rate change, only
    // places the sample point: the old countdown was not drawn at this rate.
    let generation = rate::generation();
    if thread::generation() != generation {
        thread::set_generation(generation);
        let distance = draw_distance(rate);
        if distance - size as i64 >= 0 {
            thread::set_countdown(distance - size as i64);
            return None;
        }
    }
    Some(SamplePoint { rate, _busy: busy })
}

/// Allocates a block whose allocation crossed the countdown, and samples it
/// if this is a sample point.
///
/// # Safety
///
/// The caller's `GlobalAlloc::alloc` contract for `layout`.
#[cold]
#[inline(never)]
pub(super) unsafe fn alloc_at_sample_point<A: GlobalAlloc>(
    layout: Layout,
    fill: Fill,
    inner: &A,
) -> *mut u8 {
    let Some(point) = sample_point(layout.size()) else {
        // SAFETY: the caller's layout, unchanged.
        return unsafe { fill.alloc(inner, layout) };
    };
    let ordinary = match point.promotion(layout) {
        None => OrdinaryBlock::Sampled,
        Some(promoted) => {
            // SAFETY: a promoted layout is at least a page.
            let attempt = unsafe { alloc_promoted(inner, fill, promoted, layout.size(), &point) };
            match attempt {
                Promoted::Sampled(ptr) => return ptr,
                Promoted::Refused => OrdinaryBlock::Unsampled,
                Promoted::NoBlock => OrdinaryBlock::Sampled,
            }
        }
    };
    // SAFETY: the caller's layout, unchanged.
    let ptr = unsafe { fill.alloc(inner, layout) };
    if ordinary == OrdinaryBlock::Sampled && !ptr.is_null() {
        let _ = record(ptr, layout.size(), point.rate, BlockLayout::AsAsked);
    }
    ptr
}

/// Whether a sample point's block, when it is an ordinary one, is recorded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OrdinaryBlock {
    /// Recorded: promotion does not apply, or found no block.
    Sampled,
    /// Not recorded: the live table refused this point's promoted sample
    /// (dropped and counted once already).
    Unsampled,
}

/// How an attempt at a promoted sampled block ended.
enum Promoted {
    /// The block is allocated and its sample recorded.
    Sampled(*mut u8),
    /// The live table refused the sample (dropped and counted) and the
    /// block is freed again: go on with an ordinary block, unsampled.
    Refused,
    /// The inner allocator had no promoted block: go on with an ordinary
    /// block, sampled.
    NoBlock,
}

/// Allocates a block of the `promoted` layout for `size` bytes and records
/// its sample; a block the table refuses is freed at once (no promoted
/// block may live without its sample).
///
/// # Safety
///
/// `promoted` is a promoted layout (non-zero).
unsafe fn alloc_promoted<A: GlobalAlloc>(
    inner: &A,
    fill: Fill,
    promoted: Layout,
    size: usize,
    point: &SamplePoint,
) -> Promoted {
    // SAFETY: per this function's contract.
    let ptr = unsafe { fill.alloc(inner, promoted) };
    if ptr.is_null() {
        return Promoted::NoBlock;
    }
    if record(ptr, size, point.rate, BlockLayout::Promoted).is_ok() {
        return Promoted::Sampled(ptr);
    }
    // SAFETY: allocated just above with this layout.
    unsafe { inner.dealloc(ptr, promoted) };
    Promoted::Refused
}

/// Records a sample of the block at `addr`, allocated (or reallocated) by
/// the calling thread now: its stack is captured here. `Err` when the live
/// table refused it (the sample is then counted as dropped, and as freed at
/// once).
fn record(addr: *mut u8, size: usize, rate: u64, layout: BlockLayout) -> Result<(), ()> {
    // Before the first lock of the tables; the block is allocated already,
    // as the handlers' order needs (see `crate::fork`).
    crate::fork::register_after_allocating();
    let weight = sample_weight(size as u64, rate);
    let mut frames = capture::frame_buf();
    let mut n = capture::capture(&mut frames);
    let scope = thread::scope();
    if scope != 0 {
        // The scope becomes the root frame, so stacks split by scope.
        n = n.min(capture::STACK_LEN_MAX - 1);
        frames[n].write(crate::stack::scope_marker(scope));
        n += 1;
    }
    let stack = STACKS.intern(capture::written(&frames, n));
    let allocated_at = thread::sample_time();
    let thread_id = thread::thread_id();
    STACKS.record_alloc(stack, size, weight);
    crate::scope::record_alloc(scope, size, weight);
    let mut sample = LiveSample::new(
        addr as usize,
        size,
        weight,
        allocated_at,
        stack,
        thread_id,
        scope,
    );
    if layout == BlockLayout::Promoted {
        sample = sample.promoted();
    }
    match LIVE.insert(sample) {
        Ok(None) => Ok(()),
        Ok(Some(stale)) => {
            forget(stale);
            Ok(())
        }
        // Dropped and counted by the table; keep the in-use estimate honest
        // by treating the block as freed at once.
        Err(()) => {
            STACKS.record_free(stack, size, weight);
            crate::scope::record_free(scope, size, weight);
            Err(())
        }
    }
}

/// Takes a sample that left the live table out of its stack's and scope's
/// in-use figures.
fn forget(sample: LiveSample) {
    STACKS.record_free(sample.stack, sample.size, sample.weight);
    crate::scope::record_free(sample.scope, sample.size, sample.weight);
}

/// Frees a block the gate and prefilter say may have been sampled.
///
/// # Safety
///
/// The caller's `GlobalAlloc::dealloc` contract for `ptr` and `layout`.
#[cold]
#[inline(never)]
pub(super) unsafe fn dealloc_maybe_sampled<A: GlobalAlloc>(
    ptr: *mut u8,
    mut layout: Layout,
    inner: &A,
) {
    // Forget before freeing: once freed, another thread may be handed the
    // same address and sample it.
    if let Some(sample) = LIVE.remove(ptr as usize) {
        if sample.is_promoted() {
            layout = real_layout(layout);
        }
        forget(sample);
    }
    // SAFETY: forwarded with the caller's guarantees, and the layout the
    // block was allocated with.
    unsafe { inner.dealloc(ptr, layout) }
}

/// The layout a promoted block of the caller's `layout` was allocated with.
fn real_layout(layout: Layout) -> Layout {
    // Promotion succeeded for this layout when the block was allocated, so
    // it succeeds again; the fallback is unreachable.
    promoted_layout(layout).unwrap_or(layout)
}

/// Reallocates a block the gate and prefilter say may have been sampled.
///
/// A reallocation is a free of the old block and an allocation of the new
/// one at the reallocation's stack (heaptrack's definition; jemalloc's
/// profiler decides afresh the same way): the old block's sample, if it had
/// one, is forgotten, and the new block is sampled by the countdown like any
/// allocation of `new_size` bytes, with its own stack, time and weight. A
/// new sample never inherits the old one's stack: only sampled blocks have a
/// stack to pass on, so inheriting would charge a site's bytes to its
/// allocation site at rate 1 and mostly to its reallocation site at the
/// default rate.
///
/// # Safety
///
/// The caller's `GlobalAlloc::realloc` contract.
#[cold]
#[inline(never)]
pub(super) unsafe fn realloc_maybe_sampled<A: GlobalAlloc>(
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    inner: &A,
) -> *mut u8 {
    let old = LIVE.remove_unless_promoted(ptr as usize);
    let crossed = thread::countdown_crossed(new_size);
    let point = if crossed {
        sample_point(new_size)
    } else {
        None
    };
    // SAFETY: the caller's contract, passed on.
    unsafe { realloc_slow(inner, ptr, layout, new_size, old, point) }
}

/// Reallocates an unsampled block whose new size crossed the countdown.
///
/// # Safety
///
/// The caller's `GlobalAlloc::realloc` contract.
#[cold]
#[inline(never)]
pub(super) unsafe fn realloc_at_sample_point<A: GlobalAlloc>(
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    inner: &A,
) -> *mut u8 {
    let point = sample_point(new_size);
    // SAFETY: the caller's contract, passed on.
    unsafe { realloc_slow(inner, ptr, layout, new_size, None, point) }
}

/// The reallocation slow path: `old` is the old block's sample, if it has
/// one, and `point` the sample point the new size reached, if it did.
///
/// The new block is, in order of preference: a promoted block, sampled
/// (when `point` promotes); an ordinary block, sampled (when `point` is
/// set); an ordinary block, unsampled. A promoted new block is allocated
/// and recorded before the old one is let go, so a refused sample only
/// means falling back to an ordinary block.
///
/// # Safety
///
/// The caller's `GlobalAlloc::realloc` contract.
unsafe fn realloc_slow<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    old: Option<Outgoing>,
    point: Option<SamplePoint>,
) -> *mut u8 {
    // SAFETY: `realloc`'s contract: `new_size` is non-zero and, rounded up
    // to `layout.align()`, does not overflow `isize`.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    // The sample point an ordinary new block is recorded at, if any.
    let record_at = match point.as_ref() {
        None => None,
        Some(point) => match point.promotion(new_layout) {
            None => Some(point),
            Some(promoted) => {
                // SAFETY: a promoted layout is at least a page.
                let attempt =
                    unsafe { alloc_promoted(inner, Fill::Uninit, promoted, new_size, point) };
                match attempt {
                    Promoted::Sampled(new) => {
                        // SAFETY: both blocks hold at least the copied bytes, and
                        // they are distinct live blocks.
                        unsafe { move_contents(ptr, new, layout.size().min(new_size)) };
                        // SAFETY: the caller's block, released once.
                        unsafe { release(inner, ptr, layout, old) };
                        return new;
                    }
                    Promoted::Refused => None,
                    Promoted::NoBlock => Some(point),
                }
            }
        },
    };
    // SAFETY: the caller's contract, passed on.
    let new = unsafe { realloc_ordinary(inner, ptr, layout, new_layout, old) };
    if let Some(point) = record_at.filter(|_| !new.is_null()) {
        let _ = record(new, new_size, point.rate, BlockLayout::AsAsked);
    }
    new
}

/// Reallocates into an ordinary block of `new_layout`, letting go of the
/// old block and its sample only once the new block exists: on failure
/// (null) the old block is still allocated and still sampled.
///
/// # Safety
///
/// The caller's `GlobalAlloc::realloc` contract, with `new_layout` of its
/// `new_size` and `layout.align()`.
unsafe fn realloc_ordinary<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
    new_layout: Layout,
    old: Option<Outgoing>,
) -> *mut u8 {
    match old {
        Some(Outgoing::StaysUntilFreed) => {
            // The block cannot be resized in place: its real layout is not
            // the caller's. Move it into an ordinary block.
            // SAFETY: `new_layout` is valid and non-zero (the contract).
            let new = unsafe { inner.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both blocks hold at least the copied bytes, and
                // they are distinct live blocks.
                unsafe { move_contents(ptr, new, layout.size().min(new_layout.size())) };
                // SAFETY: the caller's block, released once.
                unsafe { release(inner, ptr, layout, old) };
            }
            new
        }
        Some(Outgoing::Removed(sample)) => {
            // SAFETY: forwarded with the caller's guarantees.
            let new = unsafe { inner.realloc(ptr, layout, new_layout.size()) };
            if new.is_null() {
                // Still allocated, so still sampled.
                if LIVE.insert(sample).is_err() {
                    forget(sample);
                }
            } else {
                forget(sample);
            }
            new
        }
        // SAFETY: forwarded with the caller's guarantees.
        None => unsafe { inner.realloc(ptr, layout, new_layout.size()) },
    }
}

/// Copies `len` bytes from the old block to the new one.
///
/// # Safety
///
/// Both pointers are valid for `len` bytes and the blocks do not overlap.
unsafe fn move_contents(from: *mut u8, to: *mut u8, len: usize) {
    // SAFETY: per this function's contract.
    unsafe { core::ptr::copy_nonoverlapping(from, to, len) }
}

/// Frees the old block of a reallocation that moved it by hand: a promoted
/// block's sample is still in the table, and the block is freed as any
/// sampled block is; an ordinary block's sample is out of the table already.
///
/// # Safety
///
/// `ptr` is the caller's live block of `layout`, with `old` its sample as
/// [`realloc_maybe_sampled`] found it.
unsafe fn release<A: GlobalAlloc>(inner: &A, ptr: *mut u8, layout: Layout, old: Option<Outgoing>) {
    match old {
        // SAFETY: the caller's block and layout, freed once.
        Some(Outgoing::StaysUntilFreed) => unsafe { dealloc_maybe_sampled(ptr, layout, inner) },
        Some(Outgoing::Removed(sample)) => {
            forget(sample);
            // SAFETY: the caller's block and layout.
            unsafe { inner.dealloc(ptr, layout) }
        }
        // SAFETY: the caller's block and layout.
        None => unsafe { inner.dealloc(ptr, layout) },
    }
}

/// One-time process setup, run from the first slow path (thread busy).
fn once_per_process() {
    if !ACTIVE.load(Ordering::Relaxed) {
        ACTIVE.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    thread_local! {
        /// Whether the test allocator refuses its next `alloc` or `realloc`.
        static FAIL_NEXT: Cell<bool> = const { Cell::new(false) };
        /// The layout of the test allocator's last `dealloc`.
        static LAST_FREED: Cell<Option<Layout>> = const { Cell::new(None) };
    }

    /// The system allocator, which can be told to fail once and notes how
    /// blocks are freed.
    struct Inner;

    // SAFETY: forwards to `System`, or returns null (a valid answer).
    unsafe impl GlobalAlloc for Inner {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if FAIL_NEXT.with(|f| f.replace(false)) {
                return core::ptr::null_mut();
            }
            // SAFETY: the caller's layout.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LAST_FREED.with(|l| l.set(Some(layout)));
            // SAFETY: the caller's block and layout.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if FAIL_NEXT.with(|f| f.replace(false)) {
                return core::ptr::null_mut();
            }
            // SAFETY: the caller's block, layout and size.
            unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
        }
    }

    fn sampled(addr: *mut u8) -> bool {
        let mut live = Vec::new();
        LIVE.copy_into(&mut live);
        live.iter().any(|s| s.addr == addr as usize)
    }

    /// A block of `layout` from `Inner`, filled with 7s and given a live
    /// sample (promoted: allocated with its promoted layout).
    fn sampled_block(layout: Layout, promoted: bool) -> *mut u8 {
        let real = if promoted {
            promoted_layout(layout).unwrap()
        } else {
            layout
        };
        // SAFETY: a non-zero layout.
        let ptr = unsafe { Inner.alloc(real) };
        assert!(!ptr.is_null());
        // SAFETY: the block holds `layout.size()` bytes.
        unsafe { ptr.write_bytes(7, layout.size()) };
        let mut sample = LiveSample::new(ptr as usize, layout.size(), 1.0, 0, 1, 1, 0);
        if promoted {
            sample = sample.promoted();
        }
        assert!(matches!(LIVE.insert(sample), Ok(None)));
        ptr
    }

    /// Reallocations here are never sample points (the thread's rate is
    /// 0), so only the old block's sample is at stake.
    fn unsampled_thread() -> Option<u64> {
        crate::thread_state::set_thread_rate(Some(0))
    }

    #[test]
    fn a_failed_reallocation_keeps_the_old_sample() {
        let previous = unsampled_thread();
        let layout = Layout::from_size_align(64, 8).unwrap();
        for promoted in [false, true] {
            let ptr = sampled_block(layout, promoted);
            FAIL_NEXT.with(|f| f.set(true));
            // SAFETY: a live block of `layout` from `Inner`.
            let new = unsafe { realloc_maybe_sampled(ptr, layout, 256, &Inner) };
            assert!(new.is_null(), "promoted: {promoted}");
            assert!(
                sampled(ptr),
                "the block and its sample stay (promoted: {promoted})"
            );
            // SAFETY: still the live block of `layout`.
            unsafe { dealloc_maybe_sampled(ptr, layout, &Inner) };
            assert!(!sampled(ptr));
            let freed = LAST_FREED.with(Cell::get).unwrap();
            assert_eq!(
                freed.align() == crate::sample::SAMPLED_BLOCK_ALIGN,
                promoted
            );
        }
        crate::thread_state::set_thread_rate(previous);
    }

    #[test]
    fn a_reallocated_sampled_block_keeps_its_bytes_and_leaves_the_table() {
        let previous = unsampled_thread();
        let layout = Layout::from_size_align(64, 8).unwrap();
        for promoted in [false, true] {
            let ptr = sampled_block(layout, promoted);
            // SAFETY: a live block of `layout` from `Inner`.
            let new = unsafe { realloc_maybe_sampled(ptr, layout, 256, &Inner) };
            assert!(!new.is_null());
            assert!(!sampled(ptr) && !sampled(new), "promoted: {promoted}");
            if promoted {
                let freed = LAST_FREED.with(Cell::get).unwrap();
                assert_eq!(
                    freed,
                    promoted_layout(layout).unwrap(),
                    "freed as allocated"
                );
            }
            // SAFETY: the new block holds at least the 64 copied bytes.
            let bytes = unsafe { core::slice::from_raw_parts(new, 64) };
            assert!(bytes.iter().all(|&b| b == 7), "promoted: {promoted}");
            let new_layout = Layout::from_size_align(256, 8).unwrap();
            // SAFETY: the reallocated block, an ordinary one of `new_layout`.
            unsafe { dealloc_maybe_sampled(new, new_layout, &Inner) };
        }
        crate::thread_state::set_thread_rate(previous);
    }
}
