//! Building a [`DoctorInput`] from live readings: the one part of the
//! doctor that reads.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::input::{DoctorInput, TimedReading};
use crate::allocator_reading::AllocatorReading;
use crate::history::{History, RecentReading};
use crate::host::{read_all_with, HostView, Pid, ProcessView, ReadOptions};
use crate::profile::LeakOptions;

/// What [`read_live_with`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveOptions {
    /// The root of /proc and /sys (`/` on a live system).
    pub root: PathBuf,
    /// The process to examine; `None` examines only the host and the cgroup
    /// of this process.
    pub pid: Option<Pid>,
    /// Time between the two readings the rate rules compare; zero takes one
    /// reading, so the rate rules find nothing.
    pub interval: Duration,
    /// Read jemalloc's statistics when the process examined is this one and
    /// jemalloc serves it (default true).
    pub allocator: bool,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            root: PathBuf::from("/"),
            pid: Some(Pid::Current),
            interval: Duration::from_secs(1),
            allocator: true,
        }
    }
}

impl LiveOptions {
    /// Examines `pid` (`None`: the host only).
    pub fn pid(mut self, pid: Option<Pid>) -> LiveOptions {
        self.pid = pid;
        self
    }

    /// Waits `interval` between the two readings.
    pub fn interval(mut self, interval: Duration) -> LiveOptions {
        self.interval = interval;
        self
    }

    /// Reads under `root` instead of `/`.
    pub fn root(mut self, root: impl Into<PathBuf>) -> LiveOptions {
        self.root = root.into();
        self
    }

    /// Whether to read jemalloc's statistics for this process.
    pub fn allocator(mut self, allocator: bool) -> LiveOptions {
        self.allocator = allocator;
        self
    }
}

/// Reads `pid` (and the host and cgroup around it) twice, `interval` apart,
/// with jemalloc's statistics when `pid` is this process and jemalloc serves
/// it. Blocks for `interval`.
pub fn read_live(pid: Pid, interval: Duration) -> DoctorInput {
    read_live_with(&LiveOptions::default().pid(Some(pid)).interval(interval))
}

/// Reads as `options` say; blocks for `options.interval`.
///
/// Nothing here fails: a file that cannot be read becomes an unavailable
/// reading, and the rules that need it find nothing.
pub fn read_live_with(options: &LiveOptions) -> DoctorInput {
    let mut earlier = Vec::new();
    if !options.interval.is_zero() {
        let taken = Instant::now();
        let process = options.pid.map(|p| ProcessView::read(&options.root, p));
        let host = HostView::read(&options.root);
        let (allocated, resident) = allocator_figures(reads_allocator(options));
        earlier.push(
            TimedReading::from_views(taken, process.as_ref(), Some(&host))
                .with_allocator(allocated, resident),
        );
        std::thread::sleep(options.interval);
    }
    read_now(options, earlier)
}

/// What `GET /doctor` examines, without waiting: this process, the host
/// and the cgroup read now with jemalloc's statistics, after the history's
/// recent readings (about a minute of them) as the series for the rules
/// over rates, and the leak candidates over the history's points for the
/// heap-growth rule.
pub fn read_with_history(history: &History) -> DoctorInput {
    let earlier = history.recent().iter().map(TimedReading::from).collect();
    let mut input = read_now(&LiveOptions::default(), earlier);
    input.leaks = Some(history.find_leaks(&LeakOptions::default()));
    input
}

/// Reads as `options` say, once, now, and ends `earlier` (oldest first)
/// with that reading to make the series.
fn read_now(options: &LiveOptions, mut series: Vec<TimedReading>) -> DoctorInput {
    let pid = options.pid.unwrap_or(Pid::Current);
    let taken = Instant::now();
    let overview = read_all_with(&options.root, &ReadOptions::default().pid(pid).top_limit(0));
    let mut input = DoctorInput::from_overview(overview);
    if options.pid.is_none() {
        input.process = None;
    }
    #[cfg(feature = "jemalloc")]
    if reads_allocator(options) {
        let rss = input.status().and_then(|s| s.vm_rss_bytes);
        input.jemalloc = AllocatorReading::read(rss).into_stats();
    }
    let (allocated, resident) = figures_of(&input);
    series.push(
        TimedReading::from_views(taken, input.process.as_ref(), input.host.as_ref())
            .with_allocator(allocated, resident),
    );
    input.series = series;
    input
}

impl From<&RecentReading> for TimedReading {
    /// A reading the history kept, as the rules over rates take it.
    fn from(r: &RecentReading) -> TimedReading {
        TimedReading::new(r.taken)
            .with_status(r.status.clone())
            .with_meminfo(r.meminfo.clone())
            .with_vmstat(r.vmstat.clone())
            .with_allocator(r.allocated_bytes, r.resident_bytes)
    }
}

/// Whether jemalloc's statistics are read: asked for, and the process
/// examined is this one.
fn reads_allocator(options: &LiveOptions) -> bool {
    options.allocator && is_own(options.pid.unwrap_or(Pid::Current))
}

/// Whether `pid` is this process.
fn is_own(pid: Pid) -> bool {
    match pid {
        Pid::Current => true,
        Pid::Id(id) => id == std::process::id(),
    }
}

/// jemalloc's allocated and resident bytes now, if `own` and available.
fn allocator_figures(own: bool) -> (Option<u64>, Option<u64>) {
    if own {
        AllocatorReading::read(None).allocated_and_resident()
    } else {
        (None, None)
    }
}

/// The allocated and resident bytes of the input's jemalloc statistics.
fn figures_of(input: &DoctorInput) -> (Option<u64>, Option<u64>) {
    #[cfg(feature = "jemalloc")]
    if let Some(stats) = input.jemalloc() {
        return (
            Some(stats.totals.allocated_bytes),
            Some(stats.totals.resident_bytes),
        );
    }
    let _ = input;
    (None, None)
}
