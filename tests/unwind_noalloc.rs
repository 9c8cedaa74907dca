//! A warm framehop unwind allocates nothing, and finds backtrace's frames.
//!
//! The global allocator here only counts, per thread (this binary does not
//! use `MemProf`), so any allocation on the capture path shows up, and the
//! other test running in parallel does not. The framehop counters are
//! process-wide, so the two tests take turns (`one_at_a_time`): a cold
//! unwind on the other test's new thread must not count as a warm miss here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

use memprof::config::MAX_FRAMES;
use memprof::internals::{capture_with, framehop_counters};
use memprof::Unwinder;

struct Counting;

thread_local! {
    /// Allocations made by this thread (const, no destructor: safe to use
    /// from inside the allocator).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call unchanged to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Serialises the tests of this file: they read process-wide counters.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[inline(never)]
fn recurse(depth: usize, f: &mut dyn FnMut()) {
    if depth == 0 {
        f();
    } else {
        recurse(depth - 1, f);
    }
    std::hint::black_box(depth);
}

#[test]
fn warm_framehop_unwind_does_not_allocate() {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return;
    }
    let _turn = one_at_a_time();
    recurse(40, &mut || {
        let mut frames = [0usize; MAX_FRAMES];
        // Cold: lists the modules and sets up this thread's cache.
        let cold = capture_with(Unwinder::Framehop, &mut frames);
        assert!(cold > 40, "{cold} frames");
        assert!(framehop_counters().module_lists >= 1);
        assert!(framehop_counters().states >= 1);
        let before = allocations();
        let misses = framehop_counters().cache_misses;
        let mut n = 0;
        for _ in 0..100 {
            n = capture_with(Unwinder::Framehop, &mut frames);
        }
        assert_eq!(allocations(), before, "allocated while warm");
        assert!(n > 40);
        assert!(
            framehop_counters().cache_misses - misses <= 2,
            "missed {} times while warm",
            framehop_counters().cache_misses - misses
        );
    });
}

/// A frame of about `N` bytes, a function of its own for each `N`.
#[inline(never)]
fn sized<const N: usize>(f: &mut dyn FnMut()) {
    let mut frame = [0u8; N];
    std::hint::black_box(&mut frame);
    f();
    std::hint::black_box(&frame);
}

#[test]
fn ordinary_frames_get_compact_rules() {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return;
    }
    let _turn = one_at_a_time();
    let before = framehop_counters();
    let mut n = 0;
    sized::<16>(&mut || {
        sized::<200>(&mut || {
            sized::<2000>(&mut || {
                sized::<20000>(&mut || {
                    let mut frames = [0usize; MAX_FRAMES];
                    n = capture_with(Unwinder::Framehop, &mut frames);
                })
            })
        })
    });
    let after = framehop_counters();
    assert!(n > 8, "{n} frames");
    // Four new return addresses at least, one into each `sized` (the
    // closures between them may be tail calls, absent from the stack); all
    // but the thread's outermost frames (if new) unwind by rule.
    assert!(
        after.cache_misses - before.cache_misses >= 4,
        "{before:?} {after:?}"
    );
    assert!(
        after.rules_not_compact - before.rules_not_compact <= 2,
        "{before:?} {after:?}"
    );
}

#[test]
fn framehop_and_backtrace_agree_from_a_new_thread() {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return;
    }
    let _turn = one_at_a_time();
    let agreed = std::thread::spawn(|| {
        let mut ok = true;
        recurse(MAX_FRAMES, &mut || {
            let mut by_framehop = [0usize; MAX_FRAMES];
            let mut by_backtrace = [0usize; MAX_FRAMES];
            let m = capture_with(Unwinder::Framehop, &mut by_framehop);
            let n = capture_with(Unwinder::Dwarf, &mut by_backtrace);
            assert_eq!(m, MAX_FRAMES, "more frames of recursion than room");
            ok = memprof_dev::same_callers(&by_framehop[..m], &by_backtrace[..n], MAX_FRAMES)
                .is_ok_and(|common| common > 40);
        });
        ok
    })
    .join()
    .expect("thread");
    assert!(agreed);
}
