//! A background sampler keeping a bounded ring of readings over time: the
//! series behind the web page's plots, `GET /history`, and the doctor's
//! rules over rates.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! fn main() -> std::io::Result<()> {
//!     use std::time::Duration;
//!     let history = memprof::history::start(
//!         memprof::history::HistoryConfig::default().interval(Duration::from_secs(1)),
//!     )?;
//!     std::thread::sleep(Duration::from_secs(3));
//!     for point in history.points(None) {
//!         println!("{} {:?}", point.unix_ms, point.allocator.map(|a| a.resident_bytes));
//!     }
//!     Ok(())
//! }
//! ```
//!
//! One std thread, `memprof-history`, takes a [`Point`] every interval
//! (default 5 s) and keeps the last window's worth (default 1 hour, 720
//! points); older points are dropped, so its memory is bounded by the
//! window. Each point holds jemalloc's totals (when jemalloc serves the
//! process), the process's RSS, anonymous RSS, swap and PSS, the host's
//! available memory and pressure, the profiler's heap estimates, and the
//! in-use bytes of the largest stacks. The thread samples nothing of its own
//! allocations (its sampling rate is 0), and it times every tick
//! ([`History::cost`]).
//!
//! At each tick it also keeps the profile of the heap at its peak
//! ([`peak`]): when the heap estimate it read passes the kept peak's by
//! [`PeakRule`]'s step, the tick takes a snapshot that replaces the kept
//! one. One snapshot is kept, so this memory is bounded by one profile.
//!
//! [`start`] is idempotent: the first call starts the thread, later calls
//! change its settings. The HTTP endpoint starts it with the defaults
//! through [`ensure_started`], which leaves settings chosen in code alone.

mod peak;
mod point;

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::{VmstatRates, VmstatSample};
use crate::profile::{LeakOptions, LeakReport, ProcessPoint, StackUsage};

pub use self::peak::{Peak, PeakRule, PEAK_FLOOR_BYTES, PEAK_MARGIN};
pub use self::point::{
    AllocatorFigures, HeapFigures, HostFigures, Point, ProcessFigures, RecentReading,
};

/// The default time between two points.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The default span of points kept.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// How many stacks each point records by default.
pub const DEFAULT_TOP_STACKS: usize = 20;
/// The shortest interval accepted (shorter ones are raised to it).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The most points kept, whatever the window and interval.
pub const MAX_POINTS: usize = 100_000;
/// The most stacks a point records.
pub const MAX_TOP_STACKS: usize = 1000;
/// How many full readings (vmstat, meminfo, status) are kept for the
/// doctor's rate rules: about a minute at the default interval.
const RECENT_READINGS: usize = 13;

/// The sampler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryConfig {
    /// Time between two points (default 5 s, at least [`MIN_INTERVAL`]).
    pub interval: Duration,
    /// How far back points are kept (default 1 hour).
    pub window: Duration,
    /// How many of the largest stacks each point records (default 20, at
    /// most [`MAX_TOP_STACKS`]).
    pub top_stacks: usize,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            interval: DEFAULT_INTERVAL,
            window: DEFAULT_WINDOW,
            top_stacks: DEFAULT_TOP_STACKS,
        }
    }
}

impl HistoryConfig {
    /// Sets the time between two points (raised to [`MIN_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> HistoryConfig {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// Sets how far back points are kept.
    pub fn window(mut self, window: Duration) -> HistoryConfig {
        self.window = window;
        self
    }

    /// Sets how many stacks each point records (at most [`MAX_TOP_STACKS`]).
    pub fn top_stacks(mut self, n: usize) -> HistoryConfig {
        self.top_stacks = n.min(MAX_TOP_STACKS);
        self
    }

    /// How many points the window holds: `window / interval`, rounded up,
    /// from 1 to [`MAX_POINTS`].
    pub fn capacity(&self) -> usize {
        let interval = self.interval.max(MIN_INTERVAL).as_nanos();
        let points = self.window.as_nanos().div_ceil(interval);
        usize::try_from(points)
            .unwrap_or(MAX_POINTS)
            .clamp(1, MAX_POINTS)
    }
}

