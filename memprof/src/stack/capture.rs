//! Capturing return addresses on the allocation path.
//!
//! Three ways, chosen once per process:
//!
//! * **Frame pointers** (about 30 ns for 30 frames): follow the `rbp`/`x29`
//!   chain, reading only inside this thread's stack. Complete when the whole
//!   program is built with `-C force-frame-pointers=yes` (Rust's shipped std
//!   already is).
//! * **framehop** (about 200 ns for 30 frames once warm; x86_64 Linux): DWARF
//!   CFI from the loaded `.eh_frame`, turned into rules cached per thread
//!   (see `framehop_unwind`). Correct for any build with unwind tables.
//! * **backtrace** (`backtrace::trace_unsynchronized`, DWARF CFI through
//!   libgcc; microseconds per stack): correct for any build, any platform.
//!
//! `MEMPROF_UNWIND=fp` (or `frame_pointers`), `=framehop` or `=dwarf`
//! (backtrace) forces a choice, as does [`crate::Config::unwinder`].
//! Otherwise (or with `auto`) memprof starts with backtrace and, for the first
//! [`VERIFY_SAMPLES`] samples, also walks the frame-pointer chain and runs
//! framehop, comparing each with backtrace's frames. Frame pointers win if
//! they agreed every time; else framehop if it did; the first disagreement
//! rules a walker out for good, and if both are out backtrace stays. A
//! library reached only later (without frame pointers, or whose unwind
//! tables framehop cannot read) can still cut stacks short; force `dwarf` if
//! in doubt.
//!
//! No way allocates in steady state. backtrace may allocate the first time
//! it sees a module, and framehop when it lists modules or sets up a
//! thread's cache, which is safe: capture runs with the thread marked busy,
//! so those allocations pass straight to the inner allocator.

use core::cell::Cell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

pub(crate) use super::table::STACK_LEN_MAX;
use super::table::{DEFAULT_MAX_FRAMES, MAX_FRAMES};
pub(crate) use crate::config::Unwinder;

mod framehop_unwind;

/// Marks a forked child, where the unwinder never takes the loader's lock
/// (see `crate::fork`).
pub(crate) use framehop_unwind::after_fork_in_child;
pub use framehop_unwind::FramehopCounters;

/// Room for return addresses, which a walker fills from the start, up to
/// its length.
pub(crate) type Frames = [MaybeUninit<usize>];

/// Room for one sample's stack: the deepest walk [`MAX_FRAMES`] allows, one
/// more frame to tell a cut stack from a complete one, and a scope marker
/// (2 KiB on the sampling thread's stack, on the slow path only). Not
/// zeroed first: a sample's stack is written once and read once, and
/// zeroing the whole buffer cost about 50 instructions a sample.
pub(crate) type FrameBuf = [MaybeUninit<usize>; STACK_LEN_MAX];

/// An empty [`FrameBuf`].
#[inline(always)]
pub(crate) fn frame_buf() -> FrameBuf {
    [MaybeUninit::uninit(); STACK_LEN_MAX]
}

/// The first `n` addresses of `buf`, which a walker has written.
#[inline(always)]
pub(crate) fn written(buf: &Frames, n: usize) -> &[usize] {
    let n = n.min(buf.len());
    // SAFETY: walkers write `buf` from the start and return how many they
    // wrote, and callers that append write the next one before counting
    // it, so the first `n` are initialised; `MaybeUninit<usize>` has the
    // layout of `usize`.
    unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<usize>(), n) }
}

/// `buf` as [`Frames`], for walkers given a plain array.
#[inline(always)]
fn as_frames(buf: &mut [usize]) -> &mut Frames {
    // SAFETY: same layout and length; walkers only ever write initialised
    // addresses, so `buf` stays initialised.
    unsafe { &mut *(buf as *mut [usize] as *mut Frames) }
}

