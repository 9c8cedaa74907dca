//! The JSON document behind `/stats`: the profiler's own figures, with the
//! allocator's totals and ratios and the process's memory beside them.
//!
//! Readings that may be missing are optional fields (`null` in JSON), so a
//! client written against an older document keeps working.

use serde::Serialize;

use crate::config::EnvState;
use crate::history::ProcessFigures;
#[cfg(feature = "jemalloc")]
use crate::jemalloc::{JemallocStats, PageCounts, Ratios, Totals};
use crate::profile::{Estimates, Snapshot};
use crate::sample::SamplerCounters;
use crate::scope::{ScopeRegistryStats, ScopeStats};
use crate::settings::Settings;

/// The profiler's figures at one moment.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// When the figures were read, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// The global sampling rate in bytes (0: off, 1: every allocation).
    pub rate: u64,
    /// How `MEMPROF_RATE` was taken (`unset`, `applied`, `invalid`, ...);
    /// as `config.env.MEMPROF_RATE`.
    pub rate_env: EnvState,
    /// `MEMPROF_RATE`'s value when it is set (the first 64 bytes; anything
    /// but printable ASCII as `?`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_env_value: Option<String>,
    /// Why `MEMPROF_RATE` was refused, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_env_error: Option<&'static str>,
    /// The settings in effect, and how each `MEMPROF_*` variable was read
    /// (a bad value is `invalid`, with the value and why).
    pub config: Settings,
    /// What the sampler did and dropped, and its own memory.
    pub sampler: SamplerCounters,
    /// The stack walker in use (frame pointers, framehop, backtrace).
    pub unwinder: crate::stack::Unwinder,
    /// Heap estimates summed over all stacks.
    pub heap: Estimates,
    /// Figures for every scope entered so far.
    pub scopes: Vec<ScopeStats>,
    /// The scope registry: how full it is, entries it could not hold, the
    /// runtime names' arena, and each label key's values and overflow.
    pub scope_registry: ScopeRegistryStats,
    /// jemalloc's totals and ratios; `None` when jemalloc does not serve
    /// the process (see `allocator_unavailable`).
    #[cfg(feature = "jemalloc")]
    pub allocator: Option<AllocatorStats>,
    /// Why `allocator` is `None`, if it is.
    pub allocator_unavailable: Option<String>,
    /// The process's memory (`VmRSS`, `RssAnon`, `VmSwap`, PSS); `None`
    /// when `/proc/self/status` cannot be read.
    pub process: Option<ProcessFigures>,
}

/// jemalloc's totals, ratios and unused pages, from one reading.
#[cfg(feature = "jemalloc")]
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct AllocatorStats {
    /// Totals in bytes.
    pub totals: Totals,
    /// Redis-style ratios over the totals.
    pub ratios: Ratios,
    /// Dirty and muzzy pages.
    pub pages: PageCounts,
}

#[cfg(feature = "jemalloc")]
impl AllocatorStats {
    /// The summary of a full reading.
    pub fn of(stats: &JemallocStats) -> AllocatorStats {
        AllocatorStats {
            totals: stats.totals,
            ratios: stats.ratios,
            pages: stats.pages,
        }
    }
}

impl Stats {
    /// Reads the figures, taking the heap totals from `snapshot`; the
    /// allocator and process fields start empty (see the `with_*` methods).
    pub fn from_snapshot(snapshot: &Snapshot) -> Stats {
        let config = crate::settings::settings();
        let rate_env = config.env.get("MEMPROF_RATE").cloned();
        Stats {
            taken_at_unix_ms: snapshot.taken_at_unix_ms,
            rate: snapshot.rate,
            rate_env: rate_env.as_ref().map_or(EnvState::Unread, |r| r.state),
            rate_env_value: rate_env.as_ref().and_then(|r| r.value.clone()),
            rate_env_error: rate_env.and_then(|r| r.error),
            config,
            sampler: snapshot.counters,
            unwinder: crate::stack::unwinder(),
            heap: snapshot.totals,
            scopes: crate::scope::scopes(),
            scope_registry: crate::scope::registry_stats(),
            #[cfg(feature = "jemalloc")]
            allocator: None,
            allocator_unavailable: None,
            process: None,
        }
    }

    /// Adds jemalloc's reading, or why there is none.
    #[cfg(feature = "jemalloc")]
    pub fn with_allocator(
        mut self,
        reading: Result<&JemallocStats, &crate::jemalloc::Unavailable>,
    ) -> Stats {
        match reading {
            Ok(stats) => {
                self.allocator = Some(AllocatorStats::of(stats));
                self.allocator_unavailable = None;
            }
            Err(why) => {
                self.allocator = None;
                self.allocator_unavailable = Some(why.to_string());
            }
        }
        self
    }

    /// Says why there are no allocator figures.
    pub fn without_allocator(mut self, why: impl Into<String>) -> Stats {
        #[cfg(feature = "jemalloc")]
        {
            self.allocator = None;
        }
        self.allocator_unavailable = Some(why.into());
        self
    }

    /// Adds the process's memory.
    pub fn with_process(mut self, process: Option<ProcessFigures>) -> Stats {
        self.process = process;
        self
    }
}
