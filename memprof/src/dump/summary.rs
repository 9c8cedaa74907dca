//! `summary.json`: what an SRE reads first after the kill, without the
//! binary: why and when the dump was written, by which process, the heap,
//! the allocator, the process, its cgroup and the host, the doctor's
//! findings, and the largest stacks and leak candidates with their stacks
//! as text.
//!
//! The same type reads it back (for `/dumps` and the previous run), every
//! field defaulted, so an older or newer summary still lists.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::allocator_reading::AllocatorReading;
use crate::doctor::DoctorInput;
use crate::history::History;
use crate::host::{CgroupMemory, CgroupView, Limit};
use crate::profile::{Kind, LeakOptions, Snapshot};
use crate::stack::{frame_role, Frame, FrameRole};

/// What `format` holds in every summary memprof writes.
pub(crate) const FORMAT: &str = "memprof-dump";
/// The summary's version.
pub(crate) const VERSION: u32 = 1;
/// How many of the largest stacks a summary lists.
const TOP_STACKS: usize = 10;
/// How many leak candidates a summary lists.
const TOP_LEAKS: usize = 5;

/// A dump's `summary.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Summary {
    pub(crate) format: String,
    pub(crate) version: u32,
    pub(crate) id: String,
    pub(crate) trigger: String,
    pub(crate) detail: String,
    pub(crate) time_unix: u64,
    pub(crate) time_unix_ms: u64,
    pub(crate) time_utc: String,
    pub(crate) pid: u32,
    pub(crate) comm: Option<String>,
    pub(crate) build_version: Option<String>,
    pub(crate) memprof_version: String,
    pub(crate) rate: u64,
    /// The profiler's heap estimates (in-use and allocated bytes and
    /// objects).
    pub(crate) heap: HeapSummary,
    pub(crate) heap_bytes: f64,
    /// How fast the heap estimate grew over the history's points, bytes a
    /// second; `None` without two points.
    pub(crate) heap_growth_bytes_per_second: Option<f64>,
    pub(crate) stacks: usize,
    /// jemalloc's totals and ratios (`/stats`' `allocator`), or `null`.
    pub(crate) allocator: serde_json::Value,
    pub(crate) allocator_unavailable: Option<String>,
    pub(crate) process: ProcessSummary,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) cgroup: Option<CgroupSummary>,
    pub(crate) cgroup_usage_bytes: Option<u64>,
    pub(crate) cgroup_limit_bytes: Option<u64>,
    pub(crate) host: HostSummary,
    /// The doctor's findings, as `/doctor` answers them.
    pub(crate) findings: Vec<serde_json::Value>,
    pub(crate) top_stacks: Vec<StackSummary>,
    pub(crate) leak_candidates: Vec<LeakSummary>,
}

/// The heap estimates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct HeapSummary {
    pub(crate) inuse_bytes: f64,
    pub(crate) inuse_objects: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) alloc_objects: f64,
}

/// The process's memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ProcessSummary {
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) rss_anon_bytes: Option<u64>,
    pub(crate) swap_bytes: Option<u64>,
    pub(crate) pss_bytes: Option<u64>,
}

/// The memory cgroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CgroupSummary {
    pub(crate) path: String,
    pub(crate) version: String,
    pub(crate) usage_bytes: Option<u64>,
    pub(crate) working_set_bytes: Option<u64>,
    pub(crate) limit_bytes: Option<u64>,
    /// v2 `memory.events` or v1 `memory.oom_control`, as read.
    pub(crate) events: serde_json::Value,
}

/// The host's memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct HostSummary {
    pub(crate) mem_total_bytes: Option<u64>,
    pub(crate) mem_available_bytes: Option<u64>,
    /// `/proc/pressure/memory`, as read.
    pub(crate) pressure: serde_json::Value,
}