/// The most frames a walk keeps, from `MEMPROF_MAX_FRAMES` or code; 0 until
/// read.
static FRAME_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// The most frames a sample's walk keeps: `MEMPROF_MAX_FRAMES` (1 to
/// [`MAX_FRAMES`]) if set and valid, else [`DEFAULT_MAX_FRAMES`], unless
/// code has set it. Read from the environment once, at the first sample.
#[inline(always)]
pub(crate) fn frame_limit() -> usize {
    match FRAME_LIMIT.load(Ordering::Relaxed) {
        0 => frame_limit_from_env(),
        limit => limit,
    }
}

#[cold]
fn frame_limit_from_env() -> usize {
    let limit = crate::config::env::max_frames().unwrap_or(DEFAULT_MAX_FRAMES);
    // Only the first reader sets it; a racing one reads its result.
    match FRAME_LIMIT.compare_exchange(0, limit, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => limit,
        Err(current) => current,
    }
}

/// Sets the depth limit (1 to [`MAX_FRAMES`]; others are clamped) from the
/// next sample on, over the environment's.
pub(crate) fn set_frame_limit(frames: usize) {
    let _ = frame_limit();
    FRAME_LIMIT.store(frames.clamp(1, MAX_FRAMES), Ordering::Relaxed);
}

/// How many samples are checked before trusting frame pointers or framehop.
pub(crate) const VERIFY_SAMPLES: u32 = 64;

/// The walker in use: an [`Unwinder`]'s discriminant
/// ([`Unwinder::Verifying`] until the automatic choice is made).
static MODE: AtomicU8 = AtomicU8::new(Unwinder::Verifying as u8);
/// The walker forced by `MEMPROF_UNWIND` or code, as [`MODE`]
/// ([`Unwinder::Verifying`] for the automatic choice); [`NOT_READ`] until
/// `MEMPROF_UNWIND` is read.
static FORCED: AtomicU8 = AtomicU8::new(NOT_READ);
const NOT_READ: u8 = u8::MAX;

/// Agreements so far of a walker under verification, or [`RULED_OUT`].
static FP_AGREED: AtomicU32 = AtomicU32::new(0);
/// As [`FP_AGREED`], for framehop.
static FRAMEHOP_AGREED: AtomicU32 = AtomicU32::new(0);
const RULED_OUT: u32 = u32::MAX;

thread_local! {
    /// Upper end of this thread's stack (0 until looked up).
    static STACK_TOP: Cell<usize> = const { Cell::new(0) };
    /// Lower end of this thread's stack (valid once `STACK_TOP` is set).
    static STACK_LOW: Cell<usize> = const { Cell::new(0) };
}

/// The walker in use now.
pub fn unwinder() -> Unwinder {
    Unwinder::from_u8(MODE.load(Ordering::Relaxed))
}

/// The walker forced by `MEMPROF_UNWIND` or code; `None` for the automatic
/// choice. Reads `MEMPROF_UNWIND` if no sample has yet.
pub(crate) fn forced_unwinder() -> Option<Unwinder> {
    match forced_mode() {
        Unwinder::Verifying => None,
        walker => Some(walker),
    }
}

/// The walker that stands for `walker` here: framehop where it is not
/// supported is backtrace.
fn supported(walker: Unwinder) -> Unwinder {
    match walker {
        Unwinder::Framehop if !framehop_unwind::supported() => Unwinder::Dwarf,
        walker => walker,
    }
}

/// The forced walker, reading `MEMPROF_UNWIND` the first time (without
/// allocating: the first sample is where it is read).
fn forced_mode() -> Unwinder {
    let forced = FORCED.load(Ordering::Relaxed);
    if forced != NOT_READ {
        return Unwinder::from_u8(forced);
    }
    let walker = supported(crate::config::env::unwinder().unwrap_or(Unwinder::Verifying));
    // Code that forced a walker meanwhile wins.
    match FORCED.compare_exchange(NOT_READ, walker as u8, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => {
            if walker != Unwinder::Verifying {
                MODE.store(walker as u8, Ordering::Relaxed);
            }
            walker
        }
        Err(current) => Unwinder::from_u8(current),
    }
}

