//! `memprof host`, `memprof oom` and `memprof top`: the host, its OOM
//! kills and its processes by PSS, read from this machine's /proc.

use std::process::ExitCode;

use memprof::host::{self, CgroupView, HostView, Pid, Reading, TopProcesses};
use serde::Serialize;

use crate::{print, print_json, Failure, Result};

pub(crate) fn host(json: bool) -> Result<ExitCode> {
    let host = HostView::read("/");
    let cgroup: Reading<CgroupView> = CgroupView::read("/", Pid::Current).into();
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            host: &'a HostView,
            cgroup: &'a Reading<CgroupView>,
        }
        return print_json(&Out {
            host: &host,
            cgroup: &cgroup,
        });
    }
    print(&host::render_host(&host, &cgroup))
}

pub(crate) fn oom(json: bool) -> Result<ExitCode> {
    let host = HostView::read("/");
    let cgroup: Reading<CgroupView> = CgroupView::read("/", Pid::Current).into();
    let report = host::OomReport::from_views(&host, &cgroup);
    if json {
        return print_json(&report);
    }
    print(&host::render_oom(&report))
}

pub(crate) fn top(limit: usize, json: bool) -> Result<ExitCode> {
    // The operator's own terminal: whole command lines, as ps shows them.
    let top = TopProcesses::read_with_command_lines("/", limit)
        .map_err(|err| Failure(format!("cannot list processes: {err}")))?;
    if json {
        return print_json(&top);
    }
    print(&host::render_top(&top))
}
