//! W1 on bare jemalloc: the baseline for `alloc_memprof`. See
//! `support/workload.rs`; `benches/run.sh` runs the variants interleaved.

#[path = "support/workload.rs"]
mod workload;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    workload::main("jemalloc");
}
