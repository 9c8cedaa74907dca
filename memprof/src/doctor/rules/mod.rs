//! The rules: one type per rule, each with its threshold and its source.

use std::time::Duration;

use super::finding::{Evidence, Finding, Severity, Unit};
use super::input::DoctorInput;
use crate::host::VmstatRates;
use crate::human::format_bytes;

mod allocator;
mod cgroup;
mod heap;
mod oom_log;
mod previous_run;
mod process;
mod reclaim;
mod settings;

pub use self::allocator::{
    AllocatorFragmentation, AllocatorRssOverhead, AnonGrowthOutsideHeap, RetainedAddressSpace,
    RssOutsideAllocator,
};
pub use self::cgroup::{CgroupNearLimit, OomKills};
pub use self::heap::HeapGrowth;
pub use self::oom_log::OomKillLogged;
pub use self::previous_run::PreviousRunKilled;
pub use self::process::{PostPeakRetention, SwapActivity};
pub use self::reclaim::{HighOrderDepletion, KernelSlabGrowth, ReclaimPressure};
#[cfg(test)]
pub(crate) use self::settings::default_min_free_kib;
pub use self::settings::{LowMinFreeKbytes, Overcommit, ThpPolicy};

/// A rule: looks at the readings and reports at most one finding.
///
/// Rules never read files or call the allocator; everything they look at is
/// in the [`DoctorInput`]. A rule whose readings are missing finds nothing.
pub trait Rule: Sync {
    /// The stable id of the rule, also the `rule` of its findings
    /// (`allocator-fragmentation`).
    fn id(&self) -> &'static str;

    /// Looks at the readings; `None` when all is well (or nothing to look
    /// at).
    fn check(&self, input: &DoctorInput) -> Option<Finding>;
}

/// Every rule, in the order their findings are listed within one severity.
pub fn all() -> &'static [&'static dyn Rule] {
    &[
        &CgroupNearLimit,
        &OomKills,
        &OomKillLogged,
        &PreviousRunKilled,
        &ReclaimPressure,
        &SwapActivity,
        &HeapGrowth,
        &AllocatorFragmentation,
        &AllocatorRssOverhead,
        &RssOutsideAllocator,
        &AnonGrowthOutsideHeap,
        &PostPeakRetention,
        &RetainedAddressSpace,
        &KernelSlabGrowth,
        &HighOrderDepletion,
        &Overcommit,
        &LowMinFreeKbytes,
        &ThpPolicy,
    ]
}

const MIB: u64 = 1 << 20;

/// Builds a finding.
fn finding(
    rule: &'static str,
    severity: Severity,
    title: String,
    evidence: Vec<Evidence>,
    meaning: String,
    advice: String,
) -> Finding {
    Finding {
        rule,
        severity,
        title,
        evidence,
        meaning,
        advice,
    }
}

/// `part / whole` as a percentage; 0 when `whole` is 0.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A percentage evidence.
fn pct(name: &str, value: f64) -> Evidence {
    Evidence::number(name, value, Unit::Percent)
}

/// vmstat rates between the first and the last reading of the series that
/// have vmstat counters.
fn vmstat_rates(input: &DoctorInput) -> Option<VmstatRates> {
    let (first, last, seconds) =
        input.span(|r| r.vmstat.as_ref().map(|v| (v, r.page_size_bytes)))?;
    VmstatRates::between(first.0, last.0, Duration::from_secs_f64(seconds), last.1)
}

/// `bytes` as `12.0 MiB` (for titles and meanings).
fn b(bytes: u64) -> String {
    format_bytes(bytes)
}
