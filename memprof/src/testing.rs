//! Leak and soak tests: the harness behind `#[memprof::test]`.
//!
//! A tracked body runs with its thread switched to rate 1, so every block it
//! allocates is recorded exactly. A block counts as retained if it was
//! allocated in the body and is still live at the end, wherever it was or was
//! not freed; blocks allocated by other threads (other tests running in
//! parallel, threads the body spawns) do not count. Many such tests can run in
//! one binary, in parallel, under plain `cargo test`.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! let (value, retained) = memprof::testing::track(|| vec![0u8; 100]);
//! assert_eq!(retained.bytes, 100);
//! drop(value);
//! ```
//!
//! Sizes in `#[memprof::test]` are checked when the test compiles:
//!
//! ```compile_fail
//! #[memprof::test(max_leak = "4 KX")] // error: unknown unit `KX`
//! fn parser_does_not_leak() {}
//! ```

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::profile::leaks::human_bytes;
use crate::profile::snapshot::{folded_key_of, program_site, symbolized_frames};
use crate::profile::Trend;
use crate::sample::LiveSample;
use crate::stack::symbolize::Symbolizer;
use crate::stack::{Frame, Trim, STACKS};

/// One stack's share of what a body retained.
#[derive(Clone, Debug)]
pub struct RetainedStack {
    /// Folded key, `root;...;leaf`.
    pub key: String,
    /// Frames, leaf first.
    pub frames: Vec<Arc<Frame>>,
    /// Bytes still live.
    pub bytes: u64,
    /// Blocks still live.
    pub blocks: u64,
}

/// What a tracked body allocated and left live.
#[derive(Clone, Debug, Default)]
pub struct Retained {
    /// Bytes still live.
    pub bytes: u64,
    /// Blocks still live.
    pub blocks: u64,
    /// By stack, most bytes first.
    pub stacks: Vec<RetainedStack>,
}

impl Retained {
    /// Writes folded stacks of the retained bytes.
    pub fn write_folded<W: Write>(&self, mut out: W) -> io::Result<()> {
        for s in &self.stacks {
            writeln!(out, "{} {}", s.key, s.bytes)?;
        }
        Ok(())
    }

    fn describe(&self, top: usize) -> String {
        let mut text = String::new();
        for s in self.stacks.iter().take(top) {
            text.push_str(&format!(
                "\n    {:>10} in {:>6} blocks at {}",
                human_bytes(s.bytes as f64),
                s.blocks,
                program_site(&s.frames)
            ));
        }
        text
    }
}

/// Marks the calling thread exact (rate 1) until dropped.
struct ExactThread {
    previous: Option<u64>,
}

impl ExactThread {
    fn start() -> ExactThread {
        ExactThread {
            previous: crate::set_thread_rate(Some(1)),
        }
    }
}

impl Drop for ExactThread {
    fn drop(&mut self) {
        crate::set_thread_rate(self.previous);
    }
}

/// Fails (with a message saying how to fix it) unless `MemProf` is the
/// global allocator.
fn require_memprof() {
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    if !crate::is_active() {
        panic!(
            "memprof: MemProf is not the global allocator, so this test cannot see allocations. \
             Add to the test crate:\n\n    #[global_allocator]\n    static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();\n"
        );
    }
}

/// Live samples of this thread allocated at or after `since` (monotonic ns).
fn retained_since(since: u64) -> Vec<LiveSample> {
    let thread = crate::alloc::thread::thread_id();
    let mut live = crate::sample::live_samples();
    live.retain(|s| s.thread == thread && s.allocated_at_nanos >= since);
    live
}

fn summarize(samples: &[LiveSample]) -> Retained {
    crate::alloc::unsampled(|| {
        let mut by_key: HashMap<String, RetainedStack> = HashMap::new();
        let mut frames_of: HashMap<u32, (String, Vec<Arc<Frame>>)> = HashMap::new();
        let mut symbolizer = Symbolizer::lock();
        for s in samples {
            let (key, frames) = frames_of
                .entry(s.stack)
                .or_insert_with(|| {
                    let addresses = STACKS.frames(s.stack).unwrap_or(&[]);
                    let (_, frames) =
                        symbolized_frames(&mut symbolizer, s.stack, addresses, Trim::default());
                    (folded_key_of(&frames), frames)
                })
                .clone();
            let entry = by_key.entry(key.clone()).or_insert(RetainedStack {
                key,
                frames,
                bytes: 0,
                blocks: 0,
            });
            entry.bytes += s.size as u64;
            entry.blocks += 1;
        }
        let mut stacks: Vec<RetainedStack> = by_key.into_values().collect();
        stacks.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
        Retained {
            bytes: stacks.iter().map(|s| s.bytes).sum(),
            blocks: stacks.iter().map(|s| s.blocks).sum(),
            stacks,
        }
    })
}

/// Runs `body` on this thread with every allocation recorded, and returns
/// its result with what it left live (its result included).
pub fn track<R>(body: impl FnOnce() -> R) -> (R, Retained) {
    let exact = ExactThread::start();
    require_memprof();
    let since = crate::os::monotonic_nanos();
    crate::alloc::thread::restart_sample_time();
    let result = body();
    let retained = summarize(&retained_since(since));
    drop(exact);
    (result, retained)
}

