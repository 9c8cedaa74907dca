//! A rule over the kernel log's record of OOM kills: who was killed, how big
//! it was and in which cgroup.

use super::{b, finding, Rule};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::DoctorInput;
use crate::host::{kill_line, OomKill};

/// A recent OOM kill in the kernel log (`/dev/kmsg`), named.
///
/// The counters ([`super::OomKills`]) say that the OOM killer ran; this
/// finding says whom it killed, with the victim's RSS at the kill and the
/// memory cgroup whose limit was hit (or the victim's, for a host-wide OOM).
/// It reports the latest kill:
///
/// * within the last **hour**: **critical** (it is the incident at hand);
/// * within the last **24 hours**: **warning** (a restarted service may have
///   been killed before; the log is the only place the victim is named).
///
/// Older kills, and a log that could not be read, find nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct OomKillLogged;

const CRITICAL_SECONDS: f64 = 3600.0;
const RECENT_SECONDS: f64 = 86_400.0;

impl Rule for OomKillLogged {
    fn id(&self) -> &'static str {
        "oom-kill-logged"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let log = input.host.as_ref()?.oom_log.value()?;
        let recent = |k: &&OomKill| k.age_seconds.is_some_and(|age| age <= RECENT_SECONDS);
        let kill = log.kills.iter().rev().find(recent)?;
        let age = kill.age_seconds?;
        let in_day = log.kills.iter().filter(recent).count();
        let severity = if age <= CRITICAL_SECONDS {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let memcg = kill.memcg().unwrap_or("an unknown cgroup");
        let mut evidence = vec![
            Evidence::number("pid", f64::from(kill.pid), Unit::None),
            Evidence::text("name", kill.name.clone()),
            Evidence::bytes("anon-rss", kill.anon_rss_bytes),
            Evidence::bytes("file-rss", kill.file_rss_bytes),
            Evidence::bytes("shmem-rss", kill.shmem_rss_bytes),
            Evidence::text(
                "constraint",
                kill.constraint.as_deref().unwrap_or("unknown"),
            ),
            Evidence::text("memcg", memcg),
            Evidence::number("age", age, Unit::Seconds),
            Evidence::number("kills in the last 24 h", in_day as f64, Unit::Count),
        ];
        if let Some(task) = kill
            .task_memcg
            .as_deref()
            .filter(|t| Some(*t) != kill.oom_memcg.as_deref())
        {
            evidence.push(Evidence::text("task_memcg", task));
        }
        let by_limit = kill.constraint.as_deref() == Some("CONSTRAINT_MEMCG");
        Some(finding(
            self.id(),
            severity,
            format!(
                "OOM killer killed pid {} ({}) with {} resident in {memcg}",
                kill.pid,
                kill.name,
                b(kill.rss_bytes())
            ),
            evidence,
            format!(
                "The kernel log records the kill: {}. {}",
                kill_line(kill),
                if by_limit {
                    "The cgroup reached its memory limit; the victim was the largest \
                     process in it by the OOM score."
                } else {
                    "The machine (or a cpuset or memory policy) ran out of memory; the \
                     victim was the process with the highest OOM score, not necessarily \
                     the one that grew."
                }
            ),
            "If the victim is this service, its anon-rss is mostly its heap: compare it with \
             the limit, and look at what grows (GET /debug/memprof/heap, /leaks) before the \
             next kill. memprof oom lists every kill the log holds."
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostView, LogClock, OomLog, Reading};

    const KILL: &str = "6,1,5000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,task_memcg=/app,task=leaky,pid=42,uid=0\n\
        3,2,5000000,-;Memory cgroup out of memory: Killed process 42 (leaky) total-vm:1kB, anon-rss:204800kB, file-rss:1024kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n";

    /// A host where only the kernel log was read, `age` seconds after the
    /// kill.
    fn input(age: f64) -> DoctorInput {
        let clock = LogClock {
            monotonic_usec: 5_000_000 + (age * 1e6) as u64,
            unix_seconds: 1_700_000_000.0,
        };
        let mut host = HostView::read("/nonexistent-memprof-root");
        host.oom_log = Reading::Available(OomLog::parse(KILL.as_bytes(), Some(clock)).unwrap());
        DoctorInput::new().with_host(Some(host))
    }

    #[test]
    fn a_recent_kill_names_victim_rss_and_memcg() {
        let f = OomKillLogged.check(&input(300.0)).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(
            f.title,
            "OOM killer killed pid 42 (leaky) with 201 MiB resident in /app"
        );
        let found = |name: &str| f.evidence.iter().any(|e| e.name == name);
        assert!(
            found("anon-rss") && found("memcg") && found("constraint"),
            "{f:?}"
        );
        assert!(
            f.meaning.contains("reached its memory limit"),
            "{}",
            f.meaning
        );
    }

    #[test]
    fn older_kills_warn_then_fall_silent() {
        assert_eq!(
            OomKillLogged.check(&input(7200.0)).unwrap().severity,
            Severity::Warning
        );
        assert!(OomKillLogged.check(&input(2.0 * 86_400.0)).is_none());
        let mut refused = input(1.0);
        if let Some(host) = refused.host.as_mut() {
            host.oom_log = Reading::unavailable("/dev/kmsg: permission denied");
        }
        assert!(OomKillLogged.check(&refused).is_none());
    }
}
