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
//! A verdict can be limited to one scope ([`track_scope`], [`soak_scope`],
//! `#[memprof::test(scope = "ingest")]`): only the body's blocks allocated
//! in that scope or nested in it count, on every thread it started, and
//! the rest (caches warming, a runtime) is summed beside the figures in
//! [`Retained::scope`]. A scope never entered while the body ran is an
//! error, not a clean verdict.
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

mod harness;
mod retained;
mod scope_filter;
mod tracking;

use std::collections::HashMap;

use crate::profile::Trend;
use crate::sample::LiveSample;
use retained::StackLive;
use scope_filter::{Entries, ScopeFilter};
use tracking::Tracking;

#[doc(hidden)]
#[cfg(feature = "http")]
pub use harness::__current_thread_runtime;
#[doc(hidden)]
pub use harness::{__prime_tokio, __run_leak_test, __run_soak_test};
pub use harness::{artifacts_dir, write_report};
use retained::{by_stack, summarize};
pub use retained::{Retained, RetainedStack, ScopeLimit};
pub use scope_filter::ScopeError;

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
    track_in(None, body)
}

/// [`track`] with the figures limited to what the body's blocks hold in
/// scope `scope` and the scopes nested in it; the rest (caches warming, a
/// runtime) is left out and summed in [`Retained::scope`].
///
/// Which scopes a path keeps: a run of whole scope names from the outermost
/// scope (`ingest` keeps `ingest` and `ingest/parse`, not `batch/ingest`),
/// or, for a path that starts with a label (`key=value`), a run starting at
/// any depth (`route=GET /ingest` keeps `tenant=acme/route=GET /ingest`).
/// The views' `scope=` keeps stacks by the same rule. Blocks count by the
/// scope their thread was in when it allocated them, on the body's thread
/// and on every thread it started (see the module docs): a thread or task
/// enters the scope itself (`memprof::scope`), as scopes are per thread.
///
/// # Errors
///
/// [`ScopeError::BadPath`] (without running the body) for an empty path,
/// one over 4096 bytes or one with a control character;
/// [`ScopeError::NeverEntered`] when no scope the path keeps was entered
/// while the body ran (counted across the process), since a misspelt name
/// would otherwise pass as clean.
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     let mut cache = Vec::new();
///     let (kept, retained) = memprof::testing::track_scope("ingest", || {
///         cache.push(vec![0u8; 4096]); // outside the scope: left out
///         memprof::scope("ingest", || vec![0u8; 100])
///     })
///     .unwrap();
///     assert_eq!(retained.bytes, 100);
///     assert!(retained.scope.unwrap().outside_bytes >= 4096);
///     drop(kept);
///
///     let misspelt = memprof::testing::track_scope("ingset", || memprof::scope("ingest", || ()));
///     assert!(misspelt.is_err());
/// }
/// ```
pub fn track_scope<R>(scope: &str, body: impl FnOnce() -> R) -> Result<(R, Retained), ScopeError> {
    let filter = ScopeFilter::new(scope)?;
    let entries = Entries::now();
    let (result, mut retained) = track_in(Some(&filter), body);
    entries.note_entered(&filter, &mut retained)?;
    Ok((result, retained))
}

/// [`track`], its figures limited to `scope` when one is given (with
/// [`ScopeLimit::entered`] left for [`Entries::note_entered`]).
fn track_in<R>(scope: Option<&ScopeFilter>, body: impl FnOnce() -> R) -> (R, Retained) {
    let tracking = Tracking::start();
    let result = body();
    let running = tracking.wait_for_started_threads();
    let (inside, outside) = split(scope, tracking.live());
    let mut retained = summarize(&by_stack(&inside));
    tracking.count_threads(&mut retained, running);
    drop(tracking);
    retained.scope = scope.map(|filter| limit(filter, &by_stack(&outside)));
    (result, retained)
}

/// The samples that count (all, without a scope) and those left out.
fn split(
    scope: Option<&ScopeFilter>,
    samples: Vec<LiveSample>,
) -> (Vec<LiveSample>, Vec<LiveSample>) {
    match scope {
        Some(filter) => filter.split(samples),
        None => (samples, Vec::new()),
    }
}

/// What a scoped body's figures leave out: `outside`, by stack.
fn limit(filter: &ScopeFilter, outside: &HashMap<u32, StackLive>) -> ScopeLimit {
    let outside = summarize(outside);
    ScopeLimit {
        path: filter.path().to_string(),
        entered: 0,
        outside_bytes: outside.bytes,
        outside_blocks: outside.blocks,
        outside_stacks: outside.stacks,
    }
}