/// Forces `walker` over `MEMPROF_UNWIND`, or with [`Unwinder::Verifying`]
/// returns to the automatic choice (which settles again from the
/// verdicts so far at the next sample).
pub(crate) fn force_unwinder(walker: Unwinder) {
    let _ = forced_mode();
    let walker = supported(walker);
    FORCED.store(walker as u8, Ordering::Relaxed);
    MODE.store(walker as u8, Ordering::Relaxed);
}

/// Fills `buf` with return addresses, leaf first, up to [`frame_limit`];
/// returns how many. A stack deeper than the limit ends in
/// [`super::TRUNCATED_MARKER`] after the first `limit` frames.
///
/// Must be called with the thread marked busy (see [`crate::thread_state::BusyGuard`]).
#[inline(never)]
pub(crate) fn capture(buf: &mut FrameBuf) -> usize {
    let limit = frame_limit();
    // One frame past the limit tells a cut stack from one exactly as deep.
    let n = walk(&mut buf[..limit + 1]);
    if n > limit {
        buf[limit].write(super::TRUNCATED_MARKER);
    }
    n
}

/// Fills `buf` with return addresses, leaf first, with the process's
/// walker; returns how many.
#[inline(always)]
fn walk(buf: &mut Frames) -> usize {
    let _ = forced_mode();
    match unwinder() {
        Unwinder::FramePointers => walk_frame_pointers(buf),
        Unwinder::Framehop => framehop_or_backtrace(buf),
        Unwinder::Dwarf => unwind(buf),
        Unwinder::Verifying => capture_and_verify(buf),
    }
}

/// Captures the current stack with the given walker, whatever the process
/// uses for samples, with sampling suspended on this thread meanwhile.
/// Fills `buf` leaf first and returns how many frames it wrote.
///
/// For benchmarks and diagnostics. [`Unwinder::Verifying`] means the
/// process-wide choice (verifying as samples do); [`Unwinder::Framehop`]
/// falls back to backtrace where framehop is unavailable.
#[inline(never)]
pub fn capture_with(walker: Unwinder, buf: &mut [usize; MAX_FRAMES]) -> usize {
    let buf = as_frames(buf);
    crate::thread_state::unsampled(|| match walker {
        Unwinder::FramePointers => walk_frame_pointers(buf),
        Unwinder::Framehop => framehop_or_backtrace(buf),
        Unwinder::Dwarf => unwind(buf),
        Unwinder::Verifying => walk(buf),
    })
}

/// The framehop unwinder's bookkeeping counters (module lists, per-thread
/// states, cache misses).
pub fn framehop_counters() -> FramehopCounters {
    framehop_unwind::counters()
}

/// framehop where this thread can use it now, else backtrace.
#[inline(always)]
fn framehop_or_backtrace(buf: &mut Frames) -> usize {
    let (low, top) = stack_bounds();
    if top != 0 {
        if let Some(n) = framehop_unwind::unwind(buf, low, top) {
            return n;
        }
    }
    unwind(buf)
}

#[cold]
fn capture_and_verify(buf: &mut Frames) -> usize {
    let n = unwind(buf);
    let unwound = written(buf, n);
    let room = buf.len();
    let mut walked = frame_buf();
    let walked = &mut walked[..room.min(STACK_LEN_MAX)];
    if FP_AGREED.load(Ordering::Relaxed) != RULED_OUT {
        let m = walk_frame_pointers(walked);
        tally(
            &FP_AGREED,
            frame_pointers_agree(unwound, written(walked, m), room),
        );
    }
    if framehop_unwind::supported() && FRAMEHOP_AGREED.load(Ordering::Relaxed) != RULED_OUT {
        let (low, top) = stack_bounds();
        let m = if top != 0 {
            framehop_unwind::unwind(walked, low, top)
        } else {
            None
        };
        // Not being able to run (no state for this thread yet) is no verdict.
        if let Some(m) = m {
            tally(
                &FRAMEHOP_AGREED,
                unwinders_agree(unwound, written(walked, m), room),
            );
        }
    } else {
        FRAMEHOP_AGREED.store(RULED_OUT, Ordering::Relaxed);
    }
    decide();
    n
}

