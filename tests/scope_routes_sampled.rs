//! Memory by route at the default sampling rate: the service of
//! `scope_routes.rs`, and the leaking route's in-use bytes within the
//! sampling error memprof reports for them (the uncertainty of the stacks
//! under the route's scope frame).

#[path = "support/route_service.rs"]
mod route_service;

use route_service::*;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const CLIENTS: usize = 4;
const ROUNDS: usize = 500;

#[test]
fn the_leaking_route_is_estimated_within_its_reported_error() {
    assert_eq!(
        memprof::rate(),
        memprof::DEFAULT_RATE,
        "run without MEMPROF_RATE"
    );
    let (runtime, addr) = start(4, CLIENTS * ROUNDS);
    let leaked = drive(addr, CLIENTS, ROUNDS);
    let exact = (leaked * LEAK) as f64;
    let route = scope("route=POST /leak");
    let churn = scope("route=GET /churn");
    let snapshot = memprof::snapshot();
    drop(runtime);

    let (mut estimate, mut error) = (0.0, memprof::profile::Uncertainty::default());
    for stack in &snapshot.stacks {
        if stack.folded_key().starts_with("[scope route=POST /leak];") {
            estimate += stack.estimates.inuse_bytes;
            error += stack.inuse_error;
        }
    }
    // Twice the 95% margin is about four standard errors: a miss is a
    // wrong estimate or a wrong error, not bad luck (1 run in ~16,000).
    let bound = 2.0 * error.margin_95();
    assert!(error.samples >= 50, "too few samples to judge: {error:?}");
    assert!(
        (estimate - exact).abs() <= bound,
        "the route's stacks: {estimate} bytes, leaked {exact}, reported {}",
        error.describe()
    );
    assert!(
        (route.net_bytes - exact).abs() <= bound,
        "the route's scope: {route:?}, leaked {exact}, reported {}",
        error.describe()
    );
    assert!(churn.net_bytes < exact / 10.0, "{churn:?}");
    eprintln!(
        "leaked {exact}; stacks {estimate} ({}); scope {}",
        error.describe(),
        route.net_bytes
    );
}
