//! memprof around the system allocator instead of jemalloc.
//!
//! Sampling, stacks, snapshots, leaks and the endpoint work the same; the
//! `/allocator` view and the allocator rules of the doctor say "not
//! available", since only jemalloc exposes its internals.
//!
//! `cargo run --release --example system_allocator`

use std::alloc::System;

#[global_allocator]
static ALLOC: memprof::MemProf<System> = memprof::MemProf::new(System);

#[inline(never)]
fn build_index(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i:08}")).collect()
}

fn main() {
    let index = build_index(200_000);
    let snapshot = memprof::snapshot();
    println!(
        "sampling one allocation per {} bytes on average",
        snapshot.rate
    );
    println!(
        "estimated heap in use: {:.1} MiB",
        snapshot.totals.inuse_bytes / (1 << 20) as f64
    );
    for stack in snapshot.top(3, memprof::Kind::InuseSpace) {
        println!(
            "{:>10.0} bytes at {}",
            stack.estimates.inuse_bytes,
            stack.site()
        );
    }
    drop(index);
}