/// What the sampler itself costs: the time each tick took.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct SamplerCost {
    /// Ticks taken since start.
    pub ticks: u64,
    /// The last tick's time, microseconds.
    pub last_us: u64,
    /// The mean tick time, microseconds.
    pub mean_us: f64,
    /// The longest tick, microseconds.
    pub max_us: u64,
    /// All ticks together, microseconds.
    pub total_us: u64,
}

impl SamplerCost {
    fn add(&mut self, us: u64) {
        self.ticks += 1;
        self.last_us = us;
        self.max_us = self.max_us.max(us);
        self.total_us = self.total_us.saturating_add(us);
        self.mean_us = self.total_us as f64 / self.ticks as f64;
    }
}

/// A summary of the history's state, without the points.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Time between points, milliseconds.
    pub interval_ms: u64,
    /// The span kept, milliseconds.
    pub window_ms: u64,
    /// The most points kept.
    pub capacity: usize,
    /// Points held now.
    pub held_points: usize,
    /// What the sampler costs.
    pub sampler_cost_us: SamplerCost,
    /// Why the points have no allocator figures, if they have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocator_unavailable: Option<String>,
}

struct State {
    config: HistoryConfig,
    /// Bumped by every [`start`], so the thread wakes to a new interval.
    generation: u64,
    points: VecDeque<Point>,
    recent: VecDeque<RecentReading>,
    vmstat: VecDeque<VmstatSample>,
    cost: SamplerCost,
    allocator_unavailable: Option<String>,
    peak: peak::Kept,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
/// Serialises starting, so two racing calls start one thread.
static START: Mutex<bool> = Mutex::new(false);

/// The history's locks while the forking thread holds them across
/// `fork()` (see `crate::fork`): `START`, and the state if it exists.
type HeldForFork = (
    MutexGuard<'static, bool>,
    Option<MutexGuard<'static, State>>,
);

static HELD_ACROSS_FORK: crate::sync::HeldAcrossFork<HeldForFork> =
    crate::sync::HeldAcrossFork::new();

/// Prepare handler: takes `START`, then the state, waiting for their
/// holders (a tick or a reader), who never wait for a lock taken after.
pub(crate) fn prepare_fork() {
    let started = lock(&START);
    let state = SHARED.get().map(|shared| lock(&shared.state));
    HELD_ACROSS_FORK.put((started, state));
}

/// Parent handler: releases both.
pub(crate) fn after_fork_in_parent() {
    drop(HELD_ACROSS_FORK.take());
}

/// Child handler: the sampler's thread is not in the child, so the history
/// counts as not started there (the points taken so far stay, and the next
/// [`start`] or [`ensure_started`] spawns a thread that adds to them);
/// then releases both.
pub(crate) fn after_fork_in_child() {
    if let Some((mut started, state)) = HELD_ACROSS_FORK.take() {
        *started = false;
        drop(state);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent at every await-free step; a panic while
    // holding the lock (there is none) would leave it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle on the running history. Cheap to copy; the history runs for
/// the rest of the process.
#[derive(Clone, Copy)]
pub struct History {
    shared: &'static Shared,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("status", &self.status())
            .finish()
    }
}

/// Starts the sampler with `config`, or, if it runs already, changes its
/// settings (a shorter window drops the oldest points at once).
///
/// # Errors
///
/// The thread could not be spawned.
pub fn start(config: HistoryConfig) -> std::io::Result<History> {
    start_inner(config, true)
}

/// Starts the sampler with the default settings unless it runs already
/// (whose settings are then kept).
///
/// # Errors
///
/// The thread could not be spawned.
pub fn ensure_started() -> std::io::Result<History> {
    start_inner(HistoryConfig::default(), false)
}

/// The profile of the heap at its peak: the highest heap estimate the
/// history sampler has read, re-taken when a new high passes the kept one
/// by [`PeakRule`]'s step (10%, at least 8 MiB). `None` until the sampler
/// runs ([`start`], [`ensure_started`], or `memprof::serve`, which starts
/// it) and has ticked once; the peak is only as fine as the sampler's
/// interval, since the heap is read at each tick.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() -> std::io::Result<()> {
///     memprof::history::ensure_started()?;
///     // ... the program runs, rises and falls ...
///     if let Some(peak) = memprof::peak() {
///         println!(
///             "peak {} bytes at {} ms, highest seen {}",
///             peak.heap_bytes, peak.taken_at_unix_ms, peak.highest_heap_bytes
///         );
///         for stack in peak.snapshot.top(5, memprof::Kind::InuseSpace) {
///             println!("{} {}", stack.estimates.inuse_bytes, stack.site());
///         }
///     }
///     Ok(())
/// }
/// ```
pub fn peak() -> Option<Peak> {
    let shared = SHARED.get()?;
    let state = lock(&shared.state);
    state.peak.get()
}

/// The profiler's heap estimates now, from the stack table's counters
/// (lock-free, no symbolization): what each tick records.
pub(crate) fn heap_figures() -> HeapFigures {
    point::read_heap(0).0
}

/// The running history, if [`start`] or [`ensure_started`] has run.
pub fn get() -> Option<History> {
    crate::fork::register();
    let started = *lock(&START);
    started
        .then(|| SHARED.get().map(|shared| History { shared }))
        .flatten()
}

fn start_inner(config: HistoryConfig, reconfigure: bool) -> std::io::Result<History> {
    let config = HistoryConfig {
        interval: config.interval.max(MIN_INTERVAL),
        top_stacks: config.top_stacks.min(MAX_TOP_STACKS),
        ..config
    };
    crate::fork::register();
    let mut started = lock(&START);
    let shared = SHARED.get_or_init(|| Shared {
        state: Mutex::new(State {
            config: config.clone(),
            generation: 0,
            points: VecDeque::new(),
            recent: VecDeque::new(),
            vmstat: VecDeque::new(),
            cost: SamplerCost::default(),
            allocator_unavailable: None,
            peak: peak::Kept::default(),
        }),
        wake: Condvar::new(),
    });
    let history = History { shared };
    if *started {
        if reconfigure {
            let mut state = lock(&shared.state);
            state.config = config;
            state.generation += 1;
            let capacity = state.config.capacity();
            trim(&mut state.points, capacity);
            drop(state);
            shared.wake.notify_all();
        }
        return Ok(history);
    }
    {
        let mut state = lock(&shared.state);
        state.config = config;
    }
    std::thread::Builder::new()
        .name("memprof-history".to_string())
        .spawn(move || run(shared))?;
    *started = true;
    Ok(history)
}

fn trim<T>(ring: &mut VecDeque<T>, capacity: usize) {
    while ring.len() > capacity {
        ring.pop_front();
    }
}

/// The sampler's loop: a tick, then a wait of one interval (cut short by
/// a new configuration).
fn run(shared: &'static Shared) {
    // The sampler's own allocations are not the program's.
    crate::set_thread_rate(Some(0));
    let rule = PeakRule::default();
    loop {
        let (top_stacks, kept_peak) = {
            let state = lock(&shared.state);
            (state.config.top_stacks, state.peak.heap_bytes())
        };
        let tick = crate::thread_state::unsampled(|| point::read_tick(top_stacks));
        let reading = tick.point.heap.inuse_bytes;
        let new_peak = peak::take_if_higher(&rule, kept_peak, reading);
        let mut state = lock(&shared.state);
        state.peak.update(reading, new_peak);
        state.cost.add(tick.point.cost_us);
        state.allocator_unavailable = tick.allocator_unavailable;
        let capacity = state.config.capacity();
        state.points.push_back(tick.point);
        trim(&mut state.points, capacity);
        state.recent.push_back(tick.recent);
        trim(&mut state.recent, RECENT_READINGS);
        if let Some(sample) = tick.vmstat {
            state.vmstat.push_back(sample);
            trim(&mut state.vmstat, 2);
        }
        let generation = state.generation;
        let deadline = Instant::now() + state.config.interval;
        loop {
            let now = Instant::now();
            if now >= deadline || state.generation != generation {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl History {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// The points taken after `since` (milliseconds since the Unix epoch;
    /// `None`: all), oldest first.
    pub fn points(&self, since: Option<u64>) -> Vec<Point> {
        let state = self.state();
        state
            .points
            .iter()
            .filter(|p| match since {
                Some(s) => p.unix_ms > s,
                None => true,
            })
            .cloned()
            .collect()
    }

    /// The newest point, if any.
    pub fn latest(&self) -> Option<Point> {
        self.state().points.back().cloned()
    }

    /// The settings in force.
    pub fn config(&self) -> HistoryConfig {
        self.state().config.clone()
    }

    /// What the sampler has cost so far.
    pub fn cost(&self) -> SamplerCost {
        self.state().cost
    }

    /// Settings, sizes and cost, without the points.
    pub fn status(&self) -> Status {
        let state = self.state();
        Status {
            interval_ms: u64::try_from(state.config.interval.as_millis()).unwrap_or(u64::MAX),
            window_ms: u64::try_from(state.config.window.as_millis()).unwrap_or(u64::MAX),
            capacity: state.config.capacity(),
            held_points: state.points.len(),
            sampler_cost_us: state.cost,
            allocator_unavailable: state.allocator_unavailable.clone(),
        }
    }

    /// The full readings of the last ticks (about a minute at the default
    /// interval), oldest first, for rules over rates.
    pub fn recent(&self) -> Vec<RecentReading> {
        self.state().recent.iter().cloned().collect()
    }

    /// The leak candidates over the points held: each stack's in-use bytes
    /// over time, and the process's RSS beside the heap (jemalloc's
    /// allocated bytes where jemalloc serves the process, the profiler's
    /// estimate otherwise) to tell growth outside the heap.
    pub fn find_leaks(&self, options: &LeakOptions) -> LeakReport {
        let points = self.points(None);
        let usage: Vec<StackUsage> = points
            .iter()
            .map(|p| StackUsage {
                unix_ms: p.unix_ms,
                stacks: p.stacks.clone(),
            })
            .collect();
        let process: Vec<ProcessPoint> = points
            .iter()
            .filter_map(|p| {
                let rss = p.process.and_then(|f| f.rss_bytes)?;
                let heap = p
                    .allocator
                    .map_or(p.heap.inuse_bytes, |a| a.allocated_bytes as f64);
                Some(ProcessPoint {
                    unix_ms: p.unix_ms,
                    rss_bytes: rss as f64,
                    heap_bytes: heap,
                })
            })
            .collect();
        crate::profile::find_leaks(options, &usage, &process)
    }

    /// vmstat rates between the last two ticks, if there were two.
    pub fn vmstat_rates(&self) -> Option<VmstatRates> {
        let state = self.state();
        let before = state.vmstat.front()?;
        let after = state.vmstat.back()?;
        VmstatRates::from_samples(before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_window_over_interval() {
        assert_eq!(HistoryConfig::default().capacity(), 720);
        let c = HistoryConfig::default()
            .interval(Duration::from_millis(100))
            .window(Duration::from_secs(1));
        assert_eq!(c.capacity(), 10);
        let c = HistoryConfig::default().window(Duration::ZERO);
        assert_eq!(c.capacity(), 1);
        let c = HistoryConfig::default()
            .interval(Duration::ZERO)
            .window(Duration::from_secs(86400 * 365));
        assert_eq!(c.interval, MIN_INTERVAL);
        assert_eq!(c.capacity(), MAX_POINTS);
    }

    #[test]
    fn trim_keeps_the_newest() {
        let mut ring: VecDeque<u32> = (0..10).collect();
        trim(&mut ring, 3);
        assert_eq!(ring, [7, 8, 9]);
    }
}
