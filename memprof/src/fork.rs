//! memprof across `fork()`: the one place that registers the atfork
//! handlers, and the list of every lock the allocation path or a snapshot
//! can reach.
//!
//! A child has one thread, a copy of the one that forked. A lock held by any
//! other thread at that moment stays held in the child for good, so each
//! lock below is either taken by the prepare handler (waiting for its holder
//! to finish) and released on both sides, or, where waiting is not an option,
//! tried and, if held, worked around in the child.
//!
//! | # | lock | owner | taken by | prepare | parent | child |
//! | - | ---- | ----- | -------- | ------- | ------ | ----- |
//! | 1 | `START` (std `Mutex`) | `history` | starting or looking up the history (`/stats`, `/metrics`, the page) | lock | release | mark the history not started (its thread is not in the child; the next start spawns one), release |
//! | 2 | history state (std `Mutex`) | `history` | the sampler's tick, reading points | lock | release | release |
//! | 3 | scope registry (`SpinLock`: the index, the runtime names' arena, the label values) | `scope` | a thread's first entry of a scope; every entry by a runtime name or label; a span's creation under the tracing layer | lock | release | release |
//! | 4 | `STACKS.index`, 16 shards (`SpinLock`) | `stack::table` | a sample of a new stack | lock each | release | release |
//! | 5 | `STACKS.growth` (`SpinLock`) | `stack::table` | the first sample; a new stack's id and frame space, under its shard (4) | lock | release | release |
//! | 6 | `LIVE`, 256 shards (`SpinLock`) | `sample::live` | every sample and every free of a sampled block | lock each, in shard order | release | release |
//! | 7 | symbol cache (std `Mutex`) | `stack::symbolize` | snapshots, leaks, test reports, `/stats` (its size) | try: a first symbolization can take seconds | release if taken | release if taken; if another thread held it, name frames by address |
//!
//! Readers that take no lock: scope paths and figures (`/stats`,
//! `/metrics`, snapshots), the sampler's counters, stack frames and counters.
//!
//! Not memprof's to take, and what is done about each:
//!
//! * The `backtrace` crate's global lock (taken by its `resolve` and
//!   `trace`; private, so no handler can take it). memprof's own calls into
//!   it happen under the symbol cache (7), so a child forked with the cache
//!   free finds it free unless a thread of the program's own was inside the
//!   crate. The child does not assume so: before its first lookup that
//!   needs the crate, a short-lived thread takes the crate's lock, and if it
//!   has not got it within [`crate::stack::symbolize`]'s probe timeout, the
//!   child names frames by address (see `stack::symbolize::fork`).
//! * Try-only flags that never block: framehop's free list of unwinder
//!   states (`FREE_LOCK`, a bounded spin, then a state is leaked and
//!   counted), and the counter stripes' leases (a lease
//!   held by a thread not in the child is simply never handed out there).
//! * glibc's loader lock, which framehop holds (through `dl_iterate_phdr`)
//!   while it reads a library's unwind tables: glibc does not reset it in a
//!   child, so the child handler marks the process as a forked child and the
//!   unwinder never takes it there; it walks with the rules learned before
//!   the fork and hands frames without one to libgcc's unwinder (see
//!   `stack::capture::framehop_unwind::loader`, which registers these
//!   handlers before its first `dl_iterate_phdr`).
//! * The inner allocator's locks: jemalloc registers its own atfork
//!   handlers, and glibc's malloc is locked by `fork()` itself, after every
//!   prepare handler.
//!
//! # Order
//!
//! Prepare handlers take the locks in the table's order, which is the
//! order any thread takes them in: code holding (1) may take (2), code
//! holding (1) or (2) allocates and so may record a sample (4-6), a
//! sample interning a new stack takes (5) under (4), and nothing else is
//! taken under (3), (4)-(6) or inside a sample. The symbol cache
//! comes last because it is only tried: whatever its holder is waiting for,
//! the prepare handler does not wait for it. Parent and child handlers
//! release in reverse.
//!
//! Holders of (1), (2) and (7) allocate, so the prepare handler must run
//! while the allocator still serves them: before jemalloc's prepare handler
//! locks its arenas. Handlers registered later run their prepare earlier, so
//! memprof registers only once the allocator has served an allocation (and
//! so set up its own handlers): [`register`] allocates first, and the
//! allocation path registers after the sampled block was allocated
//! ([`register_after_allocating`]). Both run before the first use of any
//! lock above, and never with one held.

use std::sync::Once;

use crate::sample::LIVE;
use crate::stack::STACKS;

static REGISTER: Once = Once::new();

/// Registers the handlers, once per process. Call before taking any lock in
/// the table, from code that may allocate.
pub(crate) fn register() {
    if REGISTER.is_completed() {
        return;
    }
    // Let the global allocator set itself up (and register its own
    // handlers) before ours, so that ours run first in `fork()`.
    drop(std::hint::black_box(Box::new(0u64)));
    register_after_allocating();
}

/// Registers the handlers from the allocation path, where the inner
/// allocator has just served the sampled block and nothing may allocate.
pub(crate) fn register_after_allocating() {
    REGISTER.call_once(|| {
        // SAFETY: the handlers are `extern "C"` functions that do not
        // unwind and do not allocate; registering has no preconditions.
        // (libc allocates the handler entry with its own malloc, not
        // through the global allocator.)
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            );
        }
    });
}

extern "C" fn before_fork() {
    crate::history::prepare_fork();
    crate::scope::prepare_fork();
    STACKS.lock_all_for_fork();
    LIVE.lock_all_for_fork();
    crate::stack::symbolize::prepare_fork();
}

extern "C" fn after_fork_in_parent() {
    crate::stack::symbolize::after_fork_in_parent();
    // SAFETY: `before_fork` took these locks on this thread just before fork.
    unsafe {
        LIVE.unlock_all_after_fork();
        STACKS.unlock_all_after_fork();
        crate::scope::after_fork();
    }
    crate::history::after_fork_in_parent();
}

extern "C" fn after_fork_in_child() {
    crate::stack::capture::after_fork_in_child();
    crate::stack::symbolize::after_fork_in_child();
    // SAFETY: `before_fork` took these locks on the thread this child's
    // only thread is a copy of.
    unsafe {
        LIVE.unlock_all_after_fork();
        STACKS.unlock_all_after_fork();
        crate::scope::after_fork();
    }
    crate::history::after_fork_in_child();
}
