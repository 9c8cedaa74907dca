//! [`DoctorInput`]: the readings the rules look at.

use std::time::{Duration, Instant};

#[cfg(feature = "jemalloc")]
use crate::jemalloc::JemallocStats;

use crate::host::{
    CgroupView, HostView, Meminfo, Overview, ProcStatus, ProcessView, Reading, Vmstat,
};
use crate::profile::LeakReport;

/// Everything the doctor looks at: the latest readings of the process, the
/// host and the cgroup, jemalloc's statistics when jemalloc serves the
/// process, and a series of earlier readings for the rules over rates.
///
/// Every part is optional: a rule whose readings are missing finds nothing.
/// The rules never read files; build the input from live readings with
/// [`super::read_live`], or from readings taken elsewhere (a history ring)
/// with [`DoctorInput::new`] and the `with_*` methods.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DoctorInput {
    /// The process looked at, or `None` to skip the process rules (the CLI
    /// examining only the host).
    pub process: Option<ProcessView>,
    /// The host.
    pub host: Option<HostView>,
    /// The process's memory cgroup.
    pub cgroup: Option<Reading<CgroupView>>,
    /// jemalloc's statistics, when jemalloc serves the process looked at.
    /// `None` skips the allocator rules.
    #[cfg(feature = "jemalloc")]
    pub jemalloc: Option<JemallocStats>,
    /// Earlier readings, oldest first; the latest may be the same moment as
    /// the readings above. Rules over rates compare the first with the last
    /// and need two readings at least a moment apart.
    pub series: Vec<TimedReading>,
    /// Leak candidates of the process looked at, when it is this one and
    /// memprof profiles it. `None` leaves the heap-growth rule to the
    /// series alone.
    pub leaks: Option<LeakReport>,
    /// The previous run of this service, from the dump directory, when it
    /// holds a dump of another process (see `memprof::dump`).
    pub previous_run: Option<PreviousRun>,
}

/// The previous run as its last dump and the kernel's log saw it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PreviousRun {
    /// Its pid.
    pub pid: u32,
    /// Its command name.
    pub comm: Option<String>,
    /// Its last dump's id.
    pub dump_id: String,
    /// Why that dump was written (`limit`, `peak`, ...).
    pub dump_trigger: String,
    /// The dump's detail (the threshold crossed, who asked).
    pub dump_detail: String,
    /// When the dump was written, seconds since the Unix epoch.
    pub dump_time_unix: u64,
    /// Whether the kernel log records its OOM kill after the dump (`None`:
    /// the log cannot be read).
    pub oom_killed: Option<bool>,
    /// When it was killed, seconds since the Unix epoch.
    pub killed_at_unix: Option<f64>,
    /// Its resident memory at the kill.
    pub kill_rss_bytes: Option<u64>,
    /// The heap estimate at the dump.
    pub heap_bytes: Option<f64>,
    /// Its RSS at the dump.
    pub rss_bytes: Option<u64>,
    /// Its memory cgroup's limit.
    pub limit_bytes: Option<u64>,
    /// Memory in use at the dump, in percent of the limit.
    pub limit_percent: Option<f64>,
    /// The leading program frame of the largest stack at the dump.
    pub top_function: Option<String>,
    /// That stack's in-use bytes.
    pub top_bytes: Option<f64>,
    /// How fast its heap (or its top leak candidate) grew, bytes a second.
    pub growth_bytes_per_second: Option<f64>,
}

impl PreviousRun {
    /// A previous run known by its pid and last dump; fill in the rest.
    pub fn new(pid: u32, dump_id: &str, dump_trigger: &str) -> PreviousRun {
        PreviousRun {
            pid,
            dump_id: dump_id.to_owned(),
            dump_trigger: dump_trigger.to_owned(),
            ..PreviousRun::default()
        }
    }
}

impl DoctorInput {
    /// An input with nothing in it; add readings with the `with_*` methods.
    pub fn new() -> DoctorInput {
        DoctorInput::default()
    }

    /// The process, host and cgroup of an [`Overview`] (its top processes
    /// are not used).
    pub fn from_overview(overview: Overview) -> DoctorInput {
        DoctorInput {
            process: Some(overview.process),
            host: Some(overview.host),
            cgroup: Some(overview.cgroup),
            ..DoctorInput::default()
        }
    }

    /// Sets the process view.
    pub fn with_process(mut self, process: Option<ProcessView>) -> DoctorInput {
        self.process = process;
        self
    }

    /// Sets the host view.
    pub fn with_host(mut self, host: Option<HostView>) -> DoctorInput {
        self.host = host;
        self
    }

    /// Sets the cgroup view.
    pub fn with_cgroup(mut self, cgroup: Option<Reading<CgroupView>>) -> DoctorInput {
        self.cgroup = cgroup;
        self
    }

    /// Sets jemalloc's statistics.
    #[cfg(feature = "jemalloc")]
    pub fn with_jemalloc(mut self, jemalloc: Option<JemallocStats>) -> DoctorInput {
        self.jemalloc = jemalloc;
        self
    }

