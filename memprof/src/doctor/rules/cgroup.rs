//! Rules over the process's memory cgroup: its limit, and OOM kills.

use super::{b, finding, pct, percent, vmstat_rates, Rule};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::DoctorInput;
use crate::host::{CgroupMemory, Limit};

/// The cgroup near its limit.
///
/// The working set is usage minus inactive file pages (what Kubernetes
/// evicts on, `container_memory_working_set_bytes`); page cache above it is
/// reclaimed before anything is killed. Against the lower of `memory.max`
/// and `memory.high` (cgroup v2, Documentation/admin-guide/cgroup-v2.rst) or
/// `memory.limit_in_bytes` (v1):
///
/// * working set >= **97 %** of the limit: **critical** (the OOM killer or
///   throttling is next);
/// * working set >= **90 %**: **warning**;
/// * usage >= **90 %** with a working set below: **information** (page cache
///   fills the rest, which is normal and reclaimable).
#[derive(Debug, Clone, Copy, Default)]
pub struct CgroupNearLimit;

const LIMIT_WARN_PERCENT: f64 = 90.0;
const LIMIT_CRITICAL_PERCENT: f64 = 97.0;

impl Rule for CgroupNearLimit {
    fn id(&self) -> &'static str {
        "cgroup-near-limit"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let view = input.cgroup_view()?;
        let (limit_name, limit, usage, working_set) = match &view.memory {
            CgroupMemory::V2(m) => {
                let max = m.max_bytes.value().and_then(|l| l.bytes());
                let high = m.high_bytes.value().and_then(|l| l.bytes());
                let (name, limit) = match (max, high) {
                    (Some(max), Some(high)) if high < max => ("memory.high", high),
                    (Some(max), _) => ("memory.max", max),
                    (None, Some(high)) => ("memory.high", high),
                    (None, None) => return None,
                };
                (
                    name,
                    limit,
                    *m.current_bytes.value()?,
                    m.working_set_bytes.value().copied(),
                )
            }
            CgroupMemory::V1(m) => {
                let limit = match m.limit_bytes.value()? {
                    Limit::Bytes(bytes) => *bytes,
                    Limit::Unlimited => return None,
                };
                (
                    "memory.limit_in_bytes",
                    limit,
                    *m.usage_bytes.value()?,
                    m.working_set_bytes.value().copied(),
                )
            }
        };
        if limit == 0 {
            return None;
        }
        let usage_pct = percent(usage, limit);
        let ws_pct = working_set.map(|ws| percent(ws, limit));
        let pressing = ws_pct.unwrap_or(usage_pct);
        let severity = if pressing >= LIMIT_CRITICAL_PERCENT {
            Severity::Critical
        } else if pressing >= LIMIT_WARN_PERCENT {
            Severity::Warning
        } else if usage_pct >= LIMIT_WARN_PERCENT {
            Severity::Info
        } else {
            return None;
        };
        let mut evidence = vec![
            Evidence::bytes(limit_name, limit),
            Evidence::bytes("usage", usage),
            pct("usage_of_limit", usage_pct),
        ];
        if let (Some(ws), Some(p)) = (working_set, ws_pct) {
            evidence.push(Evidence::bytes("working_set", ws));
            evidence.push(pct("working_set_of_limit", p));
        }
        let path = &view.location.path;
        let (title, meaning) = if severity == Severity::Info {
            (
                format!("cgroup {path} is at {usage_pct:.0} % of its limit, mostly page cache"),
                format!(
                    "Usage is {} of a {} limit, but the working set is lower: the rest is \
                     inactive page cache, which the kernel reclaims before it kills anything.",
                    b(usage),
                    b(limit)
                ),
            )
        } else {
            (
                format!(
                    "cgroup {path} working set is at {pressing:.0} % of its {} limit",
                    b(limit)
                ),
                format!(
                    "Memory the group actively uses is close to {limit_name}. Past \
                     memory.high the kernel throttles and reclaims hard; at memory.max (or \
                     the v1 limit) it OOM-kills a process of the group."
                ),
            )
        };
        Some(finding(
            self.id(),
            severity,
            title,
            evidence,
            meaning,
            "Raise the limit if the workload needs it, or reduce what it holds: see the \
             allocator findings, memprof top, and GET /debug/memprof/heap for what the \
             process keeps."
                .to_owned(),
        ))
    }
}

