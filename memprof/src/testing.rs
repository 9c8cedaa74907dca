//! Leak and soak tests: the harness behind `#[memprof::test]`.
//!
//! # What a test owns
//!
//! A tracked body ([`track`], [`soak`], `#[memprof::test]`) owns every block
//! allocated while it runs by its own thread, and by every thread started
//! while it runs by its thread or by a thread it started, at any depth:
//! `std::thread::spawn`, `std::thread::scope`, `thread::Builder`, a pool or
//! runtime built inside the body. These threads record every allocation
//! (rate 1) from their first, so the figures are exact. A block counts as
//! retained if the body owns it and it is still live at the end, whichever
//! thread keeps it.
//!
//! No other thread's blocks count, so tests run in parallel in one binary,
//! under plain `cargo test`, without seeing each other: libtest starts each
//! test's thread from its main thread, and a thread belongs to a body only
//! if a thread of that body created it. Linux hands that down from a thread
//! to the threads it creates through their timer slack (see
//! `memprof::thread_state::context` in the source): a tracked body's threads run
//! with a slack 1 to 4,096 ns above the kernel's 50 µs default while it
//! runs. Left out:
//!
//! - work done for the body by threads that existed before it began (a
//!   global pool such as rayon's, a runtime kept in a `static`): build the
//!   pool or runtime inside the test to count it;
//! - what a thread the body started allocates after the body's end;
//! - on systems other than Linux, or where a thread's timer slack cannot be
//!   set (a seccomp filter that refuses `prctl`, a real-time thread), the
//!   threads a body starts: only its own thread is followed, and a failing
//!   test says so;
//! - threads past the first 1,048,576 that one test starts: the test then
//!   fails, saying it could not follow them.
//!
//! An `async fn` under `#[memprof::test]` runs on a tokio runtime built
//! inside the tracked test (the one its `#[tokio::test(...)]` asks for, or a
//! current-thread runtime), so the runtime's workers are the test's threads
//! and every task the body spawns counts; a soak builds it once, before
//! warmup, and awaits the body once per iteration.
//!
//! A soak ([`soak`]) measures net growth: what the body's blocks hold live
//! after each measured iteration minus what they held at the end of warmup,
//! blocks allocated during warmup included, so a bounded structure (a cache
//! that evicts entries it made in warmup) is flat from the first measured
//! iteration, and a leak grows by exactly what it keeps per iteration.
//! Blocks allocated before the soak began are not seen: build the structure
//! under test in the body, or let warmup fill it.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! let (value, retained) = memprof::testing::track(|| vec![0u8; 100]);
//! assert_eq!(retained.bytes, 100);
//! drop(value);
//!
//! let (kept, retained) = memprof::testing::track(|| {
//!     std::thread::spawn(|| vec![0u8; 100]).join().unwrap()
//! });
//! assert_eq!(retained.bytes, 100); // allocated by the thread it started
//! assert_eq!(retained.threads, 2);
//! drop(kept);
//! ```
//!
//! Sizes in `#[memprof::test]` are checked when the test compiles:
//!
//! ```compile_fail
//! #[memprof::test(max_leak = "4 KX")] // error: unknown unit; use B, KB, KiB, ...
//! fn parser_does_not_leak() {}
//! ```

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::human::format_bytes;
use crate::profile::snapshot::{folded_key_of, program_site, symbolized_frames};
use crate::profile::Trend;
use crate::sample::LiveSample;
use crate::stack::symbolize::Symbolizer;
use crate::stack::{Frame, Trim, STACKS};
use crate::thread_state::context::{Context, MAX_MEMBERS};

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

/// What a tracked body allocated and left live (for [`soak`]: what its
/// live blocks grew by).
#[derive(Clone, Debug, Default)]
pub struct Retained {
    /// Bytes still live.
    pub bytes: u64,
    /// Blocks still live.
    pub blocks: u64,
    /// By stack, most bytes first.
    pub stacks: Vec<RetainedStack>,
    /// Threads whose blocks were counted: the body's own and those it
    /// started that allocated.
    pub threads: u64,
    /// Threads the body started past the 1,048,576 one body can follow:
    /// their blocks are not counted, so the figures may be short.
    pub threads_not_followed: u64,
    /// Whether the threads the body started were followed at all (see the
    /// module docs): false where the mark cannot be set.
    pub followed_new_threads: bool,
    /// Threads the body started that were still running at its end (after
    /// a short wait for those finishing): what they allocate later is not
    /// counted.
    pub threads_running: u64,
}

