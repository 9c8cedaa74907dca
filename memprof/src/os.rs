//! Thin wrappers over the few system calls the allocator path needs.
//!
//! Everything the profiler keeps on the allocation path lives in memory
//! obtained straight from `mmap`, never from the global allocator: memprof
//! *is* the global allocator, so allocating through it while recording a
//! sample would recurse, and freeing through it while a table lock is held
//! could deadlock. These helpers never allocate and never panic.

use core::ptr::NonNull;

/// Maps `bytes` of zeroed, private, anonymous memory, or returns `None`.
///
/// Pages are reserved with `MAP_NORESERVE` and only become resident when
/// touched, so a table may reserve its maximum size up front and pay only for
/// what it uses.
pub(crate) fn map_zeroed(bytes: usize) -> Option<NonNull<u8>> {
    if bytes == 0 {
        return None;
    }
    // SAFETY: an anonymous private mapping with a null hint has no
    // preconditions; the result is checked against MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(ptr.cast())
    }
}

/// Returns memory obtained from [`map_zeroed`] to the system.
///
/// # Safety
///
/// `ptr` and `bytes` must describe exactly one earlier [`map_zeroed`] call,
/// and nothing may use the memory afterwards.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, bytes: usize) {
    // SAFETY: the caller guarantees the range is one mapping we own and no
    // longer use. A failure leaves the mapping in place, which only leaks.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), bytes);
    }
}

/// Nanoseconds on the monotonic clock. Served by the vDSO: no system call,
/// no allocation, no lock.
#[inline]
pub(crate) fn monotonic_nanos() -> u64 {
    clock_nanos(libc::CLOCK_MONOTONIC)
}

/// The monotonic clock as of the last timer tick (1-10 ms old): the vDSO
/// reads it without the cycle counter, about 5x cheaper than
/// [`monotonic_nanos`] (6 against 31 ns on this project's VM).
#[inline]
pub(crate) fn coarse_monotonic_nanos() -> u64 {
    clock_nanos(libc::CLOCK_MONOTONIC_COARSE)
}

#[inline]
fn clock_nanos(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Writes a message to standard error without allocating or locking.
///
/// Used for the one-time configuration warnings the allocator path may emit.
pub(crate) fn write_stderr(parts: &[&[u8]]) {
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            // SAFETY: `rest` is a valid byte slice for its whole length.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

/// Reads an environment variable as bytes without allocating or taking
/// std's environment lock.
///
/// std's `env::var` allocates and takes a lock that `set_var` holds while it
/// allocates; from inside the allocator that could deadlock. `getenv` takes no
/// lock; like jemalloc reading `MALLOC_CONF`, it is read once.
pub(crate) fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated. The returned pointer, when non-null,
    // points into the environment block, which lives for the process unless
    // a later `setenv` replaces it; we read it once, immediately.
    unsafe {
        let value = libc::getenv(name.as_ptr());
        if value.is_null() {
            None
        } else {
            Some(core::ffi::CStr::from_ptr(value).to_bytes())
        }
    }
}