/// OOM kills: the OOM killer has run in the process's cgroup, or on the host
/// during the series.
///
/// **Critical** when cgroup v2 `memory.events` `oom_kill` is above 0 (since
/// the group was created; cgroup-v2.rst), when v1 `memory.oom_control`
/// shows `oom_kill` above 0 or `under_oom` 1, or when the host's `oom_kill`
/// counter in `/proc/vmstat` rose during the series. A **warning** when only
/// `memory.events` `max` is above 0: usage reached `memory.max` and the
/// kernel had to reclaim to stay under it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OomKills;

impl Rule for OomKills {
    fn id(&self) -> &'static str {
        "oom-kills"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let mut evidence = Vec::new();
        let mut cgroup_kills = 0u64;
        let mut under_oom = false;
        let mut max_events = 0u64;
        if let Some(view) = input.cgroup_view() {
            match &view.memory {
                CgroupMemory::V2(m) => {
                    if let Some(events) = m.events.value() {
                        cgroup_kills = events.oom_kill.unwrap_or(0);
                        max_events = events.max.unwrap_or(0);
                        evidence.push(Evidence::number(
                            "memory.events oom_kill",
                            cgroup_kills as f64,
                            Unit::Count,
                        ));
                        evidence.push(Evidence::number(
                            "memory.events oom",
                            events.oom.unwrap_or(0) as f64,
                            Unit::Count,
                        ));
                        evidence.push(Evidence::number(
                            "memory.events max",
                            max_events as f64,
                            Unit::Count,
                        ));
                    }
                }
                CgroupMemory::V1(m) => {
                    if let Some(oom) = m.oom_control.value() {
                        cgroup_kills = oom.oom_kill.unwrap_or(0);
                        under_oom = oom.under_oom;
                        evidence.push(Evidence::number(
                            "memory.oom_control oom_kill",
                            cgroup_kills as f64,
                            Unit::Count,
                        ));
                        evidence.push(Evidence::text("under_oom", under_oom.to_string()));
                    }
                }
            }
        }
        let host_kills = vmstat_rates(input).map_or(0, |r| r.oom_kills);
        if host_kills > 0 {
            evidence.push(Evidence::number(
                "host oom_kill during interval",
                host_kills as f64,
                Unit::Count,
            ));
        }
        let group = input
            .cgroup_view()
            .map_or_else(String::new, |v| v.location.path.clone());
        let (severity, title, meaning) = if cgroup_kills > 0 || under_oom {
            (
                Severity::Critical,
                format!("OOM killer ran in cgroup {group}: {cgroup_kills} kills"),
                "Processes of this group were killed because the group reached its memory \
                 limit. The count is since the group was created; a restarted container may \
                 have been killed before."
                    .to_owned(),
            )
        } else if host_kills > 0 {
            (
                Severity::Critical,
                format!("OOM killer ran on the host: {host_kills} kills just now"),
                "The machine ran out of memory while the doctor watched and the kernel killed \
                 processes to recover."
                    .to_owned(),
            )
        } else if max_events > 0 {
            (
                Severity::Warning,
                format!("cgroup {group} reached memory.max {max_events} times"),
                "Usage hit the hard limit; the kernel reclaimed to stay under it (no kill \
                 yet). Throughput suffers while it does."
                    .to_owned(),
            )
        } else {
            return None;
        };
        Some(finding(
            self.id(),
            severity,
            title,
            evidence,
            meaning,
            "See which process was killed and how big it was: journalctl -k | grep -i \
             'out of memory' (or dmesg). Then raise the limit or reduce what the process \
             holds; a heap profile taken while memory climbs shows where it goes."
                .to_owned(),
        ))
    }
}
