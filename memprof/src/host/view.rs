//! Everything in one call: the process, the host, the cgroup and the top
//! processes, as plain data for the `/host` endpoint, the doctor and the
//! history sampler.

use std::path::Path;

use serde::Serialize;

use super::buddyinfo::Buddyinfo;
use super::cgroup::CgroupView;
use super::meminfo::Meminfo;
use super::oom_log::OomLog;
use super::pressure::Pressure;
use super::process::{Pid, ProcStatus, SmapsRollup, Statm};
use super::reading::Reading;
use super::sysctl::{Thp, VmSysctls};
use super::top::TopProcesses;
use super::util;
use super::vmstat::Vmstat;

/// What [`read_all_with`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The process to report (default: this one).
    pub pid: Pid,
    /// How many processes to list by PSS (default 10); 0 skips the scan of
    /// every process.
    pub top_limit: usize,
    /// Whether the listed processes carry their whole command lines
    /// (default: program names only; arguments can carry secrets).
    pub command_lines: bool,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            pid: Pid::Current,
            top_limit: 10,
            command_lines: false,
        }
    }
}

impl ReadOptions {
    /// Reports process `pid`.
    pub fn pid(mut self, pid: Pid) -> ReadOptions {
        self.pid = pid;
        self
    }

    /// Lists `limit` processes by PSS.
    pub fn top_limit(mut self, limit: usize) -> ReadOptions {
        self.top_limit = limit;
        self
    }

    /// Lists the processes with their whole command lines.
    pub fn command_lines(mut self, show: bool) -> ReadOptions {
        self.command_lines = show;
        self
    }
}

/// One process's memory files.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProcessView {
    /// The process.
    pub pid: Pid,
    /// `/proc/<pid>/status`.
    pub status: Reading<ProcStatus>,
    /// `/proc/<pid>/smaps_rollup`.
    pub smaps_rollup: Reading<SmapsRollup>,
    /// `/proc/<pid>/statm`.
    pub statm: Reading<Statm>,
}

impl ProcessView {
    /// Reads the files of `pid` under `root`.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> ProcessView {
        let root = root.as_ref();
        ProcessView {
            pid,
            status: ProcStatus::read(root, pid).into(),
            smaps_rollup: SmapsRollup::read(root, pid).into(),
            statm: Statm::read(root, pid).into(),
        }
    }
}

/// The machine's memory files.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HostView {
    /// The base page size.
    pub page_size_bytes: u64,
    /// `/proc/meminfo`.
    pub meminfo: Reading<Meminfo>,
    /// `/proc/buddyinfo` with fragmentation indices.
    pub buddyinfo: Reading<Buddyinfo>,
    /// `/proc/vmstat` counters (rates need two readings: [`VmstatRates`]).
    ///
    /// [`VmstatRates`]: super::VmstatRates
    pub vmstat: Reading<Vmstat>,
    /// `/proc/pressure/memory`.
    pub pressure: Reading<Pressure>,
    /// The vm sysctls.
    pub sysctls: VmSysctls,
    /// Transparent huge page modes.
    pub thp: Thp,
    /// The OOM kills in the kernel log (`/dev/kmsg`), or why it could not
    /// be read (refused in most containers): then the `oom_kill` counters
    /// of `vmstat` and the cgroup are the only record.
    pub oom_log: Reading<OomLog>,
}

impl HostView {
    /// Reads the host files under `root`.
    pub fn read(root: impl AsRef<Path>) -> HostView {
        let root = root.as_ref();
        HostView {
            page_size_bytes: util::page_size(),
            meminfo: Meminfo::read(root).into(),
            buddyinfo: Buddyinfo::read(root).into(),
            vmstat: Vmstat::read(root).into(),
            pressure: Pressure::read(root).into(),
            sysctls: VmSysctls::read(root),
            thp: Thp::read(root),
            oom_log: OomLog::read(root).into(),
        }
    }
}

/// The process, the host, the cgroup and the top processes, read together.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Overview {
    /// The process.
    pub process: ProcessView,
    /// The machine.
    pub host: HostView,
    /// The process's memory cgroup.
    pub cgroup: Reading<CgroupView>,
    /// The processes using the most memory, by PSS.
    pub top_processes: Reading<TopProcesses>,
}

/// Reads everything under `root` (`/` on a live system) for this process,
/// with the ten largest processes by PSS.
pub fn read_all(root: impl AsRef<Path>) -> Overview {
    read_all_with(root, &ReadOptions::default())
}

/// Reads everything under `root` as `options` say.
pub fn read_all_with(root: impl AsRef<Path>, options: &ReadOptions) -> Overview {
    let root = root.as_ref();
    Overview {
        process: ProcessView::read(root, options.pid),
        host: HostView::read(root),
        cgroup: CgroupView::read(root, options.pid).into(),
        top_processes: if options.top_limit == 0 {
            Reading::unavailable("not asked for (top_limit = 0)")
        } else if options.command_lines {
            TopProcesses::read_with_command_lines(root, options.top_limit).into()
        } else {
            TopProcesses::read(root, options.top_limit).into()
        },
    }
}

/// The system's base page size in bytes, which buddyinfo, statm and vmstat
/// counts are multiplied by.
pub fn page_size_bytes() -> u64 {
    util::page_size()
}
