//! What reading a large exact-mode profile costs: the time of a snapshot,
//! the memory it takes beyond what the profiler already holds, and the size
//! and time of the `/heap` answers, at 10k, 100k and 800k distinct stacks.
//!
//! Each size runs in a child process (this binary again, with
//! `BENCH_SNAPSHOT_STACKS` set) at `MEMPROF_RATE=1` with a stack table large
//! enough for every stack, so peak memory is the child's own. The child
//! allocates one live block from each of N distinct call stacks (see
//! `memprof_dev::distinct_stacks`), then measures, with the peak RSS reset
//! (`/proc/self/clear_refs`) before each step:
//!
//! * `snapshot`: `memprof::snapshot()` the first time (symbolizing) and again;
//! * `heap`: `GET /heap` (pprof, the default),
//!   `GET /heap?format=folded&kind=alloc_space` and the same with
//!   `limit=all` (every stack), each body read and counted;
//! * `peak+`: the highest RSS during the step less the RSS once the stacks
//!   were allocated (freed pages returned to the system before each step),
//!   and its ratio to `profiler_bytes` (the sampler's and symbolizer's
//!   tables) then.
//!
//! `cargo bench --bench snapshot_scale [-- SIZES]` (sizes comma-separated,
//! default `10000,100000,800000`). Without `--bench` (as under `cargo
//! test`) it does nothing.

use std::io::Read;
use std::process::Command;
use std::time::Instant;

use memprof_dev::distinct_stacks;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const CHILD: &str = "BENCH_SNAPSHOT_STACKS";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = std::env::var(CHILD).ok().and_then(|n| n.parse().ok()) {
        child(n);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let sizes = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or("10000,100000,800000", String::as_str)
        .to_string();
    println!(
        "{:>8} {:>10} {:>10} {:>12} {:>11} {:>6} {:>12} {:>9} {:>6} {:>12} {:>9} {:>6} {:>9} {:>7} {:>6}",
        "stacks",
        "snap 1st s",
        "snap 2nd s",
        "profiler MB",
        "snap peak+",
        "ratio",
        "/heap MB",
        "/heap s",
        "ratio",
        "folded MB",
        "folded s",
        "ratio",
        "all MB",
        "all s",
        "ratio"
    );
    for n in sizes.split(',') {
        let output = Command::new(&args[0])
            .env(CHILD, n)
            .env("MEMPROF_RATE", "1")
            .env("MEMPROF_MAX_STACKS", (1u64 << 21).to_string())
            .output()
            .expect("run the child");
        if !output.status.success() {
            eprintln!(
                "child for {n} stacks failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// A `/proc/self/status` field in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resets the peak RSS to the RSS now, and returns the RSS now.
fn reset_peak() -> u64 {
    // Writing 5 resets VmHWM (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_bytes("VmRSS:")
}

/// Runs `f` after returning freed pages to the system (so each step starts
/// from the same RSS), and returns what it returned, its seconds and the
/// peak RSS above `baseline`.
fn measured<T>(baseline: u64, f: impl FnOnce() -> T) -> (T, f64, u64) {
    let _ = memprof::jemalloc::purge();
    reset_peak();
    let start = Instant::now();
    let value = f();
    let seconds = start.elapsed().as_secs_f64();
    (
        value,
        seconds,
        status_bytes("VmHWM:").saturating_sub(baseline),
    )
}

/// Reads `url` to the end, counting its bytes without keeping them.
fn body_bytes(url: &str) -> u64 {
    let agent = memprof_dev::agent();
    let mut response = agent.get(url).call().expect("GET");
    if response.status() != 200 {
        // A parameter this build does not know: nothing to count.
        return 0;
    }
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break total,
            Ok(n) => total += n as u64,
            Err(e) => panic!("reading {url}: {e}"),
        }
    }
}

/// Levels of the call tree the stacks come from: 2^20 paths, more than the
/// largest size, and every stack the same depth whatever the size.
const DEPTH: u32 = 20;

/// One live 16-byte block from each of the first `n` paths' stacks.
fn allocate(n: usize) -> Vec<Vec<u8>> {
    let mut kept = Vec::with_capacity(n);
    for path in 0..n.min(1 << DEPTH) as u32 {
        distinct_stacks::call_from(path, DEPTH, &mut || kept.push(vec![path as u8; 16]));
    }
    kept
}

fn child(n: usize) {
    let kept = allocate(n);
    let stacks = memprof::counters();
    let profiler = stacks.profiler_bytes;
    let _ = memprof::jemalloc::purge();
    let baseline = reset_peak();
    let (first, first_s, first_peak) = measured(baseline, memprof::snapshot);
    let kept_stacks = first.stacks.len();
    drop(first);
    let (second, second_s, _) = measured(baseline, memprof::snapshot);
    drop(second);
    let server = memprof::serve("127.0.0.1:0").expect("endpoint");
    let url = format!("{}/heap", server.url());
    let (heap, heap_s, heap_peak) = measured(baseline, || body_bytes(&url));
    let folded_url = format!("{url}?format=folded&kind=alloc_space");
    let (folded, folded_s, folded_peak) = measured(baseline, || body_bytes(&folded_url));
    let all_url = format!("{folded_url}&limit=all");
    let (all, all_s, all_peak) = measured(baseline, || body_bytes(&all_url));
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{:>8} {:>10.2} {:>10.2} {:>12.1} {:>11.1} {:>6.2} {:>12.2} {:>9.2} {:>6.2} {:>12.1} {:>9.2} {:>6.2} {:>9.1} {:>7.2} {:>6.2}",
        kept_stacks,
        first_s,
        second_s,
        mb(profiler),
        mb(first_peak),
        first_peak as f64 / profiler as f64,
        mb(heap),
        heap_s,
        heap_peak as f64 / profiler as f64,
        mb(folded),
        folded_s,
        folded_peak as f64 / profiler as f64,
        mb(all),
        all_s,
        all_peak as f64 / profiler as f64,
    );
    drop(kept);
}
