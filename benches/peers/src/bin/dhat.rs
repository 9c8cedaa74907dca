//! The workloads under dhat-rs in heap mode (every allocation recorded).

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let (workload, size) = memprof_peers::args();
    // Heap mode, as `Profiler::new_heap()`, but writing to a temp dir.
    let out = std::env::temp_dir().join(format!("peers-dhat-{}.json", std::process::id()));
    let profiler = dhat::Profiler::builder().file_name(&out).build();
    let took = memprof_peers::run_workload(&workload, size)
        .unwrap_or_else(|| panic!("unknown workload {workload:?}"));
    memprof_peers::report(&workload, "dhat", size, took);
    // dhat writes its JSON here, outside the timed region.
    drop(profiler);
    let _ = std::fs::remove_file(&out);
}
