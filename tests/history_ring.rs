//! The history sampler: points accumulate at a short interval, the ring
//! stays bounded at its window, each point carries allocator and RSS
//! figures, and starting it again reconfigures rather than duplicates it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memprof::history::{self, HistoryConfig};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn history_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "memprof-history")
        .count()
}

#[test]
fn ring_accumulates_stays_bounded_and_reconfigures() {
    let live: Vec<Vec<u8>> = (0..4).map(|_| black_box(vec![3u8; 1 << 20])).collect();
    let config = HistoryConfig::default()
        .interval(Duration::from_millis(20))
        .window(Duration::from_millis(200));
    assert_eq!(config.capacity(), 10);
    let h = history::start(config.clone()).unwrap();
    // Idempotent: more starts, one thread, settings kept by ensure_started.
    history::ensure_started().unwrap();
    history::start(config).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(history_threads(), 1);
    assert_eq!(h.config().interval, Duration::from_millis(20));

    let deadline = Instant::now() + Duration::from_secs(10);
    while h.cost().ticks < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cost = h.cost();
    assert!(cost.ticks >= 30, "{cost:?}");
    let points = h.points(None);
    assert_eq!(points.len(), 10, "bounded at the window");
    assert_eq!(h.status().held_points, 10);
    for pair in points.windows(2) {
        assert!(pair[0].unix_ms <= pair[1].unix_ms);
    }
    let last = points.last().unwrap();
    let allocator = last.allocator.expect("jemalloc figures");
    assert!(allocator.allocated_bytes >= 4 << 20);
    assert!(allocator.resident_bytes >= allocator.allocated_bytes / 2);
    let process = last.process.expect("process figures");
    assert!(process.rss_bytes.unwrap() >= 4 << 20);
    assert!(process.pss_bytes.is_some());
    assert!(last.cost_us > 0);
    eprintln!(
        "history tick cost: mean {:.0} us, max {} us over {} ticks",
        cost.mean_us, cost.max_us, cost.ticks
    );

    // A wider window at a slower pace; shrinking drops the oldest at once.
    history::start(
        HistoryConfig::default()
            .interval(Duration::from_millis(20))
            .window(Duration::from_millis(60)),
    )
    .unwrap();
    assert!(h.points(None).len() <= 3);
    assert_eq!(history_threads(), 1);
    assert!(h.vmstat_rates().is_some());
    assert!(h.recent().len() >= 2);
    drop(live);
}
