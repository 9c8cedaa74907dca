//! OOM kills as an operator reads them: the kernel log's kills where it
//! could be read, and always the counters beside it (`/proc/vmstat`
//! `oom_kill`, the cgroup's `memory.events` or `memory.oom_control`), which
//! are all there is where the log is refused.

use std::fmt::Write as _;

use serde::Serialize;

use super::cgroup::{CgroupMemory, CgroupView};
use super::oom_log::{OomKill, OomLog};
use super::reading::Reading;
use super::view::HostView;
use crate::human::format_bytes;

/// The OOM-kill counters the host and cgroup readings hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OomCounters {
    /// `/proc/vmstat` `oom_kill`: kills on the host since boot.
    pub host_oom_kill: Option<u64>,
    /// The process's memory cgroup.
    pub cgroup: Option<String>,
    /// Its kills: v2 `memory.events` `oom_kill` (since the group was
    /// created), or v1 `memory.oom_control` `oom_kill`.
    pub cgroup_oom_kill: Option<u64>,
}

impl OomCounters {
    /// The counters in these readings.
    pub fn from_views(host: &HostView, cgroup: &Reading<CgroupView>) -> OomCounters {
        let view = cgroup.value();
        OomCounters {
            host_oom_kill: host.vmstat.value().and_then(|v| v.get("oom_kill")),
            cgroup: view.map(|v| v.location.path.clone()),
            cgroup_oom_kill: view.and_then(|v| match &v.memory {
                CgroupMemory::V2(m) => m.events.value().and_then(|e| e.oom_kill),
                CgroupMemory::V1(m) => m.oom_control.value().and_then(|o| o.oom_kill),
            }),
        }
    }
}

/// The kernel log's kills and the counters, for `memprof oom --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OomReport {
    /// The kills in `/dev/kmsg`, or why it could not be read.
    pub kernel_log: Reading<OomLog>,
    /// The counters, read whether or not the log could be.
    pub counters: OomCounters,
}

impl OomReport {
    /// The report of these readings.
    pub fn from_views(host: &HostView, cgroup: &Reading<CgroupView>) -> OomReport {
        OomReport {
            kernel_log: host.oom_log.clone(),
            counters: OomCounters::from_views(host, cgroup),
        }
    }
}

/// The `OOM KILLS` section of the host's text: one line per kill in the
/// kernel log (newest last), or why the log was not read, then the counters.
pub fn render_oom(report: &OomReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "OOM KILLS");
    match &report.kernel_log {
        Reading::Available(log) if log.kills.is_empty() => {
            let _ = writeln!(
                out,
                "  none in the kernel log ({} records read)",
                log.records
            );
        }
        Reading::Available(log) => {
            if log.dropped_kills > 0 {
                let _ = writeln!(out, "  ({} older kills not shown)", log.dropped_kills);
            }
            for kill in &log.kills {
                let _ = writeln!(out, "  {}", kill_line(kill));
            }
        }
        Reading::Unavailable { reason } => {
            let _ = writeln!(
                out,
                "  kernel log unavailable ({reason}); the counters below are the record"
            );
        }
    }
    if let Reading::Available(log) = &report.kernel_log {
        if log.malformed_records > 0 {
            let _ = writeln!(
                out,
                "  {} log lines skipped as malformed",
                log.malformed_records
            );
        }
    }
    let c = &report.counters;
    let count = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let _ = writeln!(
        out,
        "  counters: host oom_kill {} since boot; cgroup {} oom_kill {}",
        count(c.host_oom_kill),
        c.cgroup.as_deref().unwrap_or("-"),
        count(c.cgroup_oom_kill)
    );
    out
}

/// One kill: when, the victim, its RSS, the constraint and the cgroup.
pub fn kill_line(kill: &OomKill) -> String {
    let when = match (kill.unix_seconds, kill.age_seconds) {
        (Some(unix), Some(age)) => format!("{} ({} ago)", utc(unix), ago(age)),
        _ => format!("{:.3} s after boot", kill.boot_usec as f64 / 1e6),
    };
    format!(
        "{when}  pid {} ({})  rss {} (anon {}, file {}, shmem {})  {}  memcg {}",
        kill.pid,
        kill.name,
        format_bytes(kill.rss_bytes()),
        format_bytes(kill.anon_rss_bytes),
        format_bytes(kill.file_rss_bytes),
        format_bytes(kill.shmem_rss_bytes),
        kill.constraint.as_deref().unwrap_or("constraint unknown"),
        kill.memcg().unwrap_or("unknown"),
    )
}

/// `age` seconds as `42 s`, `17 min`, `5.2 h` or `3.1 d`.
fn ago(age: f64) -> String {
    if age < 120.0 {
        format!("{age:.0} s")
    } else if age < 7200.0 {
        format!("{:.0} min", age / 60.0)
    } else if age < 172_800.0 {
        format!("{:.1} h", age / 3600.0)
    } else {
        format!("{:.1} d", age / 86_400.0)
    }
}

/// Seconds since the Unix epoch as `2026-12-06 08:21:07 UTC`.
pub fn utc(unix: f64) -> String {
    crate::human::utc_text(unix.max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ages() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000.0), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(ago(42.0), "42 s");
        assert_eq!(ago(600.0), "10 min");
    }

    #[test]
    fn a_refused_log_gives_its_reason_and_the_counters() {
        let report = OomReport {
            kernel_log: Reading::unavailable("/dev/kmsg: permission denied"),
            counters: OomCounters {
                host_oom_kill: Some(3),
                cgroup: Some("/app".to_owned()),
                cgroup_oom_kill: Some(1),
            },
        };
        let text = render_oom(&report);
        assert!(
            text.contains("kernel log unavailable (/dev/kmsg: permission denied)"),
            "{text}"
        );
        assert!(
            text.contains("host oom_kill 3 since boot; cgroup /app oom_kill 1"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["kernel_log"]["unavailable"],
            "/dev/kmsg: permission denied"
        );
        assert_eq!(json["counters"]["cgroup_oom_kill"], 1);
    }

    #[test]
    fn a_kill_line_names_victim_rss_and_memcg() {
        let log = OomLog::parse(
            "6,1,5000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,task_memcg=/app,task=leaky,pid=42,uid=0\n\
             3,2,5000001,-;Memory cgroup out of memory: Killed process 42 (leaky) total-vm:1kB, anon-rss:204800kB, file-rss:1024kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n"
                .as_bytes(),
            None,
        )
        .unwrap();
        let line = kill_line(&log.kills[0]);
        assert_eq!(
            line,
            "5.000 s after boot  pid 42 (leaky)  rss 201 MiB (anon 200 MiB, file 1.00 MiB, shmem 0 B)  CONSTRAINT_MEMCG  memcg /app"
        );
    }
}
