//! The one lock the allocator path uses, cache-line padding, and the slot
//! a fork handler keeps its lock guards in.
//!
//! Why not `std::sync::Mutex` or `parking_lot`? Both may allocate or park
//! through structures that allocate (parking_lot's global hash table grows;
//! dhat-rs records deadlocks from it), and memprof runs *inside* the global
//! allocator. A spin lock that yields to the scheduler under contention is
//! enough: critical sections here are a few dozen instructions, never
//! allocate, and are only entered for sampled allocations.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// Pads and aligns a value to 128 bytes so that neighbouring shards never
/// share a cache line (two lines on x86_64, where the adjacent-line
/// prefetcher pulls pairs; one line elsewhere, wasting a little).
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A test-and-test-and-set spin lock that never allocates.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`, so sharing the lock is
// as safe as sending the value between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; the lock owns its value.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Acquires the lock, spinning briefly and then yielding the CPU.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        // Acquire pairs with the Release in `SpinGuard::drop`: everything the
        // previous holder wrote is visible to us.
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        SpinGuard { lock: self }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0u32;
        loop {
            // Test before test-and-set, so waiters spin on a shared line.
            while self.locked.load(Ordering::Relaxed) {
                if spins < 64 {
                    core::hint::spin_loop();
                    spins += 1;
                } else {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe {
                        libc::sched_yield();
                    }
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Takes the lock and leaks the guard; used by the `fork` handlers, which
    /// hold every lock across `fork()` and release them on both sides.
    pub(crate) fn lock_for_fork(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken with [`SpinLock::lock_for_fork`].
    ///
    /// # Safety
    ///
    /// The caller must have taken the lock with `lock_for_fork` and must not
    /// use any reference obtained under it afterwards.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

/// Holds a [`SpinLock`] until dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: holding the guard means we hold the lock, so no one else
        // has a reference to the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference derived from this guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Release publishes our writes to the next holder's Acquire.
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// What a fork's prepare handler holds until its parent or child handler
/// (see `crate::fork`): lock guards, which are not `Sync`.
pub(crate) struct HeldAcrossFork<T>(UnsafeCell<Option<T>>);

// SAFETY: only the forking thread touches a slot, from its prepare handler
// to its parent or child handler, and libc (glibc and musl alike) holds its
// own fork-handler lock over that whole span, so two forks never use a
// slot at once. What a slot holds is released on the thread that took it
// (in the child, that thread's copy).
unsafe impl<T> Sync for HeldAcrossFork<T> {}

impl<T> HeldAcrossFork<T> {
    pub(crate) const fn new() -> Self {
        HeldAcrossFork(UnsafeCell::new(None))
    }

    /// Keeps `held` until [`HeldAcrossFork::take`]. Only from a prepare
    /// handler.
    pub(crate) fn put(&self, held: T) {
        // SAFETY: see the `Sync` impl.
        unsafe { *self.0.get() = Some(held) };
    }

    /// Empties the slot. Only from a parent or child handler.
    pub(crate) fn take(&self) -> Option<T> {
        // SAFETY: see the `Sync` impl.
        unsafe { (*self.0.get()).take() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_serialises_increments() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }
}
