//! Counter stripes: which copy of a stack's counters a thread adds to.
//!
//! Each stack keeps [`STRIPES`] copies of its counters, and readers sum
//! them, so threads sampling the same stack at once (every allocation, in
//! exact mode) do not pass one cache line back and forth.
//!
//! Most stripes are *leased*: held by one thread at a time, which adds to
//! them with a plain load and store. An atomic add is a locked instruction
//! that waits for the core's store buffer to drain, some 20 cycles, and
//! exact mode would make four of them per allocation and free (their share
//! of its profile is in benches/peers/RESULTS.md). A thread leases a stripe
//! at its first sample and gives it back when it exits (a thread-local
//! destructor). Threads without a lease,
//! because more threads sample than there are leased stripes or because
//! they only free, add atomically to a *shared* stripe.
//!
//! Stripes are 32 bytes, two to a cache line; leases are handed out so that
//! the first three threads to sample each get a line of their own.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Copies of each stack's counters.
pub(crate) const STRIPES: usize = 8;

/// Stripes `0..SHARED` take atomic adds from threads without a lease.
const SHARED: usize = 2;

/// The order leases are handed out in: a line of its own for each of the
/// first three.
const LEASE_ORDER: [usize; STRIPES - SHARED] = [2, 4, 6, 3, 5, 7];

/// Which leased stripes are held.
static LEASED: [AtomicBool; STRIPES] = [const { AtomicBool::new(false) }; STRIPES];

/// `STRIPE` before the thread first tried to lease.
const UNTRIED: u8 = u8::MAX;
/// `STRIPE` without a lease, after trying.
const UNLEASED: u8 = u8::MAX - 1;

thread_local! {
    /// The stripe this thread holds, or `UNTRIED` / `UNLEASED`. Without a
    /// destructor, so it stays readable while thread-locals are destroyed.
    static STRIPE: Cell<u8> = const { Cell::new(UNTRIED) };
    /// Gives the lease back when the thread exits.
    static LEASE: Lease = const { Lease };
}

/// The stripe a thread adds to, and how.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stripe {
    index: usize,
    leased: bool,
}

impl Stripe {
    /// Which copy of the counters to add to.
    pub(crate) fn index(self) -> usize {
        self.index
    }

    /// Adds `n` (wrapping) to `counter`, one of this stripe's.
    #[inline]
    pub(crate) fn add(self, counter: &AtomicU64, n: u64) {
        if self.leased {
            // Only this thread writes the stripe while it holds the lease;
            // readers load it whole (relaxed), as they would an atomic add.
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The stripe this thread adds to now.
#[inline]
pub(crate) fn current() -> Stripe {
    match STRIPE.try_with(Cell::get) {
        Ok(index) if (index as usize) < STRIPES => Stripe {
            index: index as usize,
            leased: true,
        },
        _ => Stripe {
            index: crate::thread_state::thread_id() as usize % SHARED,
            leased: false,
        },
    }
}

/// Leases a stripe to this thread, if it has not tried before and one is
/// free. Call with the thread marked busy: the first lease registers the
/// thread-local destructor, which may allocate.
#[inline]
pub(crate) fn lease() {
    if STRIPE.try_with(Cell::get) == Ok(UNTRIED) {
        lease_slow();
    }
}

#[cold]
fn lease_slow() {
    let _ = STRIPE.try_with(|c| c.set(UNLEASED));
    for index in LEASE_ORDER {
        // Acquire: the previous holder's adds (before its Release) are seen
        // by this thread's loads, so none is lost.
        if LEASED[index]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // Touching `LEASE` registers its destructor; if this thread's
        // thread-locals are being destroyed already, give the stripe back.
        if LEASE.try_with(|_| ()).is_ok() {
            let _ = STRIPE.try_with(|c| c.set(index as u8));
        } else {
            LEASED[index].store(false, Ordering::Release);
        }
        return;
    }
}

/// Gives the thread's lease back on exit.
struct Lease;

impl Drop for Lease {
    fn drop(&mut self) {
        let Ok(index) = STRIPE.try_with(|c| c.replace(UNLEASED)) else {
            return;
        };
        // From here this thread adds to a shared stripe; Release hands its
        // adds to the next holder.
        if (index as usize) < STRIPES {
            LEASED[index as usize].store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The tests lease and return stripes of the one process-wide set.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// Runs `f` on a fresh thread and returns what it returns.
    fn on_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn a_thread_holds_its_lease_until_it_exits() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (index, leased) = on_thread(|| {
            assert!(!current().leased, "no lease before trying");
            lease();
            let s = current();
            (s.index, s.leased)
        });
        if leased {
            assert!(LEASE_ORDER.contains(&index));
            assert!(!LEASED[index].load(Ordering::Acquire), "returned on exit");
        } else {
            assert!(index < SHARED);
        }
    }

    #[test]
    fn adds_from_many_threads_are_all_counted() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // More threads than leased stripes, some exiting and handing their
        // stripe on, all adding to one stack's worth of counters.
        let counters = Arc::new([const { AtomicU64::new(0) }; STRIPES]);
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    lease();
                    for _ in 0..10_000 {
                        let s = current();
                        s.add(&counters[s.index()], t + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let sum: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(sum, 10_000 * (1..=16).sum::<u64>());
    }
}
