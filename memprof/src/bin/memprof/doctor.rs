//! `memprof doctor`: the doctor's host, cgroup and process rules from
//! outside the process.

use std::process::ExitCode;
use std::time::Duration;

use memprof::doctor::{self, LiveOptions};
use memprof::host::Pid;
use serde::Serialize;

use crate::watch::require_process;
use crate::{print, print_json, Result};

pub(crate) fn doctor(pid: Option<u32>, interval: Duration, json: bool) -> Result<ExitCode> {
    if let Some(pid) = pid {
        require_process(pid)?;
    }
    let options = LiveOptions::default()
        .pid(pid.map(Pid::Id))
        .interval(interval)
        .allocator(false);
    let input = doctor::read_live_with(&options);
    let findings = doctor::examine(&input);
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            pid: Option<u32>,
            interval_seconds: f64,
            findings: &'a [doctor::Finding],
        }
        return print_json(&Out {
            pid,
            interval_seconds: interval.as_secs_f64(),
            findings: &findings,
        });
    }
    let subject = match pid {
        Some(pid) => format!("host, cgroup and process {pid}"),
        None => "host and cgroup".to_owned(),
    };
    let readings = if interval.is_zero() {
        "one reading (rate rules need --interval above 0)".to_owned()
    } else {
        format!("two readings {:.1} s apart", interval.as_secs_f64())
    };
    print(&format!(
        "memprof doctor: {subject}, {readings}\n\n{}",
        doctor::render_text(&findings)
    ))
}