impl Retained {
    /// Writes folded stacks of the retained bytes.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
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
                format_bytes(s.bytes),
                s.blocks,
                program_site(&s.frames)
            ));
        }
        text
    }

    /// Whose blocks were counted, and what could not be followed.
    fn threads_counted(&self) -> String {
        let mut text = match self.threads.saturating_sub(1) {
            0 => "on the test's thread".to_string(),
            started => format!("on the test's thread and {started} it started"),
        };
        if self.threads_running > 0 {
            text.push_str(&format!(
                ", {} of them still running at the end",
                self.threads_running
            ));
        }
        if !self.followed_new_threads {
            text.push_str(
                " (threads the test starts are not followed here: their timer slack \
                 cannot carry the mark, so what they keep is not counted)",
            );
        }
        if self.threads_not_followed > 0 {
            text.push_str(&format!(
                " ({} more threads it started were not followed: what they keep is not counted)",
                self.threads_not_followed
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
    if !crate::sample::serves_global_allocator() {
        panic!(
            "memprof: MemProf is not the global allocator, so this test cannot see allocations. \
             Add to the test crate:\n\n    #[global_allocator]\n    static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();\n"
        );
    }
}

/// A body being tracked on the calling thread: the thread is exact and its
/// tracking context open (so the threads it starts join) until this drops.
struct Tracking {
    context: Context,
    since: u64,
    _exact: ExactThread,
}

impl Tracking {
    fn start() -> Tracking {
        let exact = ExactThread::start();
        require_memprof();
        let context = Context::open();
        let since = crate::os::monotonic_nanos();
        crate::thread_state::restart_sample_time();
        Tracking {
            context,
            since,
            _exact: exact,
        }
    }

    /// The body's blocks live now.
    fn live(&self) -> Vec<LiveSample> {
        crate::thread_state::unsampled(|| {
            let members: HashSet<u32> = self.context.members().into_iter().collect();
            let mut live = crate::sample::live_samples();
            live.retain(|s| s.allocated_at_nanos >= self.since && members.contains(&s.thread));
            live
        })
    }

    /// Bytes of the body's blocks live now.
    fn live_bytes(&self) -> i64 {
        self.live().iter().map(|s| s.size as i64).sum()
    }

    /// Waits, up to [`EXIT_GRACE`], for the threads the body started to
    /// exit, and returns how many still run. A thread that has handed its
    /// result back may still be freeing: std frees a scoped thread's packet
    /// and closure on that thread after `thread::scope` has returned.
    fn wait_for_started_threads(&self) -> u64 {
        self.wait_for_running(0)
    }

    /// Waits, up to [`EXIT_GRACE`], until at most `expected` of the threads
    /// the body started still run (a soak's runtime keeps its workers from
    /// warmup to the end), and returns how many do.
    fn wait_for_running(&self, expected: u64) -> u64 {
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            let running = self.context.members_running();
            if running <= expected || Instant::now() >= deadline {
                return running;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Fills in whose blocks `retained` counted.
    fn count_threads(&self, retained: &mut Retained, running: u64) {
        retained.threads = self.context.members().len() as u64;
        retained.threads_running = running;
        retained.threads_not_followed = self.context.not_followed();
        retained.followed_new_threads = self.context.follows_new_threads();
    }
}

/// How long a measurement waits for the threads a body started to exit.
const EXIT_GRACE: Duration = Duration::from_millis(100);

/// Live bytes and blocks of one stack.
#[derive(Clone, Copy, Default)]
struct StackLive {
    bytes: i64,
    blocks: i64,
}

fn by_stack(samples: &[LiveSample]) -> HashMap<u32, StackLive> {
    crate::thread_state::unsampled(|| {
        let mut stacks: HashMap<u32, StackLive> = HashMap::new();
        for s in samples {
            let entry = stacks.entry(s.stack).or_default();
            entry.bytes += s.size as i64;
            entry.blocks += 1;
        }
        stacks
    })
}

/// Symbolizes stacks with positive bytes and merges those that read the
/// same; blocks below zero count as none.
fn summarize(stacks: &HashMap<u32, StackLive>) -> Retained {
    crate::thread_state::unsampled(|| {
        let mut by_key: HashMap<String, RetainedStack> = HashMap::new();
        let mut symbolizer = Symbolizer::lock();
        for (&stack, live) in stacks {
            if live.bytes <= 0 {
                continue;
            }
            let addresses = STACKS.frames(stack).unwrap_or(&[]);
            let frames = symbolized_frames(&mut symbolizer, stack, addresses, Trim::default());
            let key = folded_key_of(&frames);
            let entry = by_key.entry(key.clone()).or_insert(RetainedStack {
                key,
                frames,
                bytes: 0,
                blocks: 0,
            });
            entry.bytes += live.bytes as u64;
            entry.blocks += live.blocks.max(0) as u64;
        }
        let mut stacks: Vec<RetainedStack> = by_key.into_values().collect();
        stacks.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
        Retained {
            bytes: stacks.iter().map(|s| s.bytes).sum(),
            blocks: stacks.iter().map(|s| s.blocks).sum(),
            stacks,
            ..Retained::default()
        }
    })
}

/// Runs `body` on this thread with every allocation recorded, its own and
/// those of the threads it starts (see the module docs), and returns its
/// result with what it left live (its result included).
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     // The 4 KiB buffer the body returns is still live when it ends.
///     let (buffer, retained) = memprof::testing::track(|| vec![0u8; 4096]);
///     assert!(retained.bytes >= 4096, "{retained:?}");
///     drop(buffer);
///
///     // A body that frees what it allocates leaves that much less.
///     let ((), retained) = memprof::testing::track(|| drop(vec![0u8; 4096]));
///     assert!(retained.bytes < 4096, "{retained:?}");
/// }
/// ```
pub fn track<R>(body: impl FnOnce() -> R) -> (R, Retained) {
    let tracking = Tracking::start();
    let result = body();
    let running = tracking.wait_for_started_threads();
    let mut retained = summarize(&by_stack(&tracking.live()));
    tracking.count_threads(&mut retained, running);
    drop(tracking);
    (result, retained)
}

/// The outcome of [`soak`].
#[derive(Clone, Debug)]
pub struct SoakReport {
    /// Iterations measured (after warmup).
    pub iterations: u64,
    /// Iterations run first and not measured.
    pub warmup: u64,
    /// Net growth of the body's live bytes per iteration (least-squares
    /// slope of the checkpoints).
    pub growth_per_iteration: f64,
    /// Fit quality of that slope.
    pub r_squared: f64,
    /// `(iteration, net bytes)` checkpoints: the body's live bytes after
    /// that iteration minus at the end of warmup.
    pub checkpoints: Vec<(u64, i64)>,
    /// Where the body's live bytes grew from the end of warmup to the end:
    /// per stack, live at the end minus live at the end of warmup, for the
    /// stacks that grew.
    pub growth: Retained,
}

/// Runs `body` `warmup` times, then `iterations` times, measuring how much
/// the bytes its blocks hold live grow per iteration, net of what it frees
/// (see the module docs).
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     // A bounded FIFO cache: it fills during warmup, then stays flat.
///     let mut cache = std::collections::VecDeque::new();
///     let report = memprof::testing::soak(2000, 200, || {
///         cache.push_back(vec![0u8; 100]);
///         if cache.len() > 100 {
///             cache.pop_front();
///         }
///     });
///     assert!(report.growth_per_iteration.abs() < 1.0, "{report:?}");
///
///     // A leak of 64 bytes an iteration reads as exactly that.
///     let mut kept = Vec::new();
///     let report = memprof::testing::soak(1000, 10, || kept.push(Box::new([0u8; 64])));
///     assert!(report.growth_per_iteration >= 64.0, "{report:?}");
/// }
/// ```
pub fn soak(iterations: u64, warmup: u64, mut body: impl FnMut()) -> SoakReport {
    soak_in(iterations, warmup, || (), |()| body())
}

/// [`soak`] with a setting the iterations share, made by `setup` as the
/// soak begins (a runtime whose workers then belong to the body) and
/// dropped after the last measurement.
fn soak_in<S>(
    iterations: u64,
    warmup: u64,
    setup: impl FnOnce() -> S,
    mut body: impl FnMut(&S),
) -> SoakReport {
    let every = (iterations / 50).max(1);
    // Made before tracking starts: its buffer is not the body's.
    let mut checkpoints = Vec::with_capacity((iterations / every) as usize + 1);
    let tracking = Tracking::start();
    let setting = setup();
    for _ in 0..warmup {
        body(&setting);
    }
    // Threads still running now (a runtime's workers) run to the end;
    // measurements wait only for those started since.
    let kept_running = tracking.wait_for_started_threads();
    let at_warmup = by_stack(&tracking.live());
    let baseline: i64 = at_warmup.values().map(|s| s.bytes).sum();
    for i in 1..=iterations {
        body(&setting);
        if i % every == 0 || i == iterations {
            tracking.wait_for_running(kept_running);
            checkpoints.push((i, tracking.live_bytes() - baseline));
        }
    }
    let running = tracking.wait_for_running(kept_running);
    let mut at_end = by_stack(&tracking.live());
    for (stack, before) in &at_warmup {
        let now = at_end.entry(*stack).or_default();
        now.bytes -= before.bytes;
        now.blocks -= before.blocks;
    }
    let mut growth = summarize(&at_end);
    tracking.count_threads(&mut growth, running);
    drop(setting);
    drop(tracking);
    let line: Vec<(f64, f64)> = checkpoints
        .iter()
        .map(|&(i, b)| (i as f64, b as f64))
        .collect();
    let (growth_per_iteration, r_squared) = match Trend::fit(&line) {
        Some(t) => (t.per_second, t.r_squared),
        // Too few checkpoints for a line: net growth over the iterations.
        None => {
            let net = checkpoints.last().map_or(0, |&(_, b)| b);
            (net as f64 / iterations.max(1) as f64, 1.0)
        }
    };
    SoakReport {
        iterations,
        warmup,
        growth_per_iteration,
        r_squared,
        checkpoints,
        growth,
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
///
/// # Errors
///
/// Returns the error of creating the artifacts directory or writing either
/// file, naming neither (the caller knows `name`).
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

/// `up 1.0 KiB` or `down 1.0 KiB`.
fn signed_bytes(bytes: i64) -> String {
    let direction = if bytes < 0 { "down" } else { "up" };
    format!("{direction} {}", format_bytes(bytes.unsigned_abs()))
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

/// A current-thread tokio runtime with I/O and time, for an `async fn`
/// under `#[memprof::test]` without `#[tokio::test]`.
#[doc(hidden)]
#[cfg(feature = "http")]
pub fn __current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("memprof: building a tokio runtime for the test")
}

/// Builds a runtime and runs an empty future on this thread, untracked,
/// before a test whose body `#[tokio::test]` already wrapped: what tokio
/// keeps per thread for any later runtime is then not charged to the test.
/// Without the `http` feature (no tokio here) it does nothing.
#[doc(hidden)]
pub fn __prime_tokio() {
    #[cfg(feature = "http")]
    __current_thread_runtime().block_on(async {});
}

/// The leak test behind `#[memprof::test]`: `setup` (a runtime for an
/// `async fn`, else nothing) is made and dropped inside the tracked body,
/// so its threads and what they leave count. `prime` runs first, untracked:
/// for an `async fn` it builds a runtime and runs an empty future on it,
/// so what the thread keeps for any later runtime (tokio's thread-local
/// parker) is not charged to the test.
#[doc(hidden)]
pub fn __run_leak_test<S>(
    name: &str,
    max_leak_bytes: u64,
    prime: impl FnOnce(),
    setup: impl FnOnce() -> S,
    body: impl FnOnce(&S),
) {
    prime();
    let ((), retained) = track(|| {
        let setting = setup();
        body(&setting);
        drop(setting);
    });
    if retained.threads_not_followed > 0 {
        panic!(
            "memprof: {name} started more threads than memprof can follow ({MAX_MEMBERS}): {} were not followed, \
             so what it leaves live is not known; {} counted so far:{}{}",
            retained.threads_not_followed,
            format_bytes(retained.bytes),
            retained.describe(5),
            report_paths(&retained, name),
        );
    }
    if retained.bytes > max_leak_bytes {
        panic!(
            "memprof: {name} leaked {} in {} blocks (limit {}) {}; still live at the end of the test:{}{}",
            format_bytes(retained.bytes),
            retained.blocks,
            format_bytes(max_leak_bytes),
            retained.threads_counted(),
            retained.describe(5),
            report_paths(&retained, name),
        );
    }
}

/// The soak test behind `#[memprof::test]`: one `setup` (a runtime for an
/// `async fn`) serves every iteration; `prime` as for [`__run_leak_test`].
#[doc(hidden)]
pub fn __run_soak_test<S>(
    name: &str,
    iterations: u64,
    warmup: u64,
    max_growth_per_iter: u64,
    prime: impl FnOnce(),
    setup: impl FnOnce() -> S,
    body: impl FnMut(&S),
) {
    prime();
    let report = soak_in(iterations, warmup, setup, body);
    let growth = &report.growth;
    if growth.threads_not_followed > 0 {
        panic!(
            "memprof: {name} started more threads than memprof can follow ({MAX_MEMBERS}): {} were not followed, \
             so how much it retains is not known{}",
            growth.threads_not_followed,
            report_paths(growth, name),
        );
    }
    if report.growth_per_iteration > max_growth_per_iter as f64 {
        panic!(
            "memprof: {name} retains {:.1} B more per iteration (limit {max_growth_per_iter} B; r² {:.2} over {} iterations after {} warmup, {}); \
             its live bytes went {} from the end of warmup; where they grew:{}{}",
            report.growth_per_iteration,
            report.r_squared,
            report.iterations,
            report.warmup,
            growth.threads_counted(),
            signed_bytes(report.checkpoints.last().map_or(0, |&(_, net)| net)),
            growth.describe(5),
            report_paths(growth, name),
        );
    }
}
