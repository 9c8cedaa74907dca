//! Memory by route, exactly: a real axum service behind
//! `memprof::tower::RouteScopeLayer` (three routes: one leaks per request,
//! one churns, one fills a bounded cache), driven over HTTP on loopback by
//! several client threads while tokio runs four workers, at rate 1. Each
//! route's scope shows what that route did: the leaking one grows by the
//! leaked bytes, the others do not grow.

#[path = "support/route_service.rs"]
mod route_service;

use route_service::*;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const CLIENTS: usize = 4;
const ROUNDS: usize = 100;

fn within_1_percent(measured: f64, exact: f64) -> bool {
    (measured - exact).abs() <= 0.01 * exact
}

#[test]
fn each_route_has_its_scope_and_the_leaking_one_grows() {
    memprof::set_rate(1);
    let (runtime, addr) = start(4, 2 * CLIENTS * ROUNDS);
    drive(addr, CLIENTS, ROUNDS);
    let (leak1, churn1, cache1) = (
        scope("route=POST /leak"),
        scope("route=GET /churn"),
        scope("route=GET /cache/{key}"),
    );
    let leaked = drive(addr, CLIENTS, ROUNDS);
    let (leak2, churn2, cache2) = (
        scope("route=POST /leak"),
        scope("route=GET /churn"),
        scope("route=GET /cache/{key}"),
    );
    let unmatched = scope("route=~unmatched");
    let snapshot = memprof::snapshot();
    drop(runtime);

    let requests = (CLIENTS * ROUNDS) as f64;
    assert_eq!(leak2.entered, 2 * CLIENTS as u64 * ROUNDS as u64);
    assert_eq!(churn2.entered, leak2.entered);
    assert_eq!(cache2.entered, leak2.entered);
    assert!(
        unmatched.entered >= 2 * (CLIENTS * ROUNDS / 10) as u64,
        "{unmatched:?}"
    );

    // The leak: in-use grows by exactly what the second run leaked (1%).
    let exact = (leaked * LEAK) as f64;
    let grew = leak2.net_bytes - leak1.net_bytes;
    assert!(
        within_1_percent(grew, exact),
        "grew {grew}, leaked {exact}: {leak2:?}"
    );
    assert!(within_1_percent(leak2.net_bytes, 2.0 * exact), "{leak2:?}");
    // The scope is one root frame of its stacks, slashes and all.
    let in_stacks: f64 = snapshot
        .stacks
        .iter()
        .filter(|s| s.folded_key().starts_with("[scope route=POST /leak];"))
        .map(|s| s.estimates.inuse_bytes)
        .sum();
    assert_eq!(in_stacks, leak2.net_bytes);

    // The churn: everything allocated is freed; what it allocated is the
    // handler's blocks (and the framework's response, under 1 KiB a request).
    let churned = churn2.alloc_bytes - churn1.alloc_bytes;
    let exact = requests * CHURN_REQUEST_BYTES as f64;
    assert!(
        churned >= exact && within_1_percent(churned, exact),
        "churned {churned}, the handler {exact}: {churn2:?}"
    );
    assert!(churn2.net_bytes < CHURN as f64, "{churn2:?}");

    // The cache: bounded, and no growth once full.
    let bound = (CACHE_ENTRIES * CACHE_ENTRY) as f64;
    assert!(cache2.net_bytes <= 1.1 * bound, "{cache2:?}");
    assert!(
        cache2.net_bytes - cache1.net_bytes < 0.05 * bound,
        "{cache1:?} -> {cache2:?}"
    );
    assert!(
        cache2.alloc_bytes - cache1.alloc_bytes > 0.0,
        "the cache kept changing"
    );
    eprintln!("leak {leak2:?}\nchurn {churn2:?}\ncache {cache2:?}\nunmatched {unmatched:?}");
}
