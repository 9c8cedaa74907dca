//! W1 on `MemProf<Jemalloc>`, at the rate from `MEMPROF_RATE` (default
//! 524288; 1 is exact mode). See `support/workload.rs`; `benches/run.sh`
//! runs the variants interleaved.

#[path = "support/workload.rs"]
mod workload;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn main() {
    let rate = memprof::rate();
    let variant = format!("memprof(rate={rate})");
    workload::main(&variant);
    if std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "alloc_memprof: unwinder {:?}, {:?}",
            memprof::unwinder(),
            memprof::internals::framehop_counters()
        );
    }
}
