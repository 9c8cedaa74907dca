//! framehop (with memprof's rule table) and `backtrace` find the same
//! callers from many kinds of code: std's generic and precompiled code,
//! drop glue, formatting, scoped threads, unwinding guards, C code calling
//! back into Rust (libc's `qsort`), and frames too large for a compact rule.
//!
//! Each context captures with both walkers from one function and compares
//! the stacks below it (`memprof_dev::same_callers`).

use std::collections::HashMap;
use std::fmt;

use memprof::config::MAX_FRAMES;
use memprof::internals::{capture_with, framehop_counters};
use memprof::Unwinder;
use memprof_dev::same_callers;

/// Captures with both walkers here and checks they agree; returns how many
/// frames did.
#[inline(never)]
fn both_walkers_agree(context: &str) -> usize {
    let mut walked = [0usize; MAX_FRAMES];
    let mut reference = [0usize; MAX_FRAMES];
    let m = capture_with(Unwinder::Framehop, &mut walked);
    let n = capture_with(Unwinder::Dwarf, &mut reference);
    match same_callers(&walked[..m], &reference[..n], MAX_FRAMES) {
        Ok(common) => common,
        Err(why) => panic!(
            "{context}: {why}\nwalked:\n{}\nby backtrace:\n{}",
            named(&walked[..m]),
            named(&reference[..n])
        ),
    }
}

/// Return addresses with the functions they return into, one per line.
fn named(stack: &[usize]) -> String {
    stack
        .iter()
        .map(|&a| {
            let frames = memprof::internals::resolve(a);
            let name = frames
                .last()
                .map(|f| f.function.to_string())
                .unwrap_or_default();
            format!("  {a:#x} {name}\n")
        })
        .collect()
}

fn supported() -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux"))
}

/// Runs `check` twice: the first run learns the rules, the second uses them.
fn twice(context: &str, check: impl Fn() -> usize) {
    for round in 0..2 {
        let common = check();
        assert!(
            common >= 3,
            "{context}, round {round}: only {common} frames agree"
        );
    }
}

struct Noisy;

impl Drop for Noisy {
    fn drop(&mut self) {
        both_walkers_agree("drop glue");
    }
}

struct Shown;

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let common = both_walkers_agree("Display::fmt under format!");
        write!(f, "{common}")
    }
}

#[test]
fn std_generic_and_precompiled_code() {
    if !supported() {
        return;
    }
    twice("sort_by comparator", || {
        let mut v = [3, 1, 2];
        let mut common = 0;
        v.sort_by(|a, b| {
            common = both_walkers_agree("sort_by comparator");
            a.cmp(b)
        });
        common
    });
    twice("drop glue", || {
        drop(vec![Noisy, Noisy]);
        3
    });
    twice("Display::fmt under format!", || {
        format!("{}", Shown).parse().expect("a count")
    });
    twice("HashMap entry", || {
        let mut m: HashMap<u32, usize> = HashMap::new();
        *m.entry(1)
            .or_insert_with(|| both_walkers_agree("HashMap entry"))
    });
    twice("iterator fold", || {
        (0..3)
            .map(|i| i + 1)
            .fold(0, |_, _| both_walkers_agree("iterator fold"))
    });
}

#[test]
fn scoped_threads_and_unwind_guards() {
    if !supported() {
        return;
    }
    twice("thread::scope", || {
        std::thread::scope(|s| s.spawn(|| both_walkers_agree("thread::scope")).join())
            .expect("thread")
    });
    twice("catch_unwind", || {
        std::panic::catch_unwind(|| both_walkers_agree("catch_unwind")).expect("no panic")
    });
}

extern "C" fn compare_ints(a: *const libc::c_void, b: *const libc::c_void) -> libc::c_int {
    both_walkers_agree("qsort callback");
    // SAFETY: qsort passes pointers to two elements of the `i32` array below.
    let (a, b) = unsafe { (*(a as *const i32), *(b as *const i32)) };
    a.cmp(&b) as libc::c_int
}

#[test]
fn c_code_calling_back_into_rust() {
    if !supported() {
        return;
    }
    twice("qsort callback", || {
        let mut v = [5i32, 3, 9, 1];
        // SAFETY: `v` is a live array of 4 `i32`s; the comparator reads two
        // of its elements and nothing else.
        unsafe {
            libc::qsort(
                v.as_mut_ptr().cast(),
                v.len(),
                std::mem::size_of::<i32>(),
                Some(compare_ints),
            )
        };
        assert_eq!(v, [1, 3, 5, 9]);
        3
    });
}

/// A frame of more than 32 KiB: its rule has no compact form.
#[inline(never)]
fn big_frame(depth: usize) -> usize {
    let mut page = [0u8; 40 * 1024];
    std::hint::black_box(&mut page);
    let common = if depth == 0 {
        both_walkers_agree("a 40 KiB frame")
    } else {
        big_frame(depth - 1)
    };
    common + usize::from(std::hint::black_box(page[depth]))
}

#[test]
fn frames_too_large_for_a_compact_rule() {
    if !supported() {
        return;
    }
    let not_compact = framehop_counters().rules_not_compact;
    let common = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let mut common = 0;
            for _ in 0..2 {
                common = big_frame(3);
            }
            common
        })
        .expect("spawn")
        .join()
        .expect("thread");
    assert!(common >= 5, "{common} frames agree");
    // Only this test has 40 KiB frames: their rule was learned here.
    assert!(framehop_counters().rules_not_compact > not_compact);
}
