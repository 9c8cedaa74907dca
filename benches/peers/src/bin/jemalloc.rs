//! The workloads on bare jemalloc: the baseline of every ratio.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // Says on stderr whether jemalloc was built with profiling: it must not
    // be (see `jeprof` in Cargo.toml).
    eprintln!("jemalloc: {}", memprof_peers::jemalloc_config());
    memprof_peers::main("jemalloc");
}
