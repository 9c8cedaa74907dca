//! A span field with a million distinct values, as a label of memprof's
//! tracing layer: the key keeps its cap of values, the rest are `~other`
//! and counted, and memprof's memory (its tables, the name arena, the
//! process's RSS) stays bounded.

use std::time::Instant;

use memprof::tracing::MemprofLayer;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const SPANS: u64 = 1_000_000;
const CAP: u32 = 100;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn a_million_distinct_values_stay_bounded_and_overflow_is_counted() {
    let layer = MemprofLayer::new()
        .spans(["tc-request"])
        .label_fields(["user"])
        .label_cap(CAP);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let registry_before = memprof::registry_stats();
    let profiler_before = memprof::counters().profiler_bytes;
    let rss_before = rss_bytes();
    let mut batch_ms = Vec::new();
    tracing::dispatcher::with_default(&dispatch, || {
        for batch in 0..10 {
            let start = Instant::now();
            for i in batch * SPANS / 10..(batch + 1) * SPANS / 10 {
                let span = tracing::info_span!("tc-request", user = i);
                let _entered = span.enter();
                std::hint::black_box(vec![0u8; 64]);
            }
            batch_ms.push(start.elapsed().as_millis());
        }
    });
    println!("ms per 100,000 spans: {batch_ms:?}");
    let registry = memprof::registry_stats();
    let user = registry
        .labels
        .iter()
        .find(|k| k.key == "user")
        .expect("the key");
    assert_eq!(user.values, CAP);
    assert_eq!(user.overflow, SPANS - u64::from(CAP));
    assert_eq!(user.cap, CAP);
    let paths: Vec<String> = memprof::scopes().into_iter().map(|s| s.path).collect();
    assert!(
        paths.iter().any(|p| p == "tc-request/user=~other"),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p == "tc-request/user=99"));
    assert!(!paths.iter().any(|p| p == "tc-request/user=100"));
    // The request's name, the cap's values and ~other: nothing per span.
    assert!(
        registry.scopes - registry_before.scopes <= CAP + 2,
        "{registry:?}"
    );
    // "user" once, each kept value twice (the value, its segment), ~other.
    let arena_growth = registry.name_arena_bytes - registry_before.name_arena_bytes;
    assert!(arena_growth < 2048, "the name arena grew {arena_growth} B");
    assert!(registry.name_arena_bytes <= registry.name_arena_capacity_bytes);
    let profiler_growth = memprof::counters()
        .profiler_bytes
        .saturating_sub(profiler_before);
    assert!(
        profiler_growth < 4 << 20,
        "memprof's own memory grew {profiler_growth} B"
    );
    let rss_growth = rss_bytes().saturating_sub(rss_before);
    assert!(rss_growth < 64 << 20, "RSS grew {rss_growth} B");
}
