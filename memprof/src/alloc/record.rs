//! The sampler's slow paths: recording a sample, and forgetting a freed one.
//!
//! Reached only when a thread's countdown crosses zero or when the prefilter
//! says a freed address may have been sampled. The thread is marked busy
//! while recording, so anything allocated meanwhile (by the unwinder, say)
//! goes straight to the inner allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};

use super::thread;
use crate::sample::rate::{self, next_sample_distance, sample_weight};
use crate::sample::{LiveSample, LIVE, SAMPLES_FREED, SAMPLES_TAKEN, SKIPPED_BUSY};
use crate::stack::{capture, MAX_FRAMES, STACKS};

/// Set by the first sample: `MemProf` is the global allocator.
pub(super) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// How far a thread runs between re-reading the rate while sampling is off.
const OFF_RECHECK_BYTES: i64 = 64 << 20;

/// Called when the countdown crossed zero during an allocation of `size`
/// bytes at `ptr`. Returns `ptr`, so callers can tail-call it.
#[cold]
#[inline(never)]
pub(super) fn sampled_alloc(ptr: *mut u8, size: usize) -> *mut u8 {
    sample_block(ptr, size, None);
    ptr
}

/// Decides whether this crossing is a sample, and records it if so.
/// `inherit` carries the stack and time of a sampled block being reallocated.
fn sample_block(ptr: *mut u8, size: usize, inherit: Option<LiveSample>) {
    let Some(_busy) = thread::BusyGuard::enter() else {
        // memprof allocating for itself; the outer call redraws the countdown.
        SKIPPED_BUSY.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // Nested allocations must not cross again while we work.
    thread::set_countdown(i64::MAX);
    once_per_process();

    let rate = thread::effective_rate();
    if rate == 0 {
        thread::set_countdown(OFF_RECHECK_BYTES);
        thread::set_generation(rate::generation());
        return;
    }
    // A thread's first crossing, or the first after a rate change, only
    // places the sample point: the old countdown was not drawn at this rate.
    let generation = rate::generation();
    if thread::generation() != generation {
        thread::set_generation(generation);
        let distance = draw(rate);
        if distance - size as i64 >= 0 {
            thread::set_countdown(distance - size as i64);
            return;
        }
    }
    if !ptr.is_null() {
        record(ptr as usize, size, rate, inherit);
    }
    thread::set_countdown(draw(rate));
}

fn draw(rate: u64) -> i64 {
    thread::with_rng(|rng| next_sample_distance(rng.next_uniform(), rate)).unwrap_or(rate as i64)
}

fn record(addr: usize, size: usize, rate: u64, inherit: Option<LiveSample>) {
    let weight = sample_weight(size as u64, rate);
    let (stack, allocated_at, thread_id, scope) = match inherit {
        Some(old) => (old.stack, old.allocated_at_nanos, old.thread, old.scope),
        None => {
            let mut frames = [0usize; MAX_FRAMES];
            let mut n = capture::capture(&mut frames);
            let scope = thread::scope();
            if scope != 0 {
                // The scope becomes the root frame, so stacks split by scope.
                n = n.min(MAX_FRAMES - 1);
                frames[n] = crate::stack::scope_marker(scope);
                n += 1;
            }
            (
                STACKS.intern(&frames[..n]),
                crate::os::monotonic_nanos(),
                thread::thread_id(),
                scope,
            )
        }
    };
    STACKS.record_alloc(stack, size, weight);
    crate::scope::record_alloc(scope, size, weight);
    let sample = LiveSample::new(addr, size, weight, allocated_at, stack, thread_id, scope);
    match LIVE.insert(sample) {
        Ok(None) => {}
        Ok(Some(stale)) => forget(stale),
        // Dropped and counted by the table; keep the in-use estimate honest
        // by treating the block as freed at once.
        Err(()) => {
            STACKS.record_free(stack, size, weight);
            crate::scope::record_free(scope, size, weight);
        }
    }
    SAMPLES_TAKEN.add(1);
}

fn forget(sample: LiveSample) {
    STACKS.record_free(sample.stack, sample.size, sample.weight);
    crate::scope::record_free(sample.scope, sample.size, sample.weight);
    SAMPLES_FREED.add(1);
}

/// Frees a block the prefilter says may have been sampled.
///
/// # Safety
///
/// The caller's `GlobalAlloc::dealloc` contract for `ptr` and `layout`.
#[cold]
#[inline(never)]
pub(super) unsafe fn dealloc_maybe_sampled<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
) {
    // Forget before freeing: once freed, another thread may be handed the
    // same address and sample it.
    if let Some(sample) = LIVE.remove(ptr as usize) {
        forget(sample);
    }
    // SAFETY: forwarded with the caller's guarantees.
    unsafe { inner.dealloc(ptr, layout) }
}

/// Reallocates a block the prefilter says may have been sampled.
///
/// Like jemalloc's profiler, a reallocation is a free of the old block and a
/// fresh sampling decision for the new one; a new sample of a block that was
/// sampled before keeps its original stack and allocation time.
///
/// # Safety
///
/// The caller's `GlobalAlloc::realloc` contract.
#[cold]
#[inline(never)]
pub(super) unsafe fn realloc_maybe_sampled<A: GlobalAlloc>(
    inner: &A,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
) -> *mut u8 {
    let old = LIVE.remove(ptr as usize);
    // SAFETY: forwarded with the caller's guarantees.
    let new = unsafe { inner.realloc(ptr, layout, new_size) };
    if new.is_null() {
        // The old block is still allocated and still sampled.
        if let Some(old) = old {
            if LIVE.insert(old).is_err() {
                forget(old);
            }
        }
        return new;
    }
    if let Some(old) = old {
        forget(old);
    }
    if thread::countdown_crossed(new_size) {
        sample_block(new, new_size, old);
    }
    new
}

/// One-time process setup, run from the first slow path (thread busy).
fn once_per_process() {
    static ONCE: AtomicBool = AtomicBool::new(false);
    if ONCE.load(Ordering::Relaxed) || ONCE.swap(true, Ordering::Relaxed) {
        return;
    }
    ACTIVE.store(true, Ordering::Relaxed);
    // SAFETY: the handlers are plain functions that only take and release
    // memprof's spin locks; registering them has no other precondition.
    unsafe {
        libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork));
    }
}

/// Holds every lock the allocation path takes across `fork()`, so the child
/// never inherits a lock held by a thread that does not exist there.
extern "C" fn before_fork() {
    STACKS.lock_all_for_fork();
    LIVE.lock_all_for_fork();
}

extern "C" fn after_fork() {
    // SAFETY: `before_fork` took these locks on this thread just before fork.
    unsafe {
        LIVE.unlock_all_after_fork();
        STACKS.unlock_all_after_fork();
    }
}
