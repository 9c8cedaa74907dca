//! Per-thread state of the sampler: the thread-local cells, the reentrancy
//! guard ([`BusyGuard`], and [`unsampled`] built on it) and the tracking
//! contexts ([`context`]).
//!
//! The bottom of the hot path: it imports nothing of memprof's but `os`, so
//! `sample`, `stack`, `scope`, `stripe` and everything above may use it,
//! and the allocator wrapper (`alloc`) needs nothing from above it to reach
//! a thread's state (see ARCHITECTURE.md for the layers).
//!
//! Every cell is a const-initialised `thread_local!` of a type without a
//! destructor. Such a thread-local compiles to a plain TLS slot: no lazy
//! initialisation, no destructor registration (which could allocate), and it
//! stays readable while other thread-locals are being destroyed at thread
//! exit. Accesses still go through `try_with`, which cannot fail for these
//! but costs nothing, so a surprise becomes "do not sample", never a panic.

pub(crate) mod context;

use core::cell::Cell;

thread_local! {
    /// Bytes left until this thread's next sample point. Crossing below zero
    /// sends the allocation to the slow path.
    static COUNTDOWN: Cell<i64> = const { Cell::new(0) };
    /// The rate generation the countdown was drawn for; `u64::MAX` until the
    /// thread's first slow path seeds it.
    static GENERATION: Cell<u64> = const { Cell::new(u64::MAX) };
    /// State of this thread's exponential generator.
    static RNG: Cell<u64> = const { Cell::new(0) };
    /// Set while memprof itself runs on this thread: allocations made then
    /// go straight to the inner allocator, unsampled.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// memprof's id for this thread (0 until first needed).
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
    /// A rate for this thread only (used by `#[memprof::test]`); `NO_OVERRIDE` if none.
    static RATE_OVERRIDE: Cell<u64> = const { Cell::new(NO_OVERRIDE) };
    /// Innermost active scope (0: none).
    static SCOPE: Cell<u32> = const { Cell::new(0) };
    /// The tracking context this thread belongs to (see
    /// [`context`]): [`UNDECIDED_CONTEXT`] until its first slow
    /// path settles it, then [`NO_CONTEXT`] or a context id.
    static CONTEXT: Cell<u32> = const { Cell::new(UNDECIDED_CONTEXT) };
    /// `(coarse tick, fine time)` of this thread's last fine clock read, for
    /// [`sample_time`]; `NO_TICK` forces the next read.
    static SAMPLE_TIME: Cell<(u64, u64)> = const { Cell::new((NO_TICK, 0)) };
}

const NO_TICK: u64 = u64::MAX;

/// When a sample is taken, for its `allocated_at_nanos`: the monotonic
/// clock, read afresh once per timer tick per thread and reused within the
/// tick. The fine read costs about 30 ns, which in exact mode is several
/// percent of a sample; a reused value is at most one tick (1-10 ms) early,
/// far below what leak ages need, and never earlier than a fine read this
/// thread made before [`restart_sample_time`].
pub(crate) fn sample_time() -> u64 {
    let tick = crate::os::coarse_monotonic_nanos();
    SAMPLE_TIME
        .try_with(|cell| match cell.get() {
            (seen, fine) if seen == tick => fine,
            _ => {
                let fine = crate::os::monotonic_nanos();
                cell.set((tick, fine));
                fine
            }
        })
        .unwrap_or_else(|_| crate::os::monotonic_nanos())
}

/// Makes this thread's next [`sample_time`] read the clock afresh, so every
/// sample after a `monotonic_nanos()` reading taken before this call is
/// stamped at or after that reading (what "allocated since" tests rely on).
pub(crate) fn restart_sample_time() {
    let _ = SAMPLE_TIME.try_with(|cell| cell.set((NO_TICK, 0)));
}

const NO_OVERRIDE: u64 = u64::MAX;

/// [`context`] of a thread in no tracking context.
pub(crate) const NO_CONTEXT: u32 = 0;
/// [`context`] of a thread whose membership is not settled yet.
pub(crate) const UNDECIDED_CONTEXT: u32 = u32::MAX;

/// Subtracts `size` from the countdown; true when it crosses zero.
///
/// This is the whole fast path: a TLS load, a subtract, a store, a branch.
#[inline(always)]
pub(crate) fn countdown_crossed(size: usize) -> bool {
    COUNTDOWN
        .try_with(|c| {
            let left = c.get().wrapping_sub(size as i64);
            c.set(left);
            left < 0
        })
        .unwrap_or(false)
}

pub(crate) fn set_countdown(bytes: i64) {
    let _ = COUNTDOWN.try_with(|c| c.set(bytes));
}

pub(crate) fn generation() -> u64 {
    GENERATION.try_with(Cell::get).unwrap_or(u64::MAX)
}

pub(crate) fn set_generation(generation: u64) {
    let _ = GENERATION.try_with(|c| c.set(generation));
}

