//! One point of the history, and reading it.

use std::time::Instant;

use serde::Serialize;

use crate::allocator_reading::AllocatorReading;
use crate::host::{Meminfo, Pid, Pressure, ProcStatus, SmapsRollup, Vmstat, VmstatSample};

/// Everything the sampler records at one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Point {
    /// When the point was taken, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// jemalloc's totals, when jemalloc serves the process.
    pub allocator: Option<AllocatorFigures>,
    /// The process's memory, from `/proc/self/status` and `smaps_rollup`.
    pub process: Option<ProcessFigures>,
    /// The host's available memory and memory pressure.
    pub host: HostFigures,
    /// The profiler's estimates and counters.
    pub heap: HeapFigures,
    /// In-use bytes of the largest stacks, `(stack id, bytes)`, largest
    /// first. Stack ids are the profiler's; `GET /heap?format=json` names
    /// the stacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<(u32, f64)>,
    /// How long taking this point took, in microseconds.
    pub cost_us: u64,
}

/// jemalloc's totals at one point, in bytes (see
/// [`crate::jemalloc::Totals`] for what each means).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct AllocatorFigures {
    /// `stats.allocated`.
    pub allocated_bytes: u64,
    /// `stats.active`.
    pub active_bytes: u64,
    /// `stats.resident`.
    pub resident_bytes: u64,
    /// `stats.retained`.
    pub retained_bytes: u64,
    /// `stats.metadata`.
    pub metadata_bytes: u64,
    /// `stats.mapped`.
    pub mapped_bytes: u64,
    /// Dirty pages not yet purged, in bytes.
    pub dirty_bytes: u64,
}

/// The process's memory at one point, in bytes. A figure the kernel does
/// not report is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct ProcessFigures {
    /// `VmRSS`.
    pub rss_bytes: Option<u64>,
    /// `RssAnon`.
    pub rss_anon_bytes: Option<u64>,
    /// `VmSwap`.
    pub swap_bytes: Option<u64>,
    /// `Pss` of `smaps_rollup`.
    pub pss_bytes: Option<u64>,
}

impl ProcessFigures {
    /// The figures of a status reading and, if read, `smaps_rollup`.
    pub fn from_readings(status: &ProcStatus, smaps: Option<&SmapsRollup>) -> ProcessFigures {
        ProcessFigures {
            rss_bytes: status.vm_rss_bytes,
            rss_anon_bytes: status.rss_anon_bytes,
            swap_bytes: status.vm_swap_bytes,
            pss_bytes: smaps.and_then(|s| s.pss_bytes),
        }
    }

    /// Reads this process's `/proc/self/status` and `smaps_rollup`; `None`
    /// when the status cannot be read.
    pub fn read() -> Option<ProcessFigures> {
        let status = ProcStatus::read("/", Pid::Current).ok()?;
        let smaps = SmapsRollup::read("/", Pid::Current).ok();
        Some(ProcessFigures::from_readings(&status, smaps.as_ref()))
    }
}

/// The host's memory at one point.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct HostFigures {
    /// `MemAvailable` of `/proc/meminfo`, bytes.
    pub mem_available_bytes: Option<u64>,
    /// `some avg10` of `/proc/pressure/memory`, percent.
    pub pressure_some_avg10: Option<f64>,
    /// `full avg10` of `/proc/pressure/memory`, percent.
    pub pressure_full_avg10: Option<f64>,
}

/// The profiler's figures at one point: unbiased estimates from the
/// samples, and the sampler's own counters.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct HeapFigures {
    /// Estimated bytes allocated and not yet freed.
    pub inuse_bytes: f64,
    /// Estimated objects allocated and not yet freed.
    pub inuse_objects: f64,
    /// Estimated bytes allocated since start.
    pub alloc_bytes: f64,
    /// Estimated objects allocated since start.
    pub alloc_objects: f64,
    /// Sampled blocks alive.
    pub live_samples: u64,
    /// Samples dropped because the live table was full.
    pub samples_dropped: u64,
    /// Bytes memprof holds for its own tables.
    pub profiler_bytes: u64,
}

