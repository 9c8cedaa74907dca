//! Output formats: folded stacks, SVG flamegraphs, pprof, Prometheus text, JSON.
//!
//! Everything here writes to any [`std::io::Write`] and knows nothing about
//! HTTP; the endpoint in [`crate::http`] only picks a writer and a content
//! type.
//!
//! | format | entry point |
//! | --- | --- |
//! | folded stacks | [`Snapshot::write_folded`](crate::Snapshot::write_folded), [`Diff::write_folded_pair`](crate::profile::Diff::write_folded_pair) |
//! | SVG flamegraph | [`flamegraph::write_flamegraph`], [`flamegraph::write_differential_flamegraph`] (feature `export`) |
//! | pprof (gzipped profile.proto) | [`pprof::write_pprof`] (feature `export`) |
//! | reading pprof or folded files | [`profile_file::read_profile_file`] (feature `export`) |
//! | Prometheus text | [`prometheus::MetricsWriter`], [`prometheus::write_profiler_metrics`] |
//! | JSON | [`Snapshot::save`](crate::Snapshot::save), [`stats::Stats`] (serde) |
//!
//! [`delta::delta_snapshot`] turns a [`Diff`](crate::profile::Diff) into a
//! snapshot of the changes, so a delta over an interval can be written in
//! any of the formats above.

pub mod delta;
#[cfg(feature = "export")]
pub mod flamegraph;
#[cfg(feature = "export")]
pub mod pprof;
#[cfg(feature = "export")]
pub mod profile_file;
pub mod prometheus;
#[cfg(feature = "export")]
pub(crate) mod short_names;
pub mod stats;
