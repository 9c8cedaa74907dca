//! A rule over the previous run: the dump it left, and whether the kernel
//! killed it for memory.

use super::{b, finding, Rule};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::{DoctorInput, PreviousRun};

/// The previous process was OOM-killed (or may have been), and its last
/// dump shows what held the memory.
///
/// * **Critical** when the kernel log records an OOM kill of the previous
///   run's pid after its last dump: the service restarted after dying of
///   memory, and the dump holds the stacks that filled it.
/// * **Warning** when the log cannot be read (most containers) and the
///   last dump is a `limit` dump: the process was near its limit when it
///   was last seen, and nothing says how it ended.
///
/// A previous run the log shows was not killed, or whose last dump was not
/// near a limit with the log unreadable, finds nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreviousRunKilled;

impl Rule for PreviousRunKilled {
    fn id(&self) -> &'static str {
        "previous-run-oom-killed"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let run = input.previous_run.as_ref()?;
        let severity = match run.oom_killed {
            Some(true) => Severity::Critical,
            None if run.dump_trigger == "limit" => Severity::Warning,
            _ => return None,
        };
        let killed = match (run.oom_killed, run.killed_at_unix) {
            (Some(true), Some(t)) => {
                format!("was OOM-killed at {}", crate::human::utc_text(t as u64))
            }
            (Some(true), None) => "was OOM-killed".to_owned(),
            _ => "may have been OOM-killed (the kernel log cannot be read)".to_owned(),
        };
        let at = match run.limit_percent {
            Some(p) => format!("at {p:.0}% of the limit"),
            None => format!("written for {}", run.dump_trigger),
        };
        let mut shows = match (run.top_bytes, &run.top_function) {
            (Some(bytes), Some(f)) if !f.is_empty() => {
                format!("{} live in `{f}`", b(bytes.max(0.0) as u64))
            }
            _ => format!("{} live", b(run.heap_bytes.unwrap_or(0.0).max(0.0) as u64)),
        };
        if let Some(g) = run.growth_bytes_per_second.filter(|g| *g > 0.0) {
            shows.push_str(&format!(" growing {}/min", b((g * 60.0) as u64)));
        }
        let title = format!(
            "the previous process (pid {}) {killed}; its last dump, {at}, shows {shows}",
            run.pid
        );
        Some(finding(
            self.id(),
            severity,
            title,
            evidence(run),
            format!(
                "Before this process started, pid {} ran with the same dump directory; its \
                 last dump ({}, {}) is the profile closest to its end. {}",
                run.pid,
                run.dump_id,
                run.dump_detail,
                if run.oom_killed == Some(true) {
                    "The kernel log records its OOM kill after that dump, so what that dump \
                     shows is what filled the memory."
                } else {
                    "Whether the kernel killed it is not known here: the kernel log cannot be \
                     read from this process."
                }
            ),
            format!(
                "Open the dump's flamegraph (GET /debug/memprof/dumps/{0}/flamegraph) and its \
                 differential against this run (dumps/{0}/flamegraph?base=current): stacks \
                 that grow again in this run are the ones to fix. `memprof report` reads the \
                 dump's files offline.",
                run.dump_id
            ),
        ))
    }
}

fn evidence(run: &PreviousRun) -> Vec<Evidence> {
    let mut e = vec![
        Evidence::number("pid", f64::from(run.pid), Unit::None),
        Evidence::text("last dump", run.dump_id.clone()),
        Evidence::text("trigger", run.dump_trigger.clone()),
    ];
    if let Some(comm) = &run.comm {
        e.push(Evidence::text("name", comm.clone()));
    }
    if let Some(heap) = run.heap_bytes {
        e.push(Evidence::bytes("heap at the dump", heap.max(0.0) as u64));
    }
    if let Some(rss) = run.rss_bytes {
        e.push(Evidence::bytes("RSS at the dump", rss));
    }
    if let Some(limit) = run.limit_bytes {
        e.push(Evidence::bytes("limit", limit));
    }
    if let Some(p) = run.limit_percent {
        e.push(Evidence::number("share of the limit", p, Unit::Percent));
    }
    if let (Some(f), Some(bytes)) = (&run.top_function, run.top_bytes) {
        e.push(Evidence::text("top stack", f.clone()));
        e.push(Evidence::bytes("top stack in use", bytes.max(0.0) as u64));
    }
    if let Some(g) = run.growth_bytes_per_second {
        e.push(Evidence::number("growth", g * 60.0, Unit::BytesPerMinute));
    }
    if let Some(rss) = run.kill_rss_bytes {
        e.push(Evidence::bytes("RSS at the kill", rss));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(oom_killed: Option<bool>, trigger: &str) -> DoctorInput {
        let mut p = PreviousRun::new(4242, "20261206T110000Z-4242-limit", trigger);
        p.oom_killed = oom_killed;
        p.killed_at_unix = oom_killed.and_then(|k| k.then_some(1_796_554_805.0));
        p.heap_bytes = Some(1.4 * (1u64 << 30) as f64);
        p.limit_percent = Some(95.2);
        p.top_function = Some("app::parse_batch".to_owned());
        p.top_bytes = Some(1.4 * (1u64 << 30) as f64);
        p.growth_bytes_per_second = Some(30.0 * (1 << 20) as f64 / 60.0);
        DoctorInput::new().with_previous_run(Some(p))
    }

    #[test]
    fn a_killed_previous_run_names_pid_time_share_and_function() {
        let f = PreviousRunKilled.check(&run(Some(true), "limit")).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(
            f.title,
            "the previous process (pid 4242) was OOM-killed at 2026-12-06 11:00:05 UTC; its \
             last dump, at 95% of the limit, shows 1.40 GiB live in `app::parse_batch` \
             growing 30.0 MiB/min"
        );
        assert!(f
            .advice
            .contains("dumps/20261206T110000Z-4242-limit/flamegraph"));
    }

    #[test]
    fn an_unreadable_log_warns_only_after_a_limit_dump() {
        let f = PreviousRunKilled.check(&run(None, "limit")).unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.title.contains("may have been OOM-killed"), "{}", f.title);
        assert!(PreviousRunKilled.check(&run(None, "peak")).is_none());
        assert!(PreviousRunKilled
            .check(&run(Some(false), "limit"))
            .is_none());
        assert!(PreviousRunKilled.check(&DoctorInput::new()).is_none());
    }
}
