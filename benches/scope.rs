//! The cost of scopes (`memprof::scope`), measured against the same work
//! outside any scope in the same run.
//!
//! * `alloc/free, no scope`: a 64 B allocation and free per operation.
//! * `alloc/free, inside a scope`: the same with a scope entered once around
//!   the loop. The allocation fast path does not look at scopes (only a
//!   recorded sample reads the scope id), so this should match.
//! * `enter+exit + alloc/free`: a scope entered and left per operation,
//!   the cost of `#[memprof::scope]` on a function called per request.
//!
//! Rounds interleave the three so noise hits them alike; medians are
//! printed with ratios to the first. `cargo bench --bench scope`; without
//! `--bench` (as under `cargo test`) it does one short smoke round.

use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn alloc_free(ops: u64) {
    for i in 0..ops {
        let block = black_box(Box::new([i as u8; 64]));
        drop(block);
    }
}

fn no_scope(ops: u64) -> f64 {
    let start = Instant::now();
    alloc_free(ops);
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn inside_scope(ops: u64) -> f64 {
    let _scope = memprof::enter_scope("bench-outer");
    let start = Instant::now();
    alloc_free(ops);
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn enter_exit_each(ops: u64) -> f64 {
    let start = Instant::now();
    for i in 0..ops {
        let _scope = memprof::enter_scope("bench-request");
        let block = black_box(Box::new([i as u8; 64]));
        drop(block);
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// A named case: runs `ops` operations, returns ns per operation.
type Case = (&'static str, fn(u64) -> f64);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, ops) = if bench { (15, 2_000_000) } else { (1, 10_000) };
    let cases: [Case; 3] = [
        ("alloc/free, no scope", no_scope),
        ("alloc/free, inside a scope", inside_scope),
        ("enter+exit + alloc/free", enter_exit_each),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        // Rotate the order each round.
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            results[i].push((cases[i].1)(ops));
        }
    }
    let base = median(results[0].clone());
    println!(
        "scope cost at rate {} ({rounds} rounds of {ops} ops, medians)",
        memprof::rate()
    );
    for (i, (name, _)) in cases.iter().enumerate() {
        let m = median(results[i].clone());
        println!("  {name:<28} {m:7.1} ns/op  {:5.2}x", m / base);
    }
}
