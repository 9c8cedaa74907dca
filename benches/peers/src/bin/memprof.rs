//! The workloads under memprof (`MemProf::jemalloc()`); the rate comes from
//! `MEMPROF_RATE` (unset: the default, 524288; `1`: exact mode).

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn main() {
    eprintln!(
        "memprof: rate={} {}",
        memprof::rate(),
        memprof_peers::jemalloc_config()
    );
    let (workload, size) = memprof_peers::args();
    let variant = if memprof::rate() == 1 {
        "memprof-exact"
    } else {
        "memprof"
    };
    let took = memprof_peers::run_workload(&workload, size)
        .unwrap_or_else(|| panic!("unknown workload {workload:?}"));
    memprof_peers::report(&workload, variant, size, took);
    let c = memprof::sample::counters();
    eprintln!(
        "memprof: samples_taken={} stacks={} skipped_reentrant={} profiler_bytes={}",
        c.samples_taken, c.stacks, c.skipped_reentrant, c.profiler_bytes
    );
}
