//! The symbol cache across `fork()`.
//!
//! A thread that is symbolizing when another thread forks does not exist in
//! the child: the cache's lock would stay taken there for good, and
//! backtrace's own state (the DWARF it was parsing) may be half-updated.
//! memprof's fork handlers take the lock around `fork()` when it is free
//! and release it on both sides, so a child forked at a quiet moment
//! symbolizes as usual. When another thread holds it, the fork does not
//! wait (a first symbolization can take seconds); the child then names
//! frames by their address only (`0x…`), as for an address without
//! symbols.
//!
//! Left open: a thread of the program's own inside the backtrace crate's
//! `resolve` at the fork leaves backtrace's lock taken in the child; only
//! memprof's own symbolization is covered.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::{MutexGuard, Once, TryLockError};

use super::{Cache, CACHE};

/// Set in a child forked while another thread held the cache.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// The cache's guard while the forking thread holds it across `fork()`;
/// empty during a fork when another thread held the cache.
struct HeldAcrossFork(UnsafeCell<Option<MutexGuard<'static, Option<Cache>>>>);

// SAFETY: only the forking thread touches the slot, from its prepare
// handler to its parent or child handler, and libc (glibc and musl alike)
// holds its own fork-handler lock over that whole span, so two forks never
// use the slot at once. The guard is released on the thread that took it
// (in the child, that thread's copy).
unsafe impl Sync for HeldAcrossFork {}

static HELD: HeldAcrossFork = HeldAcrossFork(UnsafeCell::new(None));

/// Registers the fork handlers, once per process. Called before the cache
/// is first locked, so no holder can predate them.
pub(super) fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handlers are `extern "C"` functions that neither
        // unwind nor allocate; registration itself has no preconditions.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            );
        }
    });
}

/// Whether this process is a child forked while the cache was held, so
/// nothing may be symbolized here.
pub(super) fn unavailable() -> bool {
    UNAVAILABLE.load(Ordering::Relaxed)
}

extern "C" fn before_fork() {
    let guard = match CACHE.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    // SAFETY: see `HeldAcrossFork`.
    unsafe { *HELD.0.get() = guard };
}

extern "C" fn after_fork_in_parent() {
    drop(take_held());
}

extern "C" fn after_fork_in_child() {
    if take_held().is_none() {
        UNAVAILABLE.store(true, Ordering::Relaxed);
    }
}

/// Empties the slot; dropping what it held releases the cache.
fn take_held() -> Option<MutexGuard<'static, Option<Cache>>> {
    // SAFETY: see `HeldAcrossFork`.
    unsafe { (*HELD.0.get()).take() }
}
