//! The sampler's slow paths: recording a sample, and forgetting a freed one.
//!
//! Reached only when a thread's countdown crosses zero or when the free
//! path's gate and prefilter say a freed address may have been sampled. The
//! thread is marked busy while recording, so anything allocated meanwhile
//! (by the unwinder, say) goes straight to the inner allocator.
//!
//! # Promotion
//!
//! At rates of [`PROMOTE_MIN_RATE`] and above, a sampled block is allocated
//! with a page-aligned layout of at least a page ([`promoted_layout`]), as
//! jemalloc's profiler promotes its sampled blocks to a large size class.
//! Then every live sample is page-aligned and the free path settles most
//! frees by their address's low bits (the page gate, see
//! [`crate::sample::live`]). It costs at most a page per live sample, and
//! since samples are drawn per byte, most sampled blocks are not tiny: at
//! the default rate the padding is under 1% of the heap in the worst case.
//! A promoted block is freed with its promoted layout, found in its sample;
//! a promoted block is therefore never left without one: if the live table
//! refuses the sample, the block is swapped for an ordinary one at once.
//! Below that rate (exact mode above all), blocks keep their layout: the
//! padding would be too large, and every free must consult the table anyway.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::Ordering;

use crate::sample::live::promoted_layout;
use crate::sample::per_thread::{draw_distance, effective_rate};
use crate::sample::rate::{self, sample_weight};
use crate::sample::{LiveSample, ACTIVE, LIVE, SKIPPED_BUSY};
use crate::stack::{capture, STACKS};
use crate::thread_state as thread;

/// How far a thread runs between re-reading the rate while sampling is off.
const OFF_RECHECK_BYTES: i64 = 64 << 20;

/// The lowest rate at which sampled blocks are promoted (see the module
/// docs): a page of padding per `rate` bytes of heap is then at most 1/64.
pub(crate) const PROMOTE_MIN_RATE: u64 = 256 << 10;

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
        (self.rate >= PROMOTE_MIN_RATE)
            .then(|| promoted_layout(layout))
            .flatten()
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
    let mut sampled = true;
    if let Some(promoted) = point.promotion(layout) {
        // SAFETY: a promoted layout is at least a page.
        let ptr = unsafe { fill.alloc(inner, promoted) };
        if !ptr.is_null() {
            if record(ptr, layout.size(), point.rate, true).is_ok() {
                return ptr;
            }
            // The table refused the sample (counted): no promoted block may
            // live without one.
            // SAFETY: allocated just above with this layout.
            unsafe { inner.dealloc(ptr, promoted) };
            sampled = false;
        }
    }
    // SAFETY: the caller's layout, unchanged.
    let ptr = unsafe { fill.alloc(inner, layout) };
    if sampled && !ptr.is_null() {
        let _ = record(ptr, layout.size(), point.rate, false);
    }
    ptr
}

