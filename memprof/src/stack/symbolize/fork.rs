//! The symbol cache, and the `backtrace` crate's lock, across `fork()`.
//!
//! A thread that is symbolizing when another thread forks does not exist in
//! the child: the cache's lock would stay taken there for good, and
//! backtrace's own state (the DWARF it was parsing) may be half-updated.
//! memprof's fork handlers (see `crate::fork`) take the lock around
//! `fork()` when it is free and release it on both sides, so a child forked
//! at a quiet moment symbolizes as usual. When another thread holds it, the
//! fork does not wait (a first symbolization can take seconds); the child
//! then names frames by their address only (`0x…`), as for an address
//! without symbols.
//!
//! The `backtrace` crate has a global lock of its own that no handler can
//! take (it is private). memprof only calls into the crate under the cache,
//! but a thread of the program's own may have been inside it at the fork,
//! leaving it taken in the child. So a child checks before its first lookup
//! that needs the crate: a short-lived thread takes and releases the lock
//! (a one-frame `backtrace::trace`), and if it has not done so within
//! [`PROBE_TIMEOUT`], the child names frames it has not cached by address.
//! The probing thread then stays blocked for the child's life; nothing
//! else waits for it.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{MutexGuard, TryLockError};
use std::time::Duration;

use super::{Cache, CACHE};
use crate::sync::HeldAcrossFork;

/// How long a child waits for the `backtrace` crate's lock before
/// deciding that a thread not in the child holds it. Free, it takes a
/// thread start and a one-frame walk (well under a millisecond); the margin
/// is for a loaded machine, and a wrong verdict only costs names.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Set in a child forked while another thread held the cache.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// What is known of the `backtrace` crate's lock in this process.
static BACKTRACE_LOCK: AtomicU8 = AtomicU8::new(FREE);
/// The process [`BACKTRACE_LOCK`] speaks for (0 before the first lookup).
static KNOWN_FOR_PID: AtomicU32 = AtomicU32::new(0);

/// The process the program started as, recorded before `main` (0 if the
/// loader did not run [`RECORD_START_PID`]).
static START_PID: AtomicU32 = AtomicU32::new(0);

/// Run by the loader at start-up, before `main` and before any thread of
/// the program could fork.
#[used]
#[link_section = ".init_array"]
static RECORD_START_PID: extern "C" fn() = record_start_pid;

extern "C" fn record_start_pid() {
    START_PID.store(std::process::id(), Ordering::Relaxed);
}
/// Never inherited held: the parent, or a child that probed it.
const FREE: u8 = 0;
/// A child that has not probed it yet.
const UNKNOWN: u8 = 1;
/// A child in which it stayed held past the probe's timeout.
const HELD: u8 = 2;

/// The cache's guard while the forking thread holds it across `fork()`;
/// empty during a fork when another thread held the cache.
static HELD_CACHE: HeldAcrossFork<MutexGuard<'static, Option<Cache>>> = HeldAcrossFork::new();

/// Whether this process is a child forked while the cache was held, so
/// nothing may be symbolized here.
pub(super) fn unavailable() -> bool {
    UNAVAILABLE.load(Ordering::Relaxed)
}

/// Whether the `backtrace` crate may be called. In a child, the first call
/// probes its lock (see the module docs); call with the cache held, so one
/// thread probes.
pub(super) fn backtrace_usable() -> bool {
    // A child forked before memprof registered its fork handlers never ran
    // the child handler that marks the lock unknown, yet the program's own
    // threads may have held it at the fork: what is known holds only for
    // the process that learnt it.
    let pid = std::process::id();
    let known_for = match KNOWN_FOR_PID.swap(pid, Ordering::Relaxed) {
        // The first lookup in this memory image: the initial state speaks
        // for the process the program started as.
        0 => START_PID.load(Ordering::Relaxed),
        known_for => known_for,
    };
    if known_for != 0 && known_for != pid {
        BACKTRACE_LOCK.store(UNKNOWN, Ordering::Relaxed);
    }
    match BACKTRACE_LOCK.load(Ordering::Relaxed) {
        FREE => true,
        HELD => false,
        _ => {
            let free = backtrace_lock_is_free();
            BACKTRACE_LOCK.store(if free { FREE } else { HELD }, Ordering::Relaxed);
            free
        }
    }
}

/// Whether a fresh thread gets the `backtrace` crate's lock in time.
fn backtrace_lock_is_free() -> bool {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("memprof-fork-probe".to_string())
        .spawn(move || {
            // Takes the crate's lock, walks one frame, releases the lock.
            backtrace::trace(|_| false);
            let _ = done_tx.send(());
        });
    spawned.is_ok() && done_rx.recv_timeout(PROBE_TIMEOUT).is_ok()
}

/// Prepare handler: takes the cache if it is free.
pub(crate) fn prepare_fork() {
    match CACHE.try_lock() {
        Ok(guard) => HELD_CACHE.put(guard),
        Err(TryLockError::Poisoned(poisoned)) => HELD_CACHE.put(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => {}
    }
}

/// Parent handler: releases the cache if the prepare handler took it.
pub(crate) fn after_fork_in_parent() {
    drop(HELD_CACHE.take());
}

/// Child handler: releases the cache, or, if another thread held it,
/// gives up symbolizing; and marks the `backtrace` crate's lock unknown.
pub(crate) fn after_fork_in_child() {
    if HELD_CACHE.take().is_none() {
        UNAVAILABLE.store(true, Ordering::Relaxed);
    }
    BACKTRACE_LOCK.store(UNKNOWN, Ordering::Relaxed);
}
