//! Profiles built from the samples: snapshots, diffs, leak candidates and
//! growth trends.

pub(crate) mod bound;
mod by_scope;
mod counters;
pub(crate) mod diff;
mod folded;
pub(crate) mod leaks;
mod merge;
pub(crate) mod scope_path;
mod site;
pub(crate) mod snapshot;
pub(crate) mod trend;
mod uncertainty;
pub(crate) mod usage;

pub use crate::stack::{Frame, Trim};
pub use bound::Bound;
pub use by_scope::{scope_report, ScopeFigures, ScopeReport};
pub use counters::counters;
pub use diff::{Diff, DiffEntry};
pub use leaks::{find_leaks, LeakCandidate, LeakOptions, LeakReport, ProcessPoint};
pub use scope_path::{BadScopeFilter, ScopeFilter, ScopePath, MAX_SCOPE_FILTER_LEN};
#[cfg(feature = "http")]
pub(crate) use site::distinct_sites;
pub use site::program_site;
pub use snapshot::{snapshot, snapshot_with, Estimates, Kind, Snapshot, StackProfile, UnknownKind};
pub use trend::Trend;
pub use uncertainty::Uncertainty;
pub use usage::{stack_usage, StackUsage};
