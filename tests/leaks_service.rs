//! A service-like program with request churn, a bounded pool and a real
//! leak: with default settings the leak is ranked first within 30 seconds,
//! and neither the churn nor the pool is listed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memprof::profile::{find_leaks, stack_usage, LeakOptions, ProcessPoint};
use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Leaks 10 KiB a hundred times a second: about 1 MB/s.
#[inline(never)]
fn leaky_request_cache(i: usize) {
    let entry = vec![i as u8; 10 * 1024];
    LEAKED.lock().unwrap().push(entry);
}

/// Request churn: builds a response and drops it at once.
#[inline(never)]
fn churny_request_handler(i: usize) -> usize {
    let body: Vec<String> = (0..64)
        .map(|k| format!("item {k} of request {i}"))
        .collect();
    let buffer = vec![0u8; 4096 + (i % 16) * 1024];
    body.len() + buffer.len()
}

/// A bounded pool: 16 MiB of buffers allocated once, then lent and returned.
#[inline(never)]
fn bounded_pool_fill() -> Vec<Vec<u8>> {
    (0..4096).map(|_| vec![7u8; 4096]).collect()
}

#[test]
fn leak_is_ranked_first_within_thirty_seconds() {
    assert_eq!(memprof::rate(), memprof::DEFAULT_RATE, "default settings");
    let stop = Arc::new(AtomicBool::new(false));
    let service = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut pool = bounded_pool_fill();
            let mut i = 0usize;
            let mut work = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                // 100 requests per 10 ms tick: churn 100x, a leak 1x.
                for _ in 0..100 {
                    work += churny_request_handler(i);
                    let slot = i % pool.len();
                    let mut lent = std::mem::take(&mut pool[slot]);
                    lent[0] = lent[0].wrapping_add(1);
                    pool[slot] = lent;
                    i += 1;
                }
                leaky_request_cache(i);
                std::thread::sleep(Duration::from_millis(10).saturating_sub(started.elapsed()));
            }
            std::hint::black_box((work, pool.len()));
        })
    };

    // What the history sampler does by default: a reading every 5 s.
    let start = Instant::now();
    let mut history = Vec::new();
    let mut process = Vec::new();
    while start.elapsed() < Duration::from_secs(30) {
        let usage = stack_usage(64);
        process.push(ProcessPoint {
            unix_ms: usage.unix_ms,
            rss_bytes: rss_bytes(),
            heap_bytes: memprof::snapshot().totals.inuse_bytes,
        });
        history.push(usage);
        std::thread::sleep(Duration::from_secs(5));
    }
    let report = find_leaks(&LeakOptions::default(), &history, &process);
    stop.store(true, Ordering::Relaxed);
    service.join().unwrap();

    let keys: Vec<&str> = report
        .candidates
        .iter()
        .map(|c| c.summary.as_str())
        .collect();
    eprintln!("{} candidates: {keys:#?}", report.candidates.len());
    let first = report.candidates.first().expect("a leak candidate");
    assert!(
        first.key.contains("leaky_request_cache"),
        "leak ranked first, got {}",
        first.key
    );
    // About 1 MB/s; sampling noise allows a wide band.
    assert!(
        first.growth_bytes_per_second > 300e3 && first.growth_bytes_per_second < 3e6,
        "{}",
        first.summary
    );
    assert!(
        first.survival_ratio > 0.5,
        "leaked blocks survive: {}",
        first.summary
    );
    for c in &report.candidates {
        assert!(
            !c.key.contains("churny_request_handler"),
            "churn listed: {}",
            c.key
        );
        assert!(
            !c.key.contains("bounded_pool_fill"),
            "pool listed: {}",
            c.key
        );
    }
    // The heap explains the process's growth here.
    assert!(report.outside_heap.is_none());
}

fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024.0
}