/// Counts one comparison: an agreement, or the walker's exclusion.
fn tally(agreed: &AtomicU32, agrees: bool) {
    if agrees {
        let _ = agreed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
            (a != RULED_OUT).then(|| a.saturating_add(1).min(RULED_OUT - 1))
        });
    } else {
        agreed.store(RULED_OUT, Ordering::Relaxed);
    }
}

/// Settles the mode once the verdicts allow it: frame pointers if verified,
/// else framehop if verified and frame pointers are out, else backtrace
/// once both are out.
fn decide() {
    let fp = FP_AGREED.load(Ordering::Relaxed);
    let fh = FRAMEHOP_AGREED.load(Ordering::Relaxed);
    let walker = if fp != RULED_OUT && fp >= VERIFY_SAMPLES {
        Unwinder::FramePointers
    } else if fp != RULED_OUT {
        return;
    } else if fh == RULED_OUT {
        Unwinder::Dwarf
    } else if fh >= VERIFY_SAMPLES {
        Unwinder::Framehop
    } else {
        return;
    };
    let _ = MODE.compare_exchange(
        Unwinder::Verifying as u8,
        walker as u8,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

/// Whether a frame-pointer walk found the same frames as the unwinder.
///
/// The leaf ends differ: each walker's first frame is the return address
/// into the verifying function from its own call site, and where memprof's
/// own frames have no frame record the walk starts a frame or two higher.
/// So the comparison starts at the first of the walk's two leaf-most
/// frames that the unwinder also has. The walk may stop before the
/// thread-start frames of libc, which lack frame pointers; in between, both
/// must be identical. Each walk had room for `room` frames.
fn frame_pointers_agree(unwound: &[usize], walked: &[usize], room: usize) -> bool {
    let truncated = walked.len() == room;
    let Some((unwound, walked)) = from_common_frame(unwound, walked) else {
        return false;
    };
    if walked.len() < 3 {
        return false;
    }
    if unwound.len() < walked.len() || unwound[..walked.len()] != *walked {
        return false;
    }
    // Allow the few libc frames below `main` or the thread's start routine.
    unwound.len() - walked.len() <= 3 || truncated
}

/// Both stacks from the first of `other`'s two leaf-most frames that
/// `unwound` also has: the walkers' leaf ends differ (their own frames, and
/// each was called from its own place in the verifying function).
fn from_common_frame<'a>(
    unwound: &'a [usize],
    other: &'a [usize],
) -> Option<(&'a [usize], &'a [usize])> {
    let (skip, start) = other
        .iter()
        .take(2)
        .enumerate()
        .find_map(|(i, a)| Some((i, unwound.iter().position(|b| b == a)?)))?;
    Some((&unwound[start..], &other[skip..]))
}

/// Whether another DWARF unwinder found the same frames as backtrace.
///
/// The leaf ends differ (backtrace's own frames, and each was called from a
/// different place in the verifying function), so the comparison starts at
/// the first of `other`'s two leaf-most frames that backtrace also has. From
/// there on both must be identical down to the root, unless one was cut
/// short by its `room` for frames, where the other must extend it.
fn unwinders_agree(unwound: &[usize], other: &[usize], room: usize) -> bool {
    let Some((a, b)) = from_common_frame(unwound, other) else {
        return false;
    };
    if a.len() < 3 || b.len() < 3 {
        return false;
    }
    match a.len().cmp(&b.len()) {
        core::cmp::Ordering::Equal => a == b,
        core::cmp::Ordering::Less => unwound.len() == room && b[..a.len()] == *a,
        core::cmp::Ordering::Greater => other.len() == room && a[..b.len()] == *b,
    }
}

fn unwind(buf: &mut Frames) -> usize {
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` requires that no other thread unwinds
    // through backtrace's global state at the same time *with the
    // synchronized API's lock held by us*; we hold no lock, and libgcc's
    // unwinder is itself thread-safe, which is what the function relies on.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if ip != 0 {
                buf[n].write(ip);
                n += 1;
            }
            n < buf.len()
        });
    }
    n
}

/// The top of the current thread's stack, looked up once per thread.
fn stack_top() -> usize {
    stack_bounds().1
}

/// `(low, top)` of the current thread's stack, looked up once per thread;
/// `top` is 0 if unknown.
fn stack_bounds() -> (usize, usize) {
    STACK_TOP
        .try_with(|top| {
            if top.get() == 0 {
                let (low, high) = lookup_stack_bounds();
                let _ = STACK_LOW.try_with(|l| l.set(low));
                top.set(high);
            }
            (STACK_LOW.try_with(Cell::get).unwrap_or(0), top.get())
        })
        .unwrap_or((0, 0))
}

fn lookup_stack_bounds() -> (usize, usize) {
    // SAFETY: `attr` is initialised by pthread_getattr_np before use and
    // destroyed after; all pointers passed are valid locals. glibc may
    // allocate here (it reads /proc/self/maps for the main thread), which is
    // fine: the thread is marked busy.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return (0, 0);
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            (addr as usize, addr as usize + size)
        } else {
            (0, 0)
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
fn walk_frame_pointers(buf: &mut Frames) -> usize {
    let top = stack_top();
    let here = &top as *const usize as usize;
    let mut fp = current_frame_pointer();
    let mut n = 0;
    while n < buf.len() {
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
        buf[n].write(ret);
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
    unwind(as_frames(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_allows_offset_start_and_lost_libc_frames() {
        let unwound = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert!(frame_pointers_agree(
            &unwound,
            &[3, 4, 5, 6, 7, 8, 9],
            MAX_FRAMES
        ));
        assert!(
            !frame_pointers_agree(&unwound, &[3, 5, 6, 7], MAX_FRAMES),
            "a skipped frame"
        );
        assert!(
            !frame_pointers_agree(&unwound, &[3, 4, 5], MAX_FRAMES),
            "too many frames lost"
        );
        assert!(!frame_pointers_agree(&unwound, &[9, 10, 11], MAX_FRAMES));
    }

    #[test]
    fn agreement_skips_the_walks_own_call_site() {
        // With frame pointers in every frame, both walks start at the
        // verifying function, each at its own call site (0xa vs 1).
        let unwound = [1, 2, 3, 4, 5, 6, 7, 8];
        assert!(frame_pointers_agree(
            &unwound,
            &[0xa, 2, 3, 4, 5, 6, 7],
            MAX_FRAMES
        ));
        assert!(
            !frame_pointers_agree(&unwound, &[0xa, 0xb, 3, 4, 5, 6, 7], MAX_FRAMES),
            "only one leaf frame may differ"
        );
        assert!(
            !frame_pointers_agree(&unwound, &[0xa, 2, 3, 0xc, 5, 6, 7], MAX_FRAMES),
            "a frame differing past the leaf"
        );
    }

    #[test]
    fn unwinder_agreement_skips_leaf_ends_and_allows_truncation() {
        let unwound = [90, 91, 1, 2, 3, 4, 5];
        assert!(unwinders_agree(&unwound, &[80, 2, 3, 4, 5], MAX_FRAMES));
        assert!(unwinders_agree(&unwound, &[1, 2, 3, 4, 5], MAX_FRAMES));
        assert!(
            !unwinders_agree(&unwound, &[80, 2, 3, 4], MAX_FRAMES),
            "lost a root frame"
        );
        assert!(!unwinders_agree(&unwound, &[80, 2, 3, 9, 5], MAX_FRAMES));
        assert!(!unwinders_agree(
            &unwound,
            &[80, 81, 2, 3, 4, 5],
            MAX_FRAMES
        ));
        let mut long = [0usize; MAX_FRAMES];
        for (i, a) in long.iter_mut().enumerate() {
            *a = 100 + i;
        }
        assert!(unwinders_agree(&long, &long[1..], MAX_FRAMES));
        let mut deeper = [0usize; MAX_FRAMES];
        deeper[..MAX_FRAMES - 2].copy_from_slice(&long[2..]);
        deeper[MAX_FRAMES - 2..].copy_from_slice(&[500, 501]);
        assert!(
            unwinders_agree(&long, &deeper, MAX_FRAMES),
            "backtrace cut short"
        );
        assert!(
            !unwinders_agree(&long[..40], &long[1..], MAX_FRAMES),
            "a shorter root"
        );
    }

    /// Recurses `depth` times through a non-inlined, non-tail-calling frame,
    /// then runs `f`.
    #[inline(never)]
    fn recurse(depth: usize, f: &mut dyn FnMut()) {
        if depth == 0 {
            f();
        } else {
            recurse(depth - 1, f);
        }
        core::hint::black_box(depth);
    }

    #[test]
    fn framehop_finds_the_same_frames_as_backtrace() {
        if !framehop_unwind::supported() {
            return;
        }
        for depth in [0, 5, 30, 80] {
            let mut checked = false;
            recurse(depth, &mut || {
                let mut unwound = [0usize; MAX_FRAMES];
                let mut walked = [0usize; MAX_FRAMES];
                let n = unwind(as_frames(&mut unwound));
                let (low, top) = stack_bounds();
                // `None` while another test's thread makes the first module
                // list (callers then use backtrace): try again.
                let m = (0..100_000)
                    .find_map(|_| {
                        let m = framehop_unwind::unwind(as_frames(&mut walked), low, top);
                        if m.is_none() {
                            std::thread::yield_now();
                        }
                        m
                    })
                    .expect("framehop runs once the module list is made");
                assert!(
                    unwinders_agree(&unwound[..n], &walked[..m], MAX_FRAMES),
                    "depth {depth}: backtrace {:x?}\nframehop {:x?}",
                    &unwound[..n],
                    &walked[..m]
                );
                assert!(m >= depth.min(MAX_FRAMES - 2), "depth {depth}: {m} frames");
                checked = true;
            });
            assert!(checked);
        }
    }

    #[test]
    fn framehop_repeats_itself_when_warm() {
        if !framehop_unwind::supported() {
            return;
        }
        recurse(30, &mut || {
            let mut stacks = [[0usize; MAX_FRAMES]; 4];
            let mut lens = [0usize; 4];
            let mut misses = [0u64; 4];
            for i in 0..4 {
                misses[i] = framehop_counters().cache_misses;
                lens[i] = capture_with(Unwinder::Framehop, &mut stacks[i]);
            }
            assert!(lens[0] > 30);
            // The leaf frames depend on the (unrolled) call site.
            for i in 1..4 {
                assert_eq!(stacks[0][3..lens[0]], stacks[i][3..lens[i]]);
            }
            // Other tests' threads may miss meanwhile; a warm repeat of this
            // stack adds few if any.
            assert!(misses[3] - misses[2] < 8);
        });
    }

    #[test]
    fn unwinder_finds_this_function() {
        let mut buf = frame_buf();
        let n = unwind(&mut buf);
        assert!(n > 3);
        assert!(written(&buf, n).iter().all(|&a| a != 0));
    }
}