    /// Sets the series of earlier readings (oldest first).
    pub fn with_series(mut self, series: Vec<TimedReading>) -> DoctorInput {
        self.series = series;
        self
    }

    /// Sets the previous run.
    pub fn with_previous_run(mut self, previous_run: Option<PreviousRun>) -> DoctorInput {
        self.previous_run = previous_run;
        self
    }

    /// Sets the leak candidates.
    pub fn with_leaks(mut self, leaks: Option<LeakReport>) -> DoctorInput {
        self.leaks = leaks;
        self
    }

    /// The process's `/proc/<pid>/status`, if read.
    pub(crate) fn status(&self) -> Option<&ProcStatus> {
        self.process.as_ref()?.status.value()
    }

    /// The host's meminfo, if read.
    pub(crate) fn meminfo(&self) -> Option<&Meminfo> {
        self.host.as_ref()?.meminfo.value()
    }

    /// The cgroup view, if read.
    pub(crate) fn cgroup_view(&self) -> Option<&CgroupView> {
        self.cgroup.as_ref()?.value()
    }

    /// jemalloc's statistics, if given.
    #[cfg(feature = "jemalloc")]
    pub(crate) fn jemalloc(&self) -> Option<&JemallocStats> {
        self.jemalloc.as_ref()
    }

    /// The first and last readings of the series for which `pick` gives a
    /// value, with the seconds between them; `None` unless they are at
    /// least 10 ms apart.
    pub(crate) fn span<'a, T>(
        &'a self,
        pick: impl Fn(&'a TimedReading) -> Option<T>,
    ) -> Option<(T, T, f64)> {
        let mut with = self
            .series
            .iter()
            .filter_map(|r| pick(r).map(|value| (r.taken, value)));
        let (first_at, first) = with.next()?;
        let (last_at, last) = with.last()?;
        let seconds = last_at.checked_duration_since(first_at)?.as_secs_f64();
        (seconds >= 0.01).then_some((first, last, seconds))
    }
}

/// One reading in a series: when it was taken and the figures the rules
/// over rates compare.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TimedReading {
    /// When the reading was taken.
    pub taken: Instant,
    /// The process's status (`VmRSS`, `RssAnon`, `VmSwap`).
    pub status: Option<ProcStatus>,
    /// The host's meminfo (`SUnreclaim`).
    pub meminfo: Option<Meminfo>,
    /// The host's vmstat counters (swap, reclaim, OOM kills).
    pub vmstat: Option<Vmstat>,
    /// The base page size, to turn vmstat page counts into bytes.
    pub page_size_bytes: u64,
    /// jemalloc's `stats.allocated`, when jemalloc serves the process.
    pub allocated_bytes: Option<u64>,
    /// jemalloc's `stats.resident`, when jemalloc serves the process.
    pub resident_bytes: Option<u64>,
}

impl TimedReading {
    /// An empty reading taken at `taken`; fill it with the `with_*` methods
    /// or [`TimedReading::from_views`].
    pub fn new(taken: Instant) -> TimedReading {
        TimedReading {
            taken,
            status: None,
            meminfo: None,
            vmstat: None,
            page_size_bytes: crate::host::page_size_bytes(),
            allocated_bytes: None,
            resident_bytes: None,
        }
    }

    /// The figures of a process view and a host view taken at `taken`.
    pub fn from_views(
        taken: Instant,
        process: Option<&ProcessView>,
        host: Option<&HostView>,
    ) -> TimedReading {
        let mut reading = TimedReading::new(taken);
        reading.status = process.and_then(|p| p.status.value().cloned());
        if let Some(host) = host {
            reading.meminfo = host.meminfo.value().cloned();
            reading.vmstat = host.vmstat.value().cloned();
            reading.page_size_bytes = host.page_size_bytes;
        }
        reading
    }

    /// Sets the process status.
    pub fn with_status(mut self, status: Option<ProcStatus>) -> TimedReading {
        self.status = status;
        self
    }

    /// Sets the host meminfo.
    pub fn with_meminfo(mut self, meminfo: Option<Meminfo>) -> TimedReading {
        self.meminfo = meminfo;
        self
    }

    /// Sets the host vmstat counters.
    pub fn with_vmstat(mut self, vmstat: Option<Vmstat>) -> TimedReading {
        self.vmstat = vmstat;
        self
    }

    /// Sets jemalloc's allocated and resident bytes.
    pub fn with_allocator(
        mut self,
        allocated_bytes: Option<u64>,
        resident_bytes: Option<u64>,
    ) -> TimedReading {
        self.allocated_bytes = allocated_bytes;
        self.resident_bytes = resident_bytes;
        self
    }

    /// The same reading, `by` later (for building series in tests and
    /// replays); unchanged if the clock would overflow.
    pub fn shifted(mut self, by: Duration) -> TimedReading {
        if let Some(taken) = self.taken.checked_add(by) {
            self.taken = taken;
        }
        self
    }
}
