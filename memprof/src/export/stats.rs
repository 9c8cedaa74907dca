//! The JSON document behind `/stats`: the profiler's own figures.
//!
//! Other readings (allocator totals, process and cgroup memory) join it as
//! new optional fields, so a client written against today's document keeps
//! working.

use serde::Serialize;

use crate::profile::{Estimates, Snapshot};
use crate::sample::rate::EnvRate;
use crate::sample::SamplerCounters;
use crate::scope::ScopeStats;

/// The profiler's figures at one moment.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// When the figures were read, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// The global sampling rate in bytes (0: off, 1: every allocation).
    pub rate: u64,
    /// How `MEMPROF_RATE` was taken (`unset`, `applied`, `invalid`, ...).
    pub rate_env: EnvRate,
    /// What the sampler did and dropped, and its own memory.
    pub sampler: SamplerCounters,
    /// Heap estimates summed over all stacks.
    pub heap: Estimates,
    /// Figures for every scope entered so far.
    pub scopes: Vec<ScopeStats>,
}

impl Stats {
    /// Reads the figures, taking the heap totals from `snapshot`.
    pub fn from_snapshot(snapshot: &Snapshot) -> Stats {
        Stats {
            taken_at_unix_ms: snapshot.taken_at_unix_ms,
            rate: snapshot.rate,
            rate_env: crate::sample::rate::env_rate_state(),
            sampler: snapshot.counters,
            heap: snapshot.totals,
            scopes: crate::scope::scopes(),
        }
    }
}
