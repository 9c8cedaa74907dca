//! A bounded load on the endpoint: 20,000 requests from 16 concurrent
//! clients over keep-alive connections, a mix of cheap and heavy routes and
//! of errors; every answer must be the expected one and the process's
//! resident memory must stay bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memprof::http::{serve_with, EndpointConfig};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const CLIENTS: usize = 16;
const REQUESTS: usize = 20_000;
const WARMUP: usize = 2_000;
/// Allowed growth of resident memory between the end of the warm-up and the
/// end of the run.
const MAX_RSS_GROWTH: u64 = 32 << 20;

/// (path, expected status), cycled through by every client.
const MIX: &[(&str, u16)] = &[
    ("stats", 200),
    ("metrics", 200),
    ("heap?format=folded", 200),
    ("stats", 200),
    ("heap", 200),
    ("heap?format=folded&kind=alloc_objects", 200),
    ("heap?kind=nope", 400),
    ("heap?seconds=0", 400),
    ("no/such/route", 404),
    ("snapshots/77777", 404),
    ("metrics", 200),
    ("stats", 200),
];

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn run(url: &str, total: usize, failures: &AtomicUsize) {
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            let next = Arc::clone(&next);
            s.spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .new_agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let (path, expected) = MIX[i % MIX.len()];
                    match agent.get(format!("{url}/{path}")).call() {
                        Ok(mut response) => {
                            let status = response.status().as_u16();
                            let body = response
                                .body_mut()
                                .with_config()
                                .limit(64 << 20)
                                .read_to_vec();
                            if status != expected || body.is_err() {
                                eprintln!("{path}: {status} (expected {expected}) {body:?}");
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            eprintln!("{path}: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn twenty_thousand_requests_from_sixteen_clients() {
    let server = serve_with("127.0.0.1:0", EndpointConfig::default()).unwrap();
    let url = server.url();
    let failures = AtomicUsize::new(0);

    run(&url, WARMUP, &failures);
    let rss_before = rss_bytes();
    let started = Instant::now();
    run(&url, REQUESTS, &failures);
    let elapsed = started.elapsed();
    let rss_after = rss_bytes();

    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "{REQUESTS} requests from {CLIENTS} clients in {elapsed:.2?} ({:.0}/s); \
         RSS {} MiB -> {} MiB",
        REQUESTS as f64 / elapsed.as_secs_f64(),
        rss_before >> 20,
        rss_after >> 20
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests");
    assert!(
        growth <= MAX_RSS_GROWTH,
        "RSS grew by {} MiB under load",
        growth >> 20
    );
    server.shutdown();
}
