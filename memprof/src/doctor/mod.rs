//! The doctor: rules that turn readings into findings, each with the
//! numbers seen, what they mean and what to try.
//!
//! ```no_run
//! let input = memprof::doctor::read_live(
//!     memprof::host::Pid::Current,
//!     std::time::Duration::from_secs(1),
//! );
//! let findings = memprof::doctor::examine(&input);
//! print!("{}", memprof::doctor::render_text(&findings));
//! ```
//!
//! Rules never read files or call the allocator: they look only at a
//! [`DoctorInput`], so they run the same on live readings, on a history of
//! readings, or on readings built by hand in tests. [`read_live`] is the one
//! part that reads (through [`crate::host`] and [`crate::jemalloc`]).
//!
//! Each rule is one type implementing [`Rule`] (see [`rules`]); its doc
//! comment gives its thresholds and their source: Redis's `MEMORY DOCTOR` for
//! the allocator ratios, the kernel's documentation for the host, jemalloc's
//! manual for its settings. Rules over rates (swap, reclaim, growth) compare
//! the first and last readings of [`DoctorInput::series`].

mod finding;
mod input;
mod live;
mod render;
pub mod rules;

pub use self::finding::{Evidence, Finding, Severity, Unit, Value};
pub use self::input::{DoctorInput, PreviousRun, TimedReading};
pub use self::live::{read_live, read_live_with, read_with_history, LiveOptions};
pub use self::render::render_text;
pub use self::rules::Rule;
pub use crate::human::format_bytes;

/// Runs every rule over `input` and returns the findings, most severe first
/// (rules keep their [`rules::all`] order within a severity).
pub fn examine(input: &DoctorInput) -> Vec<Finding> {
    examine_with(input, rules::all())
}

/// Runs the given rules over `input`, most severe findings first.
pub fn examine_with(input: &DoctorInput, rules: &[&dyn Rule]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = rules.iter().filter_map(|r| r.check(input)).collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

#[cfg(test)]
mod tests;
