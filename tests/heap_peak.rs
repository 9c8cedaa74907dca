//! The heap at its peak: a program rises to a 64 MiB peak from one
//! function, frees it and settles on a small heap from another; the history
//! sampler keeps the profile of the peak, served at `/heap?at=peak` (and
//! `/flamegraph?at=peak`, `/snapshots`) and by `memprof::peak()`, while
//! `/heap` shows the settled heap.
//!
//! Both structures are allocated in exact mode (`set_thread_rate(Some(1))`),
//! so their bytes are known to the byte and the only slack allowed is for
//! the vectors holding the blocks.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memprof::history::HistoryConfig;
use memprof::Snapshot;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const BLOCK: usize = 1 << 20;
const PEAK_BLOCKS: usize = 64;
const SETTLED_BLOCKS: usize = 4;
/// The vector of block pointers: 64 × 24 bytes, rounded up generously.
const SLACK: f64 = 64.0 * 1024.0;

#[inline(never)]
fn build_peak_structure() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..PEAK_BLOCKS)
        .map(|_| black_box(vec![0x5e_u8; BLOCK]))
        .collect();
    memprof::set_thread_rate(previous);
    blocks
}

#[inline(never)]
fn settle_working_set() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..SETTLED_BLOCKS)
        .map(|_| black_box(vec![0x77_u8; BLOCK]))
        .collect();
    memprof::set_thread_rate(previous);
    blocks
}

/// Blocks live from 1024 distinct stacks, as a service's heap is spread
/// over many: the kept peak's size is then that of a representative
/// profile.
#[inline(never)]
fn spread_over_many_stacks() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let mut blocks = Vec::with_capacity(1024);
    memprof_dev::distinct_stacks::for_each(10, &mut |path| {
        blocks.push(black_box(vec![path as u8; 64]));
    });
    memprof::set_thread_rate(previous);
    blocks
}

/// Bytes a snapshot holds of its own: its stacks and their frame lists
/// (the frames themselves are shared with the symbol cache).
fn own_bytes(snapshot: &Snapshot) -> usize {
    std::mem::size_of::<Snapshot>()
        + snapshot.stacks.capacity() * std::mem::size_of::<memprof::profile::StackProfile>()
        + snapshot
            .stacks
            .iter()
            .map(|s| s.frames.capacity() * std::mem::size_of::<usize>())
            .sum::<usize>()
}