/// Runs `f` on this thread's random generator state, seeding it on first
/// use (`sample::per_thread` draws the sample distances from it).
pub(crate) fn with_rng_state<R>(f: impl FnOnce(&mut u64) -> R) -> Option<R> {
    RNG.try_with(|cell| {
        let mut state = cell.get();
        if state == 0 {
            // Seed from this thread's TLS address and the clock: distinct per
            // thread, no system randomness needed.
            state =
                (cell as *const Cell<u64> as u64) ^ crate::os::monotonic_nanos().rotate_left(32);
        }
        let r = f(&mut state);
        cell.set(state);
        r
    })
    .ok()
}

/// Marks this thread as inside memprof until the guard drops.
///
/// Like dhat's `IgnoreAllocs`, the guard only clears the flag if it set it,
/// so nested guards and unwinding leave the flag right.
pub(crate) struct BusyGuard {
    entered: bool,
    /// The countdown to restore on exit, for guards that park it.
    saved_countdown: Option<i64>,
}

impl BusyGuard {
    /// Enters, or returns `None` if this thread is already inside memprof
    /// (or its thread-locals are gone).
    #[inline]
    pub(crate) fn enter() -> Option<BusyGuard> {
        match BUSY.try_with(|b| b.replace(true)) {
            Ok(false) => Some(BusyGuard {
                entered: true,
                saved_countdown: None,
            }),
            _ => None,
        }
    }

    /// Enters if not already inside (the guard is inert if it was), and
    /// parks the countdown so that the work inside never reaches the slow
    /// path; the thread's sampling resumes where it left off on exit.
    pub(crate) fn enter_nested() -> BusyGuard {
        match BUSY.try_with(|b| b.replace(true)) {
            Ok(false) => {
                let saved = COUNTDOWN.try_with(|c| c.replace(i64::MAX)).ok();
                BusyGuard {
                    entered: true,
                    saved_countdown: saved,
                }
            }
            _ => BusyGuard {
                entered: false,
                saved_countdown: None,
            },
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.entered {
            if let Some(countdown) = self.saved_countdown {
                set_countdown(countdown);
            }
            let _ = BUSY.try_with(|b| b.set(false));
        }
    }
}

/// memprof's id for the current thread, assigned on first use.
pub(crate) fn thread_id() -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    THREAD_ID
        .try_with(|id| {
            if id.get() == 0 {
                id.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            id.get()
        })
        .unwrap_or(0)
}

/// This thread's own rate, if it has one (see [`set_thread_rate`]).
pub(crate) fn rate_override() -> Option<u64> {
    match RATE_OVERRIDE.try_with(Cell::get).unwrap_or(NO_OVERRIDE) {
        NO_OVERRIDE => None,
        rate => Some(rate),
    }
}

/// Sets (or with `None` clears) a sampling rate for the calling thread only,
/// effective from its next allocation; returns the previous override.
///
/// `Some(1)` records every allocation this thread makes, exactly, while the
/// rest of the process keeps sampling; `#[memprof::test]` uses it.
pub fn set_thread_rate(rate: Option<u64>) -> Option<u64> {
    let previous = RATE_OVERRIDE
        .try_with(|c| c.replace(rate.unwrap_or(NO_OVERRIDE)))
        .unwrap_or(NO_OVERRIDE);
    force_redraw();
    (previous != NO_OVERRIDE).then_some(previous)
}

/// Makes this thread's next allocation take the slow path and place its
/// next sample point afresh, at the rate it has then.
pub(crate) fn force_redraw() {
    set_generation(u64::MAX);
    set_countdown(0);
}

/// This thread's tracking context, [`NO_CONTEXT`] or [`UNDECIDED_CONTEXT`].
pub(crate) fn context() -> u32 {
    CONTEXT.try_with(Cell::get).unwrap_or(NO_CONTEXT)
}

/// Sets this thread's tracking context; returns the previous one. The
/// caller forces a redraw if the thread's rate changes with it.
pub(crate) fn set_context(context: u32) -> u32 {
    CONTEXT
        .try_with(|c| c.replace(context))
        .unwrap_or(NO_CONTEXT)
}

pub(crate) fn scope() -> u32 {
    SCOPE.try_with(Cell::get).unwrap_or(0)
}

pub(crate) fn set_scope(scope: u32) -> u32 {
    SCOPE.try_with(|c| c.replace(scope)).unwrap_or(0)
}

/// Runs `f` with sampling suspended on this thread: what it allocates is not
/// recorded. Frees are still tracked. memprof uses it for its own work
/// (snapshots, symbolization) so the profile shows the program, not the
/// profiler.
pub fn unsampled<R>(f: impl FnOnce() -> R) -> R {
    let _busy = BusyGuard::enter_nested();
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_time_after_a_restart_is_not_before_the_reading() {
        for _ in 0..2_000 {
            let _ = sample_time(); // caches this tick's fine reading
            let since = crate::os::monotonic_nanos();
            restart_sample_time();
            let stamped = sample_time();
            assert!(stamped >= since, "{stamped} < {since}");
        }
    }

    #[test]
    fn sample_time_stays_within_a_tick_of_the_clock() {
        let mut last = 0;
        for _ in 0..100_000 {
            let stamped = sample_time();
            let now = crate::os::monotonic_nanos();
            assert!(stamped >= last, "never goes back");
            assert!(
                now >= stamped && now - stamped < 50_000_000,
                "{now} vs {stamped}"
            );
            last = stamped;
        }
    }
}
