//! Under `MemProf`, the automatic choice settles on a fast walker (frame
//! pointers if the build has them, else framehop) after verifying it
//! against backtrace, and the sampled stacks still name their callers.
//!
//! `MEMPROF_EXPECT_UNWINDER=frame_pointers` (or `framehop`) asks for that
//! walker exactly: CI runs this test once more in a build with
//! `-C force-frame-pointers=yes`, where frame pointers must win.

#![allow(clippy::vec_box)] // separate heap blocks are the point

use memprof::MemProf;
use memprof::{unwinder, Unwinder};

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

#[inline(never)]
fn unwind_auto_site(depth: usize, out: &mut Vec<Box<[u8; 64]>>) {
    if depth == 0 {
        for i in 0..50 {
            out.push(Box::new([i as u8; 64]));
        }
    } else {
        unwind_auto_site(depth - 1, out);
    }
    std::hint::black_box(depth);
}

#[test]
fn auto_mode_settles_on_a_fast_walker() {
    if std::env::var_os("MEMPROF_UNWIND").is_some() {
        return;
    }
    memprof::set_thread_rate(Some(1));
    let mut kept = Vec::with_capacity(10_000);
    for _ in 0..20 {
        unwind_auto_site(20, &mut kept);
    }
    let chosen = unwinder();
    if let Some(expected) = std::env::var_os("MEMPROF_EXPECT_UNWINDER") {
        let expected = match expected.to_str() {
            Some("frame_pointers") => Unwinder::FramePointers,
            Some("framehop") => Unwinder::Framehop,
            other => panic!("MEMPROF_EXPECT_UNWINDER={other:?}: frame_pointers or framehop"),
        };
        assert_eq!(chosen, expected);
    } else if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        assert!(
            matches!(chosen, Unwinder::Framehop | Unwinder::FramePointers),
            "{chosen:?} {:?}",
            memprof::internals::framehop_counters()
        );
    } else {
        assert_ne!(chosen, Unwinder::Verifying);
    }
    // Stacks taken after the choice still reach the test function.
    for _ in 0..5 {
        unwind_auto_site(20, &mut kept);
    }
    let snap = memprof::snapshot();
    let deep = snap
        .stacks
        .iter()
        .filter(|s| {
            s.mentions("unwind_auto_site") && s.mentions("auto_mode_settles_on_a_fast_walker")
        })
        .count();
    assert!(deep > 0, "no stack reaches the test function");
    memprof::set_thread_rate(None);
    drop(kept);
}
