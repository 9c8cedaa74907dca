//! The flight recorder's settings ([`DumpSettings`]): from the
//! `MEMPROF_DUMP_*` variables, or given in code through
//! [`crate::Config::dumps`], which wins whenever it is made.
//!
//! These are read off the allocator path (when the dump watcher starts and
//! at each of its ticks), so they are read with std and kept behind a
//! mutex; the environment is read once.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::env::{self, Var};
use super::values::{self, DumpSignal};

/// Where and when dumps are written, and how many are kept.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let settings = memprof::config::DumpSettings::from_env()
///     .dir("/var/lib/myservice/memprof")
///     .min_interval(Duration::from_secs(120))
///     .build_version(env!("CARGO_PKG_VERSION"));
/// assert_eq!(settings.keep, 20);
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct DumpSettings {
    /// The directory dumps go to; `None`: no dumps (the default).
    pub dir: Option<PathBuf>,
    /// The share of the previous high a `peak` dump's reading must pass it
    /// by (default 0.10).
    pub peak_margin: f64,
    /// The smallest step in bytes a `peak` dump's reading must pass the
    /// previous high by (default 64 MiB).
    pub peak_floor_bytes: u64,
    /// The shortest time between two `peak` dumps (default 60 s).
    pub min_interval: Duration,
    /// The shares of the memory limit, in percent, at which a `limit` dump
    /// is written, each once per climb (default 80, 90, 95).
    pub limit_thresholds_percent: Vec<u8>,
    /// The most dumps kept in the directory (default 20).
    pub keep: usize,
    /// The most bytes the dumps in the directory take together (default
    /// 256 MiB).
    pub max_bytes: u64,
    /// Whether a dump is written when the program exits normally (default
    /// off; see `memprof::dump::ExitGuard`).
    pub on_exit: bool,
    /// The signal that asks for a dump; `None` (the default): none is
    /// handled.
    pub signal: Option<DumpSignal>,
    /// A build or version string written in each summary.
    pub build_version: Option<String>,
}

impl Default for DumpSettings {
    fn default() -> DumpSettings {
        DumpSettings {
            dir: None,
            peak_margin: values::DEFAULT_DUMP_PEAK_MARGIN,
            peak_floor_bytes: values::DEFAULT_DUMP_PEAK_FLOOR_BYTES,
            min_interval: Duration::from_secs(values::DEFAULT_DUMP_MIN_INTERVAL_SECONDS),
            limit_thresholds_percent: values::DEFAULT_DUMP_LIMIT_THRESHOLDS.to_vec(),
            keep: values::DEFAULT_DUMP_KEEP,
            max_bytes: values::DEFAULT_DUMP_MAX_BYTES,
            on_exit: false,
            signal: None,
            build_version: None,
        }
    }
}

impl DumpSettings {
    /// The defaults, with each `MEMPROF_DUMP_*` variable that is set and
    /// valid applied (a bad value keeps the default, and is said on stderr
    /// and in `/stats`). Reads the environment each call.
    pub fn from_env() -> DumpSettings {
        let mut s = DumpSettings::default();
        if let Some(dir) = env::read_std(Var::DumpDir, |bytes| {
            use std::os::unix::ffi::OsStrExt;
            Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
        }) {
            s.dir = Some(dir);
        }
        if let Some(margin) = env::read_std(Var::DumpMargin, values::percentage) {
            s.peak_margin = margin;
        }
        if let Some(floor) = env::read_std(Var::DumpFloor, values::size) {
            s.peak_floor_bytes = floor;
        }
        if let Some(secs) = env::read_std(Var::DumpInterval, values::seconds) {
            s.min_interval = Duration::from_secs(secs);
        }
        if let Some(t) = env::read_std(Var::DumpThresholds, values::thresholds) {
            s.limit_thresholds_percent = t;
        }
        if let Some(keep) = env::read_std(Var::DumpKeep, values::cap) {
            s.keep = keep;
        }
        if let Some(bytes) = env::read_std(Var::DumpMaxBytes, values::size) {
            s.max_bytes = bytes.max(1);
        }
        if let Some(on) = env::read_std(Var::DumpOnExit, values::boolean) {
            s.on_exit = on;
        }
        if let Some(signal) = env::read_std(Var::DumpSignal, values::signal) {
            s.signal = Some(signal);
        }
        s
    }

    /// Writes dumps to `dir`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> DumpSettings {
        self.dir = Some(dir.into());
        self
    }

    /// Writes no dumps.
    pub fn no_dir(mut self) -> DumpSettings {
        self.dir = None;
        self
    }

    /// The `peak` trigger's margin (a share: 0.10 for 10%) and floor.
    pub fn peak_step(mut self, margin: f64, floor_bytes: u64) -> DumpSettings {
        self.peak_margin = if margin.is_finite() {
            margin.max(0.0)
        } else {
            0.0
        };
        self.peak_floor_bytes = floor_bytes;
        self
    }

    /// The shortest time between two `peak` dumps.
    pub fn min_interval(mut self, interval: Duration) -> DumpSettings {
        self.min_interval = interval;
        self
    }

    /// The `limit` trigger's thresholds, in percent of the limit (values
    /// outside 1 to 100 are left out; at most 8 are kept).
    pub fn limit_thresholds(mut self, percent: &[u8]) -> DumpSettings {
        let mut t: Vec<u8> = percent
            .iter()
            .copied()
            .filter(|p| (1..=100).contains(p))
            .collect();
        t.sort_unstable();
        t.dedup();
        t.truncate(values::MAX_DUMP_THRESHOLDS);
        self.limit_thresholds_percent = t;
        self
    }

    /// The most dumps (at least 1) and bytes (at least 1) kept.
    pub fn retention(mut self, keep: usize, max_bytes: u64) -> DumpSettings {
        self.keep = keep.max(1);
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// Whether a dump is written at normal exit.
    pub fn on_exit(mut self, on: bool) -> DumpSettings {
        self.on_exit = on;
        self
    }

    /// The signal that asks for a dump (`None`: none).
    pub fn signal(mut self, signal: Option<DumpSignal>) -> DumpSettings {
        self.signal = signal;
        self
    }

    /// A build or version string for each summary.
    pub fn build_version(mut self, version: impl Into<String>) -> DumpSettings {
        self.build_version = Some(version.into());
        self
    }
}

/// The settings code gave, if any.
static FROM_CODE: Mutex<Option<DumpSettings>> = Mutex::new(None);
/// The environment's, read once.
static FROM_ENV: OnceLock<DumpSettings> = OnceLock::new();

/// Sets the dump settings from code; they win over the environment.
pub(crate) fn set(settings: DumpSettings) {
    *FROM_CODE.lock().unwrap_or_else(PoisonError::into_inner) = Some(settings);
}

/// The dump settings in effect: code's, or the environment's.
pub(crate) fn current() -> DumpSettings {
    if let Some(code) = FROM_CODE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        return code;
    }
    FROM_ENV.get_or_init(DumpSettings::from_env).clone()
}