/// Records a sample of the block at `addr`, allocated (or reallocated) by
/// the calling thread now: its stack is captured here. `Err` when the live
/// table refused it (the sample is then counted as dropped, and as freed at
/// once).
fn record(addr: *mut u8, size: usize, rate: u64, promoted: bool) -> Result<(), ()> {
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
    if promoted {
        sample = sample.promoted();
    }
    match LIVE.insert(sample) {
        Ok(None) => Ok(()),
        Ok(Some(stale)) => {
            forget((stale, false));
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

/// Accounts for a sampled block that is gone. `last_unaligned`: it was its
/// shard's last unaligned sample, so the page gate may reopen.
fn forget((sample, last_unaligned): (LiveSample, bool)) {
    STACKS.record_free(sample.stack, sample.size, sample.weight);
    crate::scope::record_free(sample.scope, sample.size, sample.weight);
    // In exact mode nothing is promoted and the gate stays shut; trying to
    // reopen it there would only cost.
    if last_unaligned && rate::rate() >= PROMOTE_MIN_RATE {
        LIVE.try_open_gate();
    }
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
    if let Some(removed) = LIVE.remove(ptr as usize) {
        if removed.0.is_promoted() {
            layout = real_layout(layout);
        }
        forget(removed);
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
    // An unpromoted sample is forgotten before the block may be freed
    // (another thread could be handed the address and sample it); a
    // promoted one stays in the table until its block is released, so it is
    // never without its sample if the reallocation fails.
    let old = LIVE.remove_if(ptr as usize, |s| !s.is_promoted());
    let crossed = thread::countdown_crossed(new_size);
    // SAFETY: the caller's contract, passed on.
    unsafe { realloc_slow(inner, ptr, layout, new_size, old, crossed) }
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
    // SAFETY: the caller's contract, passed on.
    unsafe { realloc_slow(inner, ptr, layout, new_size, None, true) }
}

/// The reallocation slow path. `old` is the block's sample if it had one
/// (still in the table if promoted, removed otherwise); `crossed` says
/// whether the new size crossed the countdown.
///
/// # Safety
///
/// The caller's `GlobalAlloc::realloc` contract.
unsafe fn realloc_slow<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    old: Option<(LiveSample, bool)>,
    crossed: bool,
) -> *mut u8 {
    // SAFETY: `realloc`'s contract: `new_size` is non-zero and, rounded up
    // to `layout.align()`, does not overflow `isize`.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    let old_sample = old.map(|(sample, _)| sample);
    let old_promoted = old_sample.is_some_and(|s| s.is_promoted());
    let point = if crossed {
        sample_point(new_size)
    } else {
        None
    };
    let mut sample_new = point.is_some();

    // A promoted new block: recorded before the old block is let go, so a
    // refused sample only means falling back to an ordinary block.
    if let Some((point, promoted)) = point
        .as_ref()
        .and_then(|p| Some((p, p.promotion(new_layout)?)))
    {
        // SAFETY: a promoted layout is at least a page.
        let new = unsafe { inner.alloc(promoted) };
        if !new.is_null() {
            if record(new, new_size, point.rate, true).is_ok() {
                // SAFETY: both blocks hold at least the copied bytes, and
                // they are distinct live blocks.
                unsafe { move_contents(ptr, new, layout.size().min(new_size)) };
                // SAFETY: the caller's block, released once.
                unsafe { release(inner, ptr, layout, old) };
                return new;
            }
            // SAFETY: allocated just above with this layout.
            unsafe { inner.dealloc(new, promoted) };
            sample_new = false;
        }
    }

    let new = if old_promoted {
        // The block cannot be resized in place: its real layout is not the
        // caller's. Move it into an ordinary block.
        // SAFETY: `new_layout` is valid (see above) and non-zero.
        let new = unsafe { inner.alloc(new_layout) };
        if new.is_null() {
            // The old block and its sample are untouched.
            return new;
        }
        // SAFETY: as above.
        unsafe { move_contents(ptr, new, layout.size().min(new_size)) };
        // SAFETY: the caller's block, released once.
        unsafe { release(inner, ptr, layout, old) };
        new
    } else {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { inner.realloc(ptr, layout, new_size) };
        if new.is_null() {
            // The old block is still allocated and still sampled.
            if let Some(old) = old_sample {
                if LIVE.insert(old).is_err() {
                    forget((old, false));
                }
            }
            return new;
        }
        if let Some(old) = old {
            forget(old);
        }
        new
    };
    if let (Some(point), true) = (&point, sample_new) {
        let _ = record(new, new_size, point.rate, false);
    }
    new
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
/// block still has its sample in the table and is freed as any sampled
/// block is; an unpromoted one's sample was taken out already.
///
/// # Safety
///
/// `ptr` is the caller's live block of `layout`, with `old` its sample as
/// `realloc_maybe_sampled` found it.
unsafe fn release<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
    old: Option<(LiveSample, bool)>,
) {
    match old {
        // SAFETY: the caller's block and layout, freed once.
        Some((sample, _)) if sample.is_promoted() => unsafe {
            dealloc_maybe_sampled(ptr, layout, inner)
        },
        other => {
            if let Some(removed) = other {
                forget(removed);
            }
            // SAFETY: the caller's block and layout.
            unsafe { inner.dealloc(ptr, layout) }
        }
    }
}

/// One-time process setup, run from the first slow path (thread busy).
fn once_per_process() {
    if !ACTIVE.load(Ordering::Relaxed) {
        ACTIVE.store(true, Ordering::Relaxed);
    }
}
