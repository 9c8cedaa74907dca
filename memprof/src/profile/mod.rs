//! Profiles built from the samples: snapshots, and (later parts) diffs,
//! leak candidates and growth trends.

pub mod snapshot;

pub use snapshot::{snapshot, Estimates, Kind, Snapshot, StackProfile, UnknownKind};