/// In-use bytes of the stacks passing through `function`.
fn inuse_of(snapshot: &Snapshot, function: &str) -> f64 {
    snapshot
        .stacks
        .iter()
        .filter(|s| s.mentions(function))
        .map(|s| s.estimates.inuse_bytes)
        .sum()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn peak_profile_outlives_the_peak() {
    assert!(
        memprof::peak().is_none(),
        "no peak before the history sampler runs"
    );
    // The structure is complete before the sampler's first tick, which
    // therefore keeps it whole: a peak reached between two ticks is kept
    // only within the rule's step of its top (the unit tests cover that).
    let peak_bytes = (PEAK_BLOCKS * BLOCK) as f64;
    let spread = spread_over_many_stacks();
    let structure = build_peak_structure();
    let history = memprof::history::start(
        HistoryConfig::default()
            .interval(Duration::from_millis(20))
            .window(Duration::from_secs(10)),
    )
    .unwrap();
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let url = endpoint.url();
    // The test's own client (response bodies, parsed snapshots) is not the
    // program under study: unsampled, it cannot make a new peak.
    let get = |path: &str| memprof::unsampled(|| memprof_dev::get(&format!("{url}{path}")));
    let load = |body: &[u8]| memprof::unsampled(|| Snapshot::load(body).unwrap());

    wait_for("the peak to be kept", || {
        memprof::peak().is_some_and(|p| inuse_of(&p.snapshot, "build_peak_structure") >= peak_bytes)
    });
    drop(black_box(structure));
    let settled = settle_working_set();
    // Ticks after the fall: the kept peak must survive them.
    let ticks = history.cost().ticks;
    wait_for("three ticks after the fall", || {
        history.cost().ticks >= ticks + 3
    });

    let peak = memprof::peak().expect("a peak is kept");
    let at_peak = inuse_of(&peak.snapshot, "build_peak_structure");
    assert!(
        (peak_bytes..=peak_bytes + SLACK).contains(&at_peak),
        "peak() holds {at_peak} bytes in build_peak_structure, want {peak_bytes}"
    );
    assert!(peak.heap_bytes >= peak_bytes, "{}", peak.heap_bytes);
    assert_eq!(peak.heap_bytes, peak.snapshot.totals.inuse_bytes);
    assert_eq!(peak.taken_at_unix_ms, peak.snapshot.taken_at_unix_ms);
    assert!(peak.highest_heap_bytes >= peak.heap_bytes);

    // The endpoint serves the same kept profile.
    let reply = get("/heap?at=peak&format=json&limit=all");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let served = load(&reply.body);
    assert_eq!(served.taken_at_unix_ms, peak.snapshot.taken_at_unix_ms);
    assert_eq!(inuse_of(&served, "build_peak_structure"), at_peak);
    for stack in served
        .stacks
        .iter()
        .filter(|s| s.mentions("build_peak_structure"))
    {
        assert!(stack.inuse_error.is_exact(), "{:?}", stack.inuse_error);
    }
    assert_eq!(inuse_of(&served, "settle_working_set"), 0.0);

    let folded = get("/heap?at=peak&format=folded").text();
    let line = folded
        .lines()
        .find(|l| l.contains("build_peak_structure") && !l.contains("[other"))
        .unwrap_or_else(|| panic!("no build_peak_structure in\n{folded}"));
    let bytes: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes >= peak_bytes, "{line}");
    let svg = get("/flamegraph?at=peak");
    assert_eq!(svg.status, 200);
    assert!(svg.text().contains("build_peak_structure"));
    assert!(get("/heap?at=peak&format=svg")
        .text()
        .contains("build_peak_structure"));
    assert_eq!(get("/heap?at=peak").status, 200, "pprof");

    // Now: the settled heap, without the peak's structure.
    let now = load(&get("/heap?format=json&limit=all").body);
    assert_eq!(inuse_of(&now, "build_peak_structure"), 0.0);
    let settled_bytes = (SETTLED_BLOCKS * BLOCK) as f64;
    let live = inuse_of(&now, "settle_working_set");
    assert!(
        (settled_bytes..=settled_bytes + SLACK).contains(&live),
        "{live}"
    );
    let now_at = load(&get("/heap?at=now&format=json").body);
    assert_eq!(inuse_of(&now_at, "build_peak_structure"), 0.0);

    // Listed beside the kept snapshots.
    let list = get("/snapshots").json();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "peak")
        .unwrap_or_else(|| panic!("no peak in {list}"));
    assert_eq!(entry["taken_at_unix_ms"], peak.taken_at_unix_ms);
    let by_id = get("/snapshots/peak?format=folded").text();
    assert!(by_id.contains("build_peak_structure"));

    // A bad `at` names the parameter; `at=peak` refuses what it cannot do.
    for bad in [
        "/heap?at=top",
        "/heap?at=peak&seconds=1",
        "/flamegraph?at=yesterday",
        "/flamegraph?at=peak&base=1",
    ] {
        let reply = get(bad);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        let body = reply.json();
        let parameter = body["parameter"].as_str().unwrap();
        assert!(
            parameter == "at" || parameter == "seconds" || parameter == "base",
            "{bad}: {body}"
        );
        if bad.contains("=top") || bad.contains("yesterday") {
            assert_eq!(parameter, "at", "{body}");
        }
    }
    assert!(peak.snapshot.stacks.len() >= 1024);
    eprintln!(
        "peak kept: {} stacks, {} KiB of its own, heap {:.1} MiB, highest seen {:.1} MiB",
        peak.snapshot.stacks.len(),
        own_bytes(&peak.snapshot) / 1024,
        peak.heap_bytes / (1 << 20) as f64,
        peak.highest_heap_bytes / (1 << 20) as f64
    );
    drop(settled);
    drop(spread);
    drop(endpoint);
}
