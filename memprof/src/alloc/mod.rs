//! The global allocator wrapper.
//!
//! `MemProf<A>` forwards every call to the inner allocator `A` and, on the
//! way, runs the sampler's fast path:
//!
//! * `alloc`: subtract the size from this thread's countdown (a TLS slot);
//!   only when it crosses zero, jump to the `#[cold]` recorder, which makes
//!   the allocation itself (a sampled block may get a promoted layout, see
//!   `record`); otherwise jump to the inner allocator.
//! * `dealloc`: ask the page gate and then the lock-free prefilter whether
//!   the address may be a live sample; only if it may, jump to the `#[cold]`
//!   forgetter, which takes one shard lock.
//! * `realloc`: a free of the old block and an allocation of `new_size`
//!   bytes at the reallocation's stack. The free side asks the gate and
//!   prefilter as `dealloc` does, the allocation side counts `new_size` down
//!   as `alloc` does; only if either says so, jump to the `#[cold]` path,
//!   which forgets the old sample and samples the new block afresh. A
//!   block's bytes are therefore charged to its last reallocation, whatever
//!   the rate (see `record::realloc_maybe_sampled`).
//!
//! Every path ends in a tail call, to the inner allocator or to a cold
//! function, so the fast path saves no extra registers. Nothing here locks,
//! allocates through itself, or panics; anything that goes wrong while
//! recording is dropped and counted.

mod record;

use core::alloc::{GlobalAlloc, Layout};

use crate::sample::LIVE;
use crate::thread_state as thread;
use record::Fill;

/// The inner allocator `MemProf` wraps when none is named: jemalloc with
/// the `jemalloc` feature, else the system allocator.
#[cfg(feature = "jemalloc")]
pub type DefaultAllocator = tikv_jemallocator::Jemalloc;
/// The inner allocator `MemProf` wraps when none is named.
#[cfg(not(feature = "jemalloc"))]
pub type DefaultAllocator = std::alloc::System;

/// A global allocator that samples allocations with their stacks.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
/// ```
///
/// or, around any other allocator:
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: memprof::MemProf<std::alloc::System> = memprof::MemProf::new(std::alloc::System);
/// ```
pub struct MemProf<A = DefaultAllocator> {
    inner: A,
}

#[cfg(feature = "jemalloc")]
impl MemProf<tikv_jemallocator::Jemalloc> {
    /// Wraps jemalloc (the default, and what the `/allocator` view reads).
    pub const fn jemalloc() -> Self {
        MemProf {
            inner: tikv_jemallocator::Jemalloc,
        }
    }
}

impl<A> MemProf<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        MemProf { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's
// arguments unchanged and returns its result unchanged, so `MemProf<A>`
// upholds `GlobalAlloc`'s contract exactly when `A` does. The profiling done
// on the side never touches the blocks' memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for MemProf<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if thread::countdown_crossed(layout.size()) {
            // SAFETY: the caller's guarantees about `layout`, passed on.
            return unsafe { record::alloc_at_sample_point(layout, Fill::Uninit, &self.inner) };
        }
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if thread::countdown_crossed(layout.size()) {
            // SAFETY: the caller's guarantees about `layout`, passed on.
            return unsafe { record::alloc_at_sample_point(layout, Fill::Zeroed, &self.inner) };
        }
        // SAFETY: forwarded with the caller's guarantees about `layout`.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if LIVE.may_contain(ptr as usize) {
            // SAFETY: the caller's guarantees are passed on unchanged.
            return unsafe { record::dealloc_maybe_sampled(ptr, layout, &self.inner) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if LIVE.may_contain(ptr as usize) {
            // SAFETY: the caller's guarantees are passed on unchanged.
            return unsafe { record::realloc_maybe_sampled(ptr, layout, new_size, &self.inner) };
        }
        if thread::countdown_crossed(new_size) {
            // SAFETY: the caller's guarantees are passed on unchanged.
            return unsafe { record::realloc_at_sample_point(ptr, layout, new_size, &self.inner) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}