/// The outcome of [`soak`].
#[derive(Clone, Debug)]
pub struct SoakReport {
    /// Iterations measured (after warmup).
    pub iterations: u64,
    /// Iterations run first and not measured.
    pub warmup: u64,
    /// Retained bytes growth per iteration (least-squares slope).
    pub growth_per_iteration: f64,
    /// Fit quality of that slope.
    pub r_squared: f64,
    /// `(iteration, bytes retained since warmup)` checkpoints.
    pub checkpoints: Vec<(u64, u64)>,
    /// What the measured iterations left live at the end.
    pub retained: Retained,
}

/// Runs `body` `warmup` times, then `iterations` times, measuring how the
/// bytes it retains grow per iteration.
pub fn soak(iterations: u64, warmup: u64, mut body: impl FnMut()) -> SoakReport {
    let exact = ExactThread::start();
    require_memprof();
    for _ in 0..warmup {
        body();
    }
    let since = crate::os::monotonic_nanos();
    crate::alloc::thread::restart_sample_time();
    let every = (iterations / 50).max(1);
    let mut checkpoints = Vec::new();
    for i in 1..=iterations {
        body();
        if i % every == 0 || i == iterations {
            let bytes: u64 = retained_since(since).iter().map(|s| s.size as u64).sum();
            checkpoints.push((i, bytes));
        }
    }
    let retained = summarize(&retained_since(since));
    drop(exact);
    let line: Vec<(f64, f64)> = checkpoints
        .iter()
        .map(|&(i, b)| (i as f64, b as f64))
        .collect();
    let (growth_per_iteration, r_squared) = match Trend::fit(&line) {
        Some(t) => (t.per_second, t.r_squared),
        // Too few checkpoints for a line: total growth over the iterations.
        None => (retained.bytes as f64 / iterations.max(1) as f64, 1.0),
    };
    SoakReport {
        iterations,
        warmup,
        growth_per_iteration,
        r_squared,
        checkpoints,
        retained,
    }
}

/// Where tests write their flamegraphs: `$CARGO_TARGET_DIR/memprof`, else
/// the `target/memprof` that holds the running test binary.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("memprof");
    }
    // A test binary lives at <target>/<profile>/deps/<name>-<hash>.
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|target| target.join("memprof")))
        .unwrap_or_else(|| PathBuf::from("target").join("memprof"))
}

/// Writes `<dir>/<name>.folded` and (with the `export` feature)
/// `<dir>/<name>.svg`, a flamegraph of what was retained. Returns the paths.
pub fn write_report(retained: &Retained, name: &str) -> io::Result<Vec<PathBuf>> {
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir)?;
    let file_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    let mut folded = Vec::new();
    retained.write_folded(&mut folded)?;
    let folded_path = dir.join(format!("{file_name}.folded"));
    std::fs::write(&folded_path, &folded)?;
    #[allow(unused_mut)]
    let mut paths = vec![folded_path];
    #[cfg(feature = "export")]
    {
        let mut options =
            crate::export::flamegraph::FlamegraphOptions::for_kind(crate::Kind::InuseSpace);
        options.title = format!("memprof: retained by {name}");
        let svg_path = dir.join(format!("{file_name}.svg"));
        let file = std::fs::File::create(&svg_path)?;
        crate::export::flamegraph::write_folded_flamegraph(
            &folded,
            &options,
            io::BufWriter::new(file),
        )?;
        paths.insert(0, svg_path);
    }
    Ok(paths)
}

fn report_paths(retained: &Retained, name: &str) -> String {
    match write_report(retained, name) {
        Ok(paths) => paths
            .iter()
            .map(|p| format!("\n  wrote {}", p.display()))
            .collect(),
        Err(e) => format!("\n  (could not write the flamegraph: {e})"),
    }
}

#[doc(hidden)]
pub fn __run_leak_test(name: &str, max_leak_bytes: u64, body: fn()) {
    let ((), retained) = track(body);
    if retained.bytes > max_leak_bytes {
        panic!(
            "memprof: {name} leaked {} in {} blocks (limit {}); still live at the end of the test:{}{}",
            human_bytes(retained.bytes as f64),
            retained.blocks,
            human_bytes(max_leak_bytes as f64),
            retained.describe(5),
            report_paths(&retained, name),
        );
    }
}

#[doc(hidden)]
pub fn __run_soak_test(
    name: &str,
    iterations: u64,
    warmup: u64,
    max_growth_per_iter: u64,
    body: fn(),
) {
    let report = soak(iterations, warmup, body);
    if report.growth_per_iteration > max_growth_per_iter as f64 {
        panic!(
            "memprof: {name} retains {:.1} B more per iteration (limit {max_growth_per_iter} B; r² {:.2} over {} iterations after {} warmup); \
             {} still live from the measured iterations:{}{}",
            report.growth_per_iteration,
            report.r_squared,
            report.iterations,
            report.warmup,
            human_bytes(report.retained.bytes as f64),
            report.retained.describe(5),
            report_paths(&report.retained, name),
        );
    }
}