/// Per stack, live at the end minus live at `start`.
fn grown(
    mut end: HashMap<u32, StackLive>,
    start: &HashMap<u32, StackLive>,
) -> HashMap<u32, StackLive> {
    crate::thread_state::unsampled(|| {
        for (stack, before) in start {
            let now = end.entry(*stack).or_default();
            now.bytes -= before.bytes;
            now.blocks -= before.blocks;
        }
        end
    })
}

/// The outcome of [`soak`] and [`soak_scope`].
#[derive(Clone, Debug)]
pub struct SoakReport {
    /// Iterations measured (after warmup).
    pub iterations: u64,
    /// Iterations run first and not measured.
    pub warmup: u64,
    /// Net growth of the body's live bytes per iteration (least-squares
    /// slope of the checkpoints); for [`soak_scope`], of those in the
    /// scope.
    pub growth_per_iteration: f64,
    /// Fit quality of that slope.
    pub r_squared: f64,
    /// `(iteration, net bytes)` checkpoints: the body's live bytes (in
    /// the scope, for [`soak_scope`]) after that iteration minus at the end
    /// of warmup.
    pub checkpoints: Vec<(u64, i64)>,
    /// Where the body's live bytes grew from the end of warmup to the end:
    /// per stack, live at the end minus live at the end of warmup, for the
    /// stacks that grew (in the scope, for [`soak_scope`]; what grew
    /// outside it is in its [`Retained::scope`]).
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
    soak_in(iterations, warmup, None, || (), |()| body())
}

/// [`soak`] with the verdict limited to scope `scope` and those nested in
/// it (which scopes a path keeps: see [`track_scope`]): the growth, its
/// slope and the checkpoints count only the body's blocks in the scope;
/// the growth outside it (a cache warming, a runtime) is left out and
/// summed in the growth's [`Retained::scope`].
///
/// # Errors
///
/// As [`track_scope`]: a malformed path (the body does not run), or a
/// scope never entered while the soak ran.
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     // The process warms a cache while the ingest scope keeps nothing.
///     let mut cache = Vec::new();
///     let report = memprof::testing::soak_scope("ingest", 1000, 10, || {
///         cache.push(vec![0u8; 64]);
///         memprof::scope("ingest", || drop(vec![0u8; 1024]));
///     })
///     .unwrap();
///     assert_eq!(report.growth_per_iteration, 0.0, "{report:?}");
///     let outside = report.growth.scope.as_ref().unwrap().outside_bytes;
///     assert!(outside >= 64 * 1000, "{report:?}");
/// }
/// ```
pub fn soak_scope(
    scope: &str,
    iterations: u64,
    warmup: u64,
    mut body: impl FnMut(),
) -> Result<SoakReport, ScopeError> {
    let filter = ScopeFilter::new(scope)?;
    let entries = Entries::now();
    let mut report = soak_in(iterations, warmup, Some(&filter), || (), |()| body());
    entries.note_entered(&filter, &mut report.growth)?;
    Ok(report)
}

/// [`soak`] limited to `scope` when one is given (with
/// [`ScopeLimit::entered`] left for [`Entries::note_entered`]), with a
/// setting the iterations share, made by `setup` as the soak begins (a
/// runtime whose workers then belong to the body) and dropped after the
/// last measurement.
fn soak_in<S>(
    iterations: u64,
    warmup: u64,
    scope: Option<&ScopeFilter>,
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
    let (inside, outside) = split(scope, tracking.live());
    let (inside_at_warmup, outside_at_warmup) = (by_stack(&inside), by_stack(&outside));
    let baseline: i64 = inside_at_warmup.values().map(|s| s.bytes).sum();
    for i in 1..=iterations {
        body(&setting);
        if i % every == 0 || i == iterations {
            tracking.wait_for_running(kept_running);
            let (inside, _) = split(scope, tracking.live());
            let live: i64 = inside.iter().map(|s| s.size as i64).sum();
            checkpoints.push((i, live - baseline));
        }
    }
    let running = tracking.wait_for_running(kept_running);
    let (inside, outside) = split(scope, tracking.live());
    let mut growth = summarize(&grown(by_stack(&inside), &inside_at_warmup));
    tracking.count_threads(&mut growth, running);
    growth.scope =
        scope.map(|filter| limit(filter, &grown(by_stack(&outside), &outside_at_warmup)));
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