/// One of the largest stacks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct StackSummary {
    pub(crate) inuse_bytes: f64,
    pub(crate) inuse_objects: f64,
    /// The first frame in the program's own code.
    pub(crate) function: String,
    pub(crate) site: String,
    /// Leaf first, `function (file:line)`.
    pub(crate) frames: Vec<String>,
}

/// One leak candidate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct LeakSummary {
    pub(crate) site: String,
    pub(crate) function: String,
    pub(crate) inuse_bytes: f64,
    pub(crate) growth_bytes_per_second: f64,
    pub(crate) oldest_age_seconds: f64,
    pub(crate) summary: String,
    pub(crate) frames: Vec<String>,
}

/// What a summary is built from, besides the snapshot.
pub(crate) struct Context<'a> {
    pub(crate) id: &'a str,
    pub(crate) trigger: &'a str,
    pub(crate) detail: &'a str,
    pub(crate) build_version: Option<&'a str>,
}

/// Builds the summary of a dump from the snapshot, the doctor's readings
/// (which hold the process, host and cgroup readings) and the history.
pub(crate) fn build(
    cx: &Context<'_>,
    snapshot: &Snapshot,
    input: &DoctorInput,
    history: Option<&History>,
) -> Summary {
    let time_unix_ms = snapshot.taken_at_unix_ms;
    let status = input.process.as_ref().and_then(|p| p.status.value());
    let smaps = input.process.as_ref().and_then(|p| p.smaps_rollup.value());
    let process = ProcessSummary {
        rss_bytes: status.and_then(|s| s.vm_rss_bytes),
        rss_anon_bytes: status.and_then(|s| s.rss_anon_bytes),
        swap_bytes: status.and_then(|s| s.vm_swap_bytes),
        pss_bytes: smaps.and_then(|s| s.pss_bytes),
    };
    let (allocator, allocator_unavailable) = match AllocatorReading::read(process.rss_bytes) {
        #[cfg(feature = "jemalloc")]
        AllocatorReading::Stats(stats) => (
            serde_json::to_value(crate::export::stats::AllocatorStats::of(&stats))
                .unwrap_or_default(),
            None,
        ),
        AllocatorReading::Unavailable(why) => (serde_json::Value::Null, Some(why)),
    };
    let cgroup = input
        .cgroup
        .as_ref()
        .and_then(|c| c.value())
        .map(cgroup_summary);
    let meminfo = input.meminfo();
    let host = HostSummary {
        mem_total_bytes: meminfo.and_then(|m| m.mem_total_bytes),
        mem_available_bytes: meminfo.and_then(|m| m.mem_available_bytes),
        pressure: input
            .host
            .as_ref()
            .and_then(|h| h.pressure.value())
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or_default(),
    };
    let findings = crate::doctor::examine(input)
        .iter()
        .filter_map(|f| serde_json::to_value(f).ok())
        .collect();
    let top_stacks = snapshot
        .top(TOP_STACKS, Kind::InuseSpace)
        .into_iter()
        .map(|s| StackSummary {
            inuse_bytes: s.estimates.inuse_bytes,
            inuse_objects: s.estimates.inuse_objects,
            function: leading_function(&s.frames),
            site: s.site(),
            frames: frames_text(&s.frames),
        })
        .collect();
    let leak_candidates = match (&input.leaks, history) {
        (Some(report), _) => leak_summaries(report),
        (None, Some(h)) => leak_summaries(&h.find_leaks(&LeakOptions::default())),
        (None, None) => Vec::new(),
    };
    let heap = HeapSummary {
        inuse_bytes: snapshot.totals.inuse_bytes,
        inuse_objects: snapshot.totals.inuse_objects,
        alloc_bytes: snapshot.totals.alloc_bytes,
        alloc_objects: snapshot.totals.alloc_objects,
    };
    Summary {
        format: FORMAT.to_owned(),
        version: VERSION,
        id: cx.id.to_owned(),
        trigger: cx.trigger.to_owned(),
        detail: cx.detail.to_owned(),
        time_unix: time_unix_ms / 1000,
        time_unix_ms,
        time_utc: super::id::utc_iso(time_unix_ms / 1000),
        pid: std::process::id(),
        comm: status.and_then(|s| s.name.clone()),
        build_version: cx.build_version.map(str::to_owned),
        memprof_version: env!("CARGO_PKG_VERSION").to_owned(),
        rate: snapshot.rate,
        heap_bytes: heap.inuse_bytes,
        heap,
        heap_growth_bytes_per_second: history.and_then(heap_growth),
        stacks: snapshot.stacks.len(),
        allocator,
        allocator_unavailable,
        rss_bytes: process.rss_bytes,
        process,
        cgroup_usage_bytes: cgroup.as_ref().and_then(|c| c.usage_bytes),
        cgroup_limit_bytes: cgroup.as_ref().and_then(|c| c.limit_bytes),
        cgroup,
        host,
        findings,
        top_stacks,
        leak_candidates,
    }
}