/// The full readings of one tick that the doctor's rate rules compare
/// (kept for the last few ticks only: the vmstat counters are large).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecentReading {
    /// When it was taken.
    pub taken: Instant,
    /// `/proc/self/status`.
    pub status: Option<ProcStatus>,
    /// `/proc/meminfo`.
    pub meminfo: Option<Meminfo>,
    /// `/proc/vmstat`.
    pub vmstat: Option<Vmstat>,
    /// jemalloc's `stats.allocated`.
    pub allocated_bytes: Option<u64>,
    /// jemalloc's `stats.resident`.
    pub resident_bytes: Option<u64>,
}

/// What one tick read: the point, the full readings, and why the allocator
/// figures are missing if they are.
pub(super) struct Tick {
    pub(super) point: Point,
    pub(super) recent: RecentReading,
    pub(super) vmstat: Option<VmstatSample>,
    pub(super) allocator_unavailable: Option<String>,
}

/// Reads one tick. `top_stacks` bounds the per-stack figures kept.
pub(super) fn read_tick(top_stacks: usize) -> Tick {
    let started = Instant::now();
    let unix_ms = crate::profile::snapshot::unix_ms();
    let root = "/";
    let status = ProcStatus::read(root, Pid::Current).ok();
    let smaps = SmapsRollup::read(root, Pid::Current).ok();
    let process = status
        .as_ref()
        .map(|s| ProcessFigures::from_readings(s, smaps.as_ref()));
    let allocator_reading = AllocatorReading::read(status.as_ref().and_then(|s| s.vm_rss_bytes));
    let allocator = AllocatorFigures::of(&allocator_reading);
    let meminfo = Meminfo::read(root).ok();
    let pressure = Pressure::read(root).ok();
    let host = HostFigures {
        mem_available_bytes: meminfo.as_ref().and_then(|m| m.mem_available_bytes),
        pressure_some_avg10: pressure.as_ref().map(|p| p.some.avg10),
        pressure_full_avg10: pressure.and_then(|p| p.full.map(|f| f.avg10)),
    };
    let vmstat = VmstatSample::read(root).ok();
    let (heap, stacks) = read_heap(top_stacks);
    let cost_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    Tick {
        point: Point {
            unix_ms,
            allocator,
            process,
            host,
            heap,
            stacks,
            cost_us,
        },
        recent: RecentReading {
            taken: started,
            status,
            meminfo,
            vmstat: vmstat.as_ref().map(|v| v.vmstat.clone()),
            allocated_bytes: allocator.map(|a| a.allocated_bytes),
            resident_bytes: allocator.map(|a| a.resident_bytes),
        },
        vmstat,
        allocator_unavailable: allocator_reading.reason().map(str::to_owned),
    }
}

impl AllocatorFigures {
    /// The totals of a reading, if it has statistics.
    fn of(reading: &AllocatorReading) -> Option<AllocatorFigures> {
        #[cfg(feature = "jemalloc")]
        if let Some(stats) = reading.stats() {
            let t = stats.totals;
            return Some(AllocatorFigures {
                allocated_bytes: t.allocated_bytes,
                active_bytes: t.active_bytes,
                resident_bytes: t.resident_bytes,
                retained_bytes: t.retained_bytes,
                metadata_bytes: t.metadata_bytes,
                mapped_bytes: t.mapped_bytes,
                dirty_bytes: stats.pages.dirty_bytes,
            });
        }
        let _ = reading;
        None
    }
}

/// The heap totals over every stack, and the `top` stacks by in-use bytes
/// (from [`crate::profile::stack_usage`]: counters only, no symbolization).
pub(super) fn read_heap(top: usize) -> (HeapFigures, Vec<(u32, f64)>) {
    let counters = crate::profile::counters();
    let table = &crate::stack::STACKS;
    let mut heap = HeapFigures {
        live_samples: counters.live_samples,
        samples_dropped: counters.samples_dropped,
        profiler_bytes: counters.profiler_bytes,
        ..HeapFigures::default()
    };
    for id in 0..table.id_limit() {
        if let Some(c) = table.counters(id) {
            heap.inuse_bytes += c.inuse_bytes;
            heap.inuse_objects += c.inuse_objects;
            heap.alloc_bytes += c.alloc_bytes;
            heap.alloc_objects += c.alloc_objects;
        }
    }
    let stacks = if top == 0 {
        Vec::new()
    } else {
        let mut usage = crate::profile::stack_usage(top);
        usage.stacks.shrink_to_fit();
        usage.stacks
    };
    (heap, stacks)
}
