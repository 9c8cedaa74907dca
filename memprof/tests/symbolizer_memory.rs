//! What symbolizing costs the process is bounded and reported: after a
//! snapshot the symbolizer keeps only its per-address results (the parsed
//! debug info is dropped), and what it keeps is what the profiler's own
//! memory says, measured through jemalloc's per-thread counters.

use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const MIB: i64 = 1 << 20;

/// Allocates at a recursion depth of `depth`: each depth is its own stack.
#[inline(never)]
fn nested_allocation(depth: usize) -> Vec<u8> {
    if depth == 0 {
        return black_box(vec![1u8; 256]);
    }
    let v = nested_allocation(black_box(depth - 1));
    black_box(v)
}

#[inline(never)]
fn one_more_site() -> Vec<u8> {
    black_box(vec![2u8; 333])
}

/// This thread's bytes allocated less freed, from jemalloc's per-thread
/// counters: exact, and blind to the allocator's caches (the process-wide
/// `stats.allocated` counts blocks parked in thread caches as allocated).
/// Snapshots symbolize on the thread that asks.
fn allocated() -> i64 {
    let allocated = tikv_jemalloc_ctl::thread::allocatedp::read().unwrap().get();
    let freed = tikv_jemalloc_ctl::thread::deallocatedp::read()
        .unwrap()
        .get();
    allocated.wrapping_sub(freed) as i64
}

#[test]
fn a_snapshot_leaves_only_what_the_profiler_reports() {
    let previous = memprof::set_thread_rate(Some(1));
    let kept: Vec<Vec<u8>> = (0..200).map(nested_allocation).collect();
    memprof::set_thread_rate(previous);

    let before = allocated();
    let reported_before = memprof::internals::cache_bytes() as i64;
    let started = Instant::now();
    let snapshot = memprof::snapshot();
    let first = started.elapsed();
    assert!(
        snapshot.stacks.iter().any(|s| s
            .frames
            .iter()
            .any(|f| f.function.contains("nested_allocation"))),
        "the stacks are symbolized"
    );
    drop(snapshot);
    let retained = allocated() - before;
    let reported = memprof::internals::cache_bytes() as i64 - reported_before;
    eprintln!(
        "first snapshot {first:?}: retained {} KiB, reported {} KiB",
        retained / 1024,
        reported / 1024
    );
    assert!(
        retained <= 8 * MIB,
        "symbolizing kept {} KiB after the snapshot was dropped",
        retained / 1024
    );
    assert!(
        (reported - retained).abs() <= retained / 4 + 256 * 1024,
        "the profiler reports {} KiB for the symbolizer, which holds {} KiB",
        reported / 1024,
        retained / 1024
    );

    // A new address later parses again, names it, and leaves as little.
    let previous = memprof::set_thread_rate(Some(1));
    let more = one_more_site();
    memprof::set_thread_rate(previous);
    let before = allocated();
    let started = Instant::now();
    let snapshot = memprof::snapshot();
    let again = started.elapsed();
    assert!(snapshot.stacks.iter().any(|s| s
        .frames
        .iter()
        .any(|f| f.function.contains("one_more_site"))));
    drop(snapshot);
    let retained = allocated() - before;
    eprintln!(
        "snapshot with a new site {again:?}: retained {} KiB",
        retained / 1024
    );
    assert!(retained <= 2 * MIB, "retained {} KiB", retained / 1024);
    drop((kept, more));
}
