//! Profiles built from the samples: snapshots, diffs, leak candidates and
//! growth trends.

pub(crate) mod bound;
mod counters;
pub(crate) mod diff;
mod folded;
pub(crate) mod leaks;
mod merge;
mod site;
pub(crate) mod snapshot;
pub(crate) mod trend;
mod uncertainty;
pub(crate) mod usage;

pub use crate::stack::{Frame, Trim};
pub use bound::Bound;
pub use counters::counters;
pub use diff::{Diff, DiffEntry};
pub use leaks::{find_leaks, LeakCandidate, LeakOptions, LeakReport, ProcessPoint};
#[cfg(feature = "http")]
pub(crate) use site::distinct_sites;
pub use site::program_site;
pub use snapshot::{snapshot, snapshot_with, Estimates, Kind, Snapshot, StackProfile, UnknownKind};
pub use trend::Trend;
pub use uncertainty::Uncertainty;
pub use usage::{stack_usage, StackUsage};
