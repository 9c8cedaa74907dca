//! Capturing return addresses on the allocation path.
//!
//! Two ways, chosen once per process:
//!
//! * **Frame pointers** (about 30 ns for 30 frames): follow the `rbp`/`x29`
//!   chain, reading only inside this thread's stack. Complete when the whole
//!   program is built with `-C force-frame-pointers=yes` (Rust's shipped std
//!   already is).
//! * **The unwinder** (`backtrace::trace_unsynchronized`, DWARF CFI through
//!   libgcc; microseconds per stack): correct for any build.
//!
//! `MEMPROF_UNWIND=fp` or `=dwarf` forces a choice. Otherwise memprof starts
//! with the unwinder and, for the first [`VERIFY_SAMPLES`] samples, also walks
//! the frame-pointer chain; if every walk agrees with the unwinder it switches
//! to frame pointers, and the first disagreement settles on the unwinder for
//! good. A library without frame pointers reached only later can still cut
//! stacks short; force `dwarf` if in doubt.
//!
//! Neither way allocates in steady state. The unwinder may allocate the first
//! time it sees a module, which is safe: capture runs with the thread marked
//! busy, so those allocations pass straight to the inner allocator.

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use super::table::MAX_FRAMES;

/// How many samples are checked before trusting frame pointers.
pub const VERIFY_SAMPLES: u32 = 64;

const UNDECIDED: u8 = 0;
const FRAME_POINTERS: u8 = 1;
const UNWINDER: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);
static VERIFIED: AtomicU32 = AtomicU32::new(0);
static FORCED: AtomicU8 = AtomicU8::new(u8::MAX);

thread_local! {
    /// Upper end of this thread's stack (0 until looked up).
    static STACK_TOP: Cell<usize> = const { Cell::new(0) };
}

/// Which stack walker is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unwinder {
    /// Still comparing frame pointers with the unwinder.
    Verifying,
    /// Walking frame pointers.
    FramePointers,
    /// DWARF unwinding through `backtrace`.
    Dwarf,
}

/// The walker in use now.
pub fn unwinder() -> Unwinder {
    match MODE.load(Ordering::Relaxed) {
        FRAME_POINTERS => Unwinder::FramePointers,
        UNWINDER => Unwinder::Dwarf,
        _ => Unwinder::Verifying,
    }
}

fn forced_mode() -> u8 {
    let forced = FORCED.load(Ordering::Relaxed);
    if forced != u8::MAX {
        return forced;
    }
    let mode = match crate::os::getenv(c"MEMPROF_UNWIND") {
        Some(b"fp") | Some(b"frame-pointers") => FRAME_POINTERS,
        Some(b"dwarf") | Some(b"unwinder") => UNWINDER,
        _ => UNDECIDED,
    };
    FORCED.store(mode, Ordering::Relaxed);
    if mode != UNDECIDED {
        MODE.store(mode, Ordering::Relaxed);
    }
    mode
}

/// Fills `buf` with return addresses, leaf first; returns how many.
///
/// Must be called with the thread marked busy (see [`crate::alloc`]).
#[inline(never)]
pub(crate) fn capture(buf: &mut [usize; MAX_FRAMES]) -> usize {
    let _ = forced_mode();
    match MODE.load(Ordering::Relaxed) {
        FRAME_POINTERS => walk_frame_pointers(buf),
        UNWINDER => unwind(buf),
        _ => capture_and_verify(buf),
    }
}

