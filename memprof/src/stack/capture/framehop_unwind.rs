//! In-process DWARF unwinding with [`framehop`], for the allocation path.
//!
//! `backtrace` (libgcc) re-finds and re-interprets the CFI of every frame on
//! every stack: 3 to 4 us for 30 frames. framehop turns each address's CFI
//! into a small rule once and caches it, so a warm stack costs a cache probe
//! and two or three stack reads per frame (about 200 ns for 30 frames).
//!
//! How it is wired in:
//!
//! * **Modules.** `dl_iterate_phdr` lists every loaded object; each becomes a
//!   framehop `Module` reading its `.eh_frame_hdr` and `.eh_frame` *in place*
//!   (the loaded memory, no copy). `dlclose` unmaps that memory, so the list
//!   is used only inside a `dl_iterate_phdr` callback, with the loader's lock
//!   held (`dlclose` waits for it), after checking that the loader's
//!   load/unload counters (`dlpi_adds`, `dlpi_subs`) still match the list's;
//!   if they do not, the list is rebuilt there and the old one freed. A walk
//!   takes the lock only for frames that need framehop (the hot loop over
//!   learned rules reads no table), and every 64th walk of a thread once at
//!   its start, to keep the rules current. See the
//!   `modules` and `loader` modules. In a forked child the lock is never
//!   taken (it may be held by a thread that is not there; see `loader`).
//! * **Rules.** framehop turns an address's CFI into a rule and caches it
//!   per thread; running a cached rule still costs about 8 ns a frame, and
//!   every new thread starts with an empty cache. memprof learns each rule
//!   from framehop once, in a compact form that fits beside its address in
//!   one `u64`, and keeps it in a process-wide table of 4096 entries
//!   (32 KiB, four-way set-associative, lock-free); a warm frame costs a
//!   probe of half a cache line and two or three bounds-checked stack reads,
//!   in a loop that makes no calls (about 40 instructions a frame). The
//!   walk's own first frame is looked up the same way. Frames whose rule
//!   does not fit that form are unwound by framehop every time. See the
//!   `rules` module.
//! * **Per-thread state** (framehop's cache, for frames the table cannot
//!   unwind, about 11 KiB) is taken only when a walk meets such a frame, and
//!   allocated the first time (the thread is busy then, so that allocation
//!   goes straight to the inner allocator)
//!   and returned to a global free list by a thread-local destructor, for the
//!   next new thread to reuse. At most 1024 exist; a thread that
//!   finds none free beyond that falls back to `backtrace`.
//! * **Stack reads** stay inside `[sp, stack top)` of the current thread.
//!
//! Nothing here allocates or panics once a thread's state exists and the
//! module list is current; the only lock is the loader's, held briefly (the
//! hot loop runs outside it). Any framehop error ends the stack there.
//!
//! What is guaranteed: no unwind table is read after its object is unloaded,
//! whatever other threads load or unload; rules learned from an object's
//! tables are forgotten when any object is loaded or unloaded. What is not:
//! a walk that races a `dlopen` or `dlclose` on another thread may step a
//! frame with a rule learned just before (reads stay inside this thread's
//! stack, so at worst the stack is wrong), and a return address into an
//! object another thread is unloading (which the program could not return
//! to either) ends the walk or is stepped with the next list.
//!
//! x86_64 Linux only; elsewhere [`supported`] is false and callers use
//! `backtrace`.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod loader;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod modules;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod rules;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) use imp::{supported, unwind};
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) use loader::after_fork_in_child;
/// Nothing to mark where the unwinder does not read the loader's list.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub(crate) fn after_fork_in_child() {}

/// Counters of the framehop unwinder's own bookkeeping, since the process
/// started (all zero where framehop is unsupported).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FramehopCounters {
    /// Module lists built: one, and one more each time a walk finds that
    /// objects were loaded or unloaded since; a replaced list is freed.
    pub module_lists: u32,
    /// Per-thread states allocated, about 11 KiB each; a state is reused by
    /// a new thread once its thread exits, so this follows the peak number
    /// of threads that took samples (at most 1024).
    pub states: u32,
    /// Per-thread states not returned at thread exit (free list busy).
    pub states_leaked: u32,
    /// Frames whose unwind rule was not in the process-wide rule table, so
    /// framehop worked it out (from its own per-thread cache or the CFI).
    pub cache_misses: u64,
    /// Rules learned without a compact form (framehop unwinds those frames
    /// every time).
    pub rules_not_compact: u64,
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) use imp::counters;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod fallback {
    use super::FramehopCounters;
    use crate::stack::capture::Frames;

    /// Whether this platform has the framehop unwinder: not this one.
    pub(crate) fn supported() -> bool {
        false
    }

    /// Never unwinds here; callers fall back to `backtrace`.
    pub(crate) fn unwind(_buf: &mut Frames, _lo: usize, _hi: usize) -> Option<usize> {
        None
    }

    /// All zero on this platform.
    pub(crate) fn counters() -> FramehopCounters {
        FramehopCounters::default()
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub(crate) use fallback::{counters, supported, unwind};
