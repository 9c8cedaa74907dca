//! Profiles built from the samples: snapshots, diffs, leak candidates and
//! growth trends.

pub mod bound;
mod counters;
pub mod diff;
mod folded;
pub mod leaks;
mod merge;
mod site;
pub mod snapshot;
pub mod trend;
mod uncertainty;
pub mod usage;

pub use bound::Bound;
pub use counters::counters;
pub use diff::{Diff, DiffEntry};
pub use leaks::{find_leaks, LeakCandidate, LeakOptions, LeakReport, ProcessPoint};
pub use site::{distinct_sites, program_site};
pub use snapshot::{snapshot, Estimates, Kind, Snapshot, StackProfile, UnknownKind};
pub use trend::Trend;
pub use uncertainty::Uncertainty;
pub use usage::{stack_usage, StackUsage};