#[cold]
fn capture_and_verify(buf: &mut [usize; MAX_FRAMES]) -> usize {
    let n = unwind(buf);
    let mut walked = [0usize; MAX_FRAMES];
    let m = walk_frame_pointers(&mut walked);
    if frame_pointers_agree(&buf[..n], &walked[..m]) {
        if VERIFIED.fetch_add(1, Ordering::Relaxed) + 1 >= VERIFY_SAMPLES {
            let _ = MODE.compare_exchange(
                UNDECIDED,
                FRAME_POINTERS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    } else {
        MODE.store(UNWINDER, Ordering::Relaxed);
    }
    n
}

/// Whether a frame-pointer walk found the same frames as the unwinder.
///
/// The walk starts one or two frames higher (memprof's own frames may have
/// no frame record of their own) and may stop before the thread-start frames
/// of libc, which lack frame pointers; in between, both must be identical.
fn frame_pointers_agree(unwound: &[usize], walked: &[usize]) -> bool {
    if walked.len() < 3 {
        return false;
    }
    let Some(start) = unwound.iter().position(|&a| a == walked[0]) else {
        return false;
    };
    let unwound = &unwound[start..];
    if unwound.len() < walked.len() || unwound[..walked.len()] != *walked {
        return false;
    }
    // Allow the few libc frames below `main` or the thread's start routine.
    unwound.len() - walked.len() <= 3 || walked.len() == MAX_FRAMES
}

fn unwind(buf: &mut [usize; MAX_FRAMES]) -> usize {
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` requires that no other thread unwinds
    // through backtrace's global state at the same time *with the
    // synchronized API's lock held by us*; we hold no lock, and libgcc's
    // unwinder is itself thread-safe, which is what the function relies on.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if ip != 0 {
                buf[n] = ip;
                n += 1;
            }
            n < MAX_FRAMES
        });
    }
    n
}

/// The top of the current thread's stack, looked up once per thread.
fn stack_top() -> usize {
    STACK_TOP
        .try_with(|top| {
            if top.get() == 0 {
                top.set(lookup_stack_top());
            }
            top.get()
        })
        .unwrap_or(0)
}

fn lookup_stack_top() -> usize {
    // SAFETY: `attr` is initialised by pthread_getattr_np before use and
    // destroyed after; all pointers passed are valid locals. glibc may
    // allocate here (it reads /proc/self/maps for the main thread), which is
    // fine: the thread is marked busy.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 0;
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            addr as usize + size
        } else {
            0
        }
    }
}

#[inline(always)]
fn current_frame_pointer() -> usize {
    let fp: usize;
    // SAFETY: reading the frame-pointer register has no side effects.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        fp = 0;
    }
    fp
}

/// Walks the frame-record chain `[fp] = caller's fp, [fp + 8] = return address`.
///
/// Every read is checked to lie in `[current stack position, stack top)` and
/// each record must be above the previous one, so a register that does not
/// hold a frame pointer ends the walk instead of faulting.
#[inline(never)]
fn walk_frame_pointers(buf: &mut [usize; MAX_FRAMES]) -> usize {
    let top = stack_top();
    let here = &top as *const usize as usize;
    let mut fp = current_frame_pointer();
    let mut n = 0;
    while n < MAX_FRAMES {
        if fp < here
            || !fp.is_multiple_of(core::mem::align_of::<usize>())
            || fp.saturating_add(16) > top
        {
            break;
        }
        // SAFETY: `fp .. fp + 16` lies within this thread's mapped stack
        // (between our own locals and the stack's top), aligned.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret == 0 {
            break;
        }
        buf[n] = ret;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// The unwinder, for other modules' tests.
#[cfg(test)]
pub(crate) fn tests_support_unwind(buf: &mut [usize; MAX_FRAMES]) -> usize {
    unwind(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_allows_offset_start_and_lost_libc_frames() {
        let unwound = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert!(frame_pointers_agree(&unwound, &[3, 4, 5, 6, 7, 8, 9]));
        assert!(
            !frame_pointers_agree(&unwound, &[3, 5, 6, 7]),
            "a skipped frame"
        );
        assert!(
            !frame_pointers_agree(&unwound, &[3, 4, 5]),
            "too many frames lost"
        );
        assert!(!frame_pointers_agree(&unwound, &[9, 10, 11]));
    }

    #[test]
    fn unwinder_finds_this_function() {
        let mut buf = [0usize; MAX_FRAMES];
        let n = unwind(&mut buf);
        assert!(n > 3);
    }
}
