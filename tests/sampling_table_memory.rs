//! The live-sample table at rate 1 under bursts: it keeps to its cap, and
//! the memory a burst took comes back once the burst's blocks are freed.

#![allow(clippy::vec_box)] // separate heap blocks are the point of this test

use std::sync::{Arc, Barrier};

use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const CAP: usize = 100_000;
/// The cap is exact but for inserts racing the moment an allowance is
/// granted or taken back: a sample or two per thread inserting then (five
/// threads here).
const CAP_BOUND: u64 = (CAP + 16) as u64;
/// Blocks each burst allocates: past the cap on its own.
const BURST: usize = CAP * 6 / 5;

#[inline(never)]
fn burst(n: usize) -> Vec<Box<[u8; 24]>> {
    (0..n).map(|i| Box::new([i as u8; 24])).collect()
}

#[test]
fn bursts_keep_to_the_cap_and_give_their_memory_back() {
    memprof::set_max_samples(CAP);
    // One sample first: the stack table maps its first segment and frame
    // chunk (it grows with the stacks it holds), which the few stacks
    // below share; the figure compared at the end is the live table's.
    memprof::set_thread_rate(Some(1));
    drop(burst(1));
    memprof::set_thread_rate(None);
    let start = memprof::counters().profiler_bytes;
    let mut peak_live = 0;
    let mut peak_bytes = 0;
    let mut see = |when: &str| {
        let c = memprof::counters();
        peak_live = peak_live.max(c.live_samples);
        peak_bytes = peak_bytes.max(c.profiler_bytes);
        eprintln!(
            "{when}: {} live samples, {} dropped, {} profiler bytes",
            c.live_samples, c.samples_dropped, c.profiler_bytes
        );
    };

    // Threads with their own arenas (so their blocks fall in different
    // regions and shards): the first fills the table and frees it all, the
    // main thread fills it, then four threads burst at once while the main
    // thread holds on.
    let first = std::thread::spawn(|| {
        memprof::set_thread_rate(Some(1));
        drop(burst(BURST));
    });
    first.join().unwrap();
    see("after a burst was freed");
    memprof::set_thread_rate(Some(1));
    let held = burst(BURST);
    memprof::set_thread_rate(None);
    see("one burst live");
    let all_live = Arc::new(Barrier::new(5));
    let counted = Arc::new(Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (all_live, counted) = (Arc::clone(&all_live), Arc::clone(&counted));
            std::thread::spawn(move || {
                memprof::set_thread_rate(Some(1));
                let blocks = burst(BURST / 2);
                all_live.wait();
                counted.wait();
                drop(blocks);
            })
        })
        .collect();
    all_live.wait();
    see("five bursts live");
    counted.wait();
    for t in threads {
        t.join().unwrap();
    }
    drop(held);
    see("everything freed");

    let end = memprof::counters();
    assert!(
        peak_live <= CAP_BOUND,
        "{peak_live} live samples against a cap of {CAP}"
    );
    assert!(end.samples_dropped > 0, "the bursts did pass the cap");
    assert!(end.live_samples < 100, "{} live", end.live_samples);
    assert!(
        peak_bytes > start + (4 << 20),
        "the table grew for the bursts: {start} -> {peak_bytes}"
    );
    assert!(
        end.profiler_bytes <= start + (1 << 20),
        "profiler memory after the bursts were freed: {} bytes, {start} before",
        end.profiler_bytes
    );
}
