//! The workloads on jemalloc with its own sampling profiler. Run with
//! `_RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19`.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let config = memprof_peers::jemalloc_config();
    eprintln!("jeprof: {config}");
    assert!(
        config.contains("opt.prof=true"),
        "jemalloc's profiler is off ({config}); set _RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19"
    );
    memprof_peers::main("jeprof");
}
