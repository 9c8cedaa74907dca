//! Profiles built from the samples: snapshots, and (later parts) diffs,
//! leak candidates and growth trends.

pub mod diff;
pub mod snapshot;

pub use diff::{Diff, DiffEntry};
pub use snapshot::{snapshot, Estimates, Kind, Snapshot, StackProfile, UnknownKind};