fn cgroup_summary(view: &CgroupView) -> CgroupSummary {
    let bytes = |l: Option<&Limit>| match l {
        Some(Limit::Bytes(b)) => Some(*b),
        _ => None,
    };
    match &view.memory {
        CgroupMemory::V1(m) => CgroupSummary {
            path: view.location.path.clone(),
            version: "v1".to_owned(),
            usage_bytes: m.usage_bytes.value().copied(),
            working_set_bytes: m.working_set_bytes.value().copied(),
            limit_bytes: bytes(m.limit_bytes.value()),
            events: m
                .oom_control
                .value()
                .and_then(|o| serde_json::to_value(o).ok())
                .unwrap_or_default(),
        },
        CgroupMemory::V2(m) => CgroupSummary {
            path: view.location.path.clone(),
            version: "v2".to_owned(),
            usage_bytes: m.current_bytes.value().copied(),
            working_set_bytes: m.working_set_bytes.value().copied(),
            limit_bytes: bytes(m.max_bytes.value()),
            events: m
                .events
                .value()
                .and_then(|e| serde_json::to_value(e).ok())
                .unwrap_or_default(),
        },
    }
}

/// The first frame in the program's own code, without generic arguments;
/// the leaf's when none is.
pub(crate) fn leading_function(frames: &[Arc<Frame>]) -> String {
    let site = crate::profile::program_site(frames);
    let first = site.split(" <- ").next().unwrap_or_default();
    let function = first.split(" (").next().unwrap_or_default();
    if function.is_empty() {
        frames
            .iter()
            .find(|f| frame_role(f) == FrameRole::Program)
            .or(frames.first())
            .map(|f| f.function.clone())
            .unwrap_or_default()
    } else {
        function.to_owned()
    }
}

fn frames_text(frames: &[Arc<Frame>]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{} ({file}:{line})", f.function),
            _ => f.function.clone(),
        })
        .collect()
}

fn leak_summaries(report: &crate::profile::LeakReport) -> Vec<LeakSummary> {
    report
        .candidates
        .iter()
        .take(TOP_LEAKS)
        .map(|c| LeakSummary {
            site: c.site.clone(),
            function: leading_function(&c.frames),
            inuse_bytes: c.inuse_bytes,
            growth_bytes_per_second: c.growth_bytes_per_second,
            oldest_age_seconds: c.oldest_age_seconds,
            summary: c.summary.clone(),
            frames: frames_text(&c.frames),
        })
        .collect()
}

/// The heap estimate's growth over the history's points (up to the last
/// five minutes), bytes a second.
fn heap_growth(history: &History) -> Option<f64> {
    let points = history.points(None);
    let last = points.last()?;
    let since = last.unix_ms.saturating_sub(300_000);
    let first = points.iter().find(|p| p.unix_ms >= since)?;
    let seconds = (last.unix_ms.checked_sub(first.unix_ms)? as f64) / 1000.0;
    (seconds >= 1.0).then(|| (last.heap.inuse_bytes - first.heap.inuse_bytes) / seconds)
}
