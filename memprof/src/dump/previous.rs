//! The previous run: the newest dump another process wrote, and whether
//! the kernel's log records an OOM kill of that process after it.

use serde::Serialize;

use super::dir::DumpEntry;
use crate::host::{OomKill, OomLog};

/// How far before a dump's time (whole seconds) a logged kill may be
/// stamped and still count as after it: the dump's time is cut to the
/// second and the kernel's clock is converted from boot time.
const CLOCK_SLACK_SECONDS: f64 = 2.0;

/// The newest dump of another process.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PreviousRun {
    /// Its pid.
    pub pid: u32,
    /// Its newest dump.
    pub last_dump: DumpEntry,
    /// Whether the kernel log records an OOM kill of that pid after the
    /// dump: `true`, `false` (the log, as far back as it reaches, holds
    /// none), or `None` when the log cannot be read (most containers).
    pub oom_killed: Option<bool>,
    /// The kill, when there is one.
    pub oom_kill: Option<OomKillSummary>,
}

/// An OOM kill as the kernel logged it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct OomKillSummary {
    /// The victim's pid.
    pub pid: u32,
    /// Its command name.
    pub name: String,
    /// When, seconds since the Unix epoch, if the log's clock is known.
    pub time_unix: Option<f64>,
    /// Its resident memory at the kill (anon + file + shmem).
    pub rss_bytes: u64,
    /// Its anonymous resident memory.
    pub anon_rss_bytes: u64,
    /// The cgroup whose limit was hit, if logged.
    pub memcg: Option<String>,
    /// `CONSTRAINT_MEMCG` for a cgroup limit, `CONSTRAINT_NONE` for the
    /// machine.
    pub constraint: Option<String>,
}

impl OomKillSummary {
    fn of(kill: &OomKill) -> OomKillSummary {
        OomKillSummary {
            pid: kill.pid,
            name: kill.name.clone(),
            time_unix: kill.unix_seconds,
            rss_bytes: kill.rss_bytes(),
            anon_rss_bytes: kill.anon_rss_bytes,
            memcg: kill.memcg().map(str::to_owned),
            constraint: kill.constraint.clone(),
        }
    }
}

/// The previous run among `dumps` (newest first), with the kernel log
/// read now.
pub(crate) fn previous_run(dumps: &[DumpEntry]) -> Option<PreviousRun> {
    let last = dumps.iter().find(|d| !d.current_run)?;
    let log = crate::thread_state::unsampled(|| OomLog::read("/")).ok();
    let (oom_killed, oom_kill) = match log {
        None => (None, None),
        Some(log) => match kill_after(&log, last.pid, last.time_unix) {
            Some(kill) => (Some(true), Some(OomKillSummary::of(kill))),
            None => (Some(false), None),
        },
    };
    Some(PreviousRun {
        pid: last.pid,
        last_dump: last.clone(),
        oom_killed,
        oom_kill,
    })
}

/// The newest logged kill of `pid` at or after `time_unix` (a kill whose
/// time is unknown counts: the pid matched).
pub(crate) fn kill_after(log: &OomLog, pid: u32, time_unix: u64) -> Option<&OomKill> {
    log.kills.iter().rev().find(|k| {
        k.pid == pid
            && k.unix_seconds
                .map_or(true, |t| t + CLOCK_SLACK_SECONDS >= time_unix as f64)
    })
}

/// The previous run with the figures of its last dump's summary, as the
/// doctor reads it.
pub(crate) fn for_doctor(run: &PreviousRun) -> Option<crate::doctor::PreviousRun> {
    let path = super::file_path(&run.last_dump.id, super::writer::SUMMARY).ok()?;
    let summary = super::dir::read_summary(&path).ok()?;
    let top = summary.top_stacks.first();
    let limit_percent = match (summary.cgroup_usage_bytes, summary.cgroup_limit_bytes) {
        (Some(used), Some(limit)) if limit > 0 => {
            let used = summary
                .cgroup
                .as_ref()
                .and_then(|c| c.working_set_bytes)
                .unwrap_or(used);
            Some(used as f64 * 100.0 / limit as f64)
        }
        _ => None,
    };
    let mut p = crate::doctor::PreviousRun::new(run.pid, &summary.id, &summary.trigger);
    p.comm = summary.comm.clone();
    p.dump_detail = summary.detail.clone();
    p.dump_time_unix = summary.time_unix;
    p.oom_killed = run.oom_killed;
    p.killed_at_unix = run.oom_kill.as_ref().and_then(|k| k.time_unix);
    p.kill_rss_bytes = run.oom_kill.as_ref().map(|k| k.rss_bytes);
    p.heap_bytes = Some(summary.heap_bytes);
    p.rss_bytes = summary.rss_bytes;
    p.limit_bytes = summary.cgroup_limit_bytes;
    p.limit_percent = limit_percent;
    p.top_function = top.map(|t| t.function.clone());
    p.top_bytes = top.map(|t| t.inuse_bytes);
    p.growth_bytes_per_second = summary
        .leak_candidates
        .first()
        .map(|l| l.growth_bytes_per_second)
        .filter(|g| *g > 0.0)
        .or(summary.heap_growth_bytes_per_second);
    Some(p)
}
