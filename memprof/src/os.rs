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

/// A byte of an environment variable's value as it may be shown: printable
/// ASCII and space as they are, anything else `?`, so a bad value echoed on
/// stderr or in `/stats` cannot carry control characters.
pub(crate) fn shown_byte(b: u8) -> u8 {
    if b.is_ascii_graphic() || b == b' ' {
        b
    } else {
        b'?'
    }
}

/// Copies the start of `value` into `buf` as [`shown_byte`]s; returns what
/// was written.
pub(crate) fn shown<'a>(value: &[u8], buf: &'a mut [u8]) -> &'a [u8] {
    let len = value.len().min(buf.len());
    for (out, &b) in buf.iter_mut().zip(value) {
        *out = shown_byte(b);
    }
    &buf[..len]
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

/// The calling thread's timer slack in nanoseconds (`PR_GET_TIMERSLACK`), or
/// `None` where it cannot be read. A new thread starts with its creator's
/// value; tracking contexts use that (see `alloc::context`).
#[cfg(target_os = "linux")]
pub(crate) fn timer_slack_nanos() -> Option<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer arguments and only returns
    // the calling thread's setting.
    let slack = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    u64::try_from(slack).ok()
}

/// Sets the calling thread's timer slack (`PR_SET_TIMERSLACK`; 0 restores
/// the thread's default); false if the system refused.
#[cfg(target_os = "linux")]
pub(crate) fn set_timer_slack_nanos(nanos: u64) -> bool {
    // Slacks memprof sets are below 2^31 ns (a mark, or a value read back
    // as a C int), so the cast keeps them on every target.
    let nanos = nanos as libc::c_ulong;
    // SAFETY: PR_SET_TIMERSLACK takes the value by value and only changes
    // the calling thread's setting.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, nanos, 0, 0, 0) == 0 }
}

/// The timer slack cannot be read on this system.
#[cfg(not(target_os = "linux"))]
pub(crate) fn timer_slack_nanos() -> Option<u64> {
    None
}

/// The timer slack cannot be set on this system.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_timer_slack_nanos(_nanos: u64) -> bool {
    false
}

/// The calling thread's id in the kernel (`gettid`).
#[cfg(target_os = "linux")]
pub(crate) fn os_thread_id() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as u32
}

/// Whether thread `tid` of this process has not exited yet (a thread id
/// may be reused once its thread is gone, so "true" may be a newer thread).
#[cfg(target_os = "linux")]
pub(crate) fn os_thread_running(tid: u32) -> bool {
    // SAFETY: signal 0 delivers nothing; tgkill only checks that the thread
    // exists in this process.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, 0) == 0 }
}

/// Kernel thread ids are not known on this system.
#[cfg(not(target_os = "linux"))]
pub(crate) fn os_thread_id() -> u32 {
    0
}

/// Threads cannot be looked up on this system: none is known to run.
#[cfg(not(target_os = "linux"))]
pub(crate) fn os_thread_running(_tid: u32) -> bool {
    false
}
