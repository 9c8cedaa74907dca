//! The cost of memprof's tracing layer (`memprof::tracing::MemprofLayer`)
//! per span enter and exit, against the same subscriber without it, in the
//! same run.
//!
//! * `enter+exit, registry alone`: one span entered and exited per
//!   operation, in a `tracing_subscriber::registry()` with no layer.
//! * `enter+exit, with MemprofLayer`: the same span, chosen by the layer
//!   (its scope worked out once, when the span was created).
//! * `enter+exit, layer, span not chosen`: the layer installed, the span
//!   not one it chooses.
//!
//! Rounds interleave the cases so noise hits them alike; medians are
//! printed with each case's extra ns over the first and the ratio.
//! `cargo bench --bench tracing_layer`; without `--bench` (as under
//! `cargo test`) it does one short smoke round. `tracing_layer --count
//! CASE N` runs only case CASE (0, 1, 2) N times, for counting
//! instructions under valgrind (see the README).

use std::hint::black_box;
use std::time::Instant;

use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn dispatch(case: usize) -> Dispatch {
    match case {
        0 => Dispatch::new(tracing_subscriber::registry()),
        _ => Dispatch::new(
            tracing_subscriber::registry()
                .with(memprof::tracing::MemprofLayer::new().spans(["bench-request"])),
        ),
    }
}

/// Enters and exits one span `ops` times; ns per operation.
fn run(case: usize, ops: u64) -> f64 {
    tracing::dispatcher::with_default(&dispatch(case), || {
        let span = if case == 2 {
            tracing::info_span!("bench-other")
        } else {
            tracing::info_span!("bench-request")
        };
        let start = Instant::now();
        for _ in 0..ops {
            let entered = black_box(&span).enter();
            drop(black_box(entered));
        }
        start.elapsed().as_nanos() as f64 / ops as f64
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const CASES: [&str; 3] = [
    "enter+exit, registry alone",
    "enter+exit, with MemprofLayer",
    "enter+exit, layer, span not chosen",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let case: usize = args[at + 1].parse().expect("a case number");
        let ops: u64 = args[at + 2].parse().expect("a count");
        println!("{}: {:.1} ns/op", CASES[case], run(case, ops));
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let (rounds, ops) = if bench { (15, 2_000_000) } else { (1, 10_000) };
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    for round in 0..rounds {
        for k in 0..CASES.len() {
            let i = (k + round) % CASES.len();
            results[i].push(run(i, ops));
        }
    }
    let base = median(results[0].clone());
    println!("tracing layer cost ({rounds} rounds of {ops} enter+exit, medians)");
    for (i, name) in CASES.iter().enumerate() {
        let m = median(results[i].clone());
        println!(
            "  {name:<36} {m:7.1} ns/op  {:+6.1} ns  {:5.2}x",
            m - base,
            m / base
        );
    }
}
