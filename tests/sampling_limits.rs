//! A full live table drops samples and counts them; it never fails.

#![allow(clippy::vec_box)] // separate heap blocks are the point of these tests

use memprof::{Kind, MemProf};

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

#[inline(never)]
fn limits_site(n: usize) -> Vec<Box<[u8; 32]>> {
    (0..n).map(|i| Box::new([i as u8; 32])).collect()
}

#[test]
fn full_table_drops_and_counts() {
    memprof::set_max_samples(640);
    memprof::set_thread_rate(Some(1));
    let blocks = limits_site(10_000);
    let snap = memprof::snapshot();
    memprof::set_thread_rate(None);
    let c = snap.counters;
    // The cap is a memory bound kept per shard (see `LiveSamples`), which
    // may let a few percent more in.
    assert!(
        c.live_samples <= 640 + 640 / 16,
        "live samples capped: {}",
        c.live_samples
    );
    assert!(
        c.samples_dropped >= 9_000,
        "drops counted: {}",
        c.samples_dropped
    );
    // Dropped samples are not counted as in use: the estimate stays below
    // the truth instead of inventing memory.
    let inuse: f64 = snap
        .stacks
        .iter()
        .filter(|s| s.mentions("limits_site"))
        .map(|s| s.value(Kind::InuseObjects))
        .sum();
    assert!(inuse <= c.live_samples as f64 + 1.0, "{inuse}");
    drop(blocks);
    let after = memprof::snapshot();
    assert!(after.counters.live_samples < c.live_samples);
}
