//! Rules over the process's own figures: its peak, and swap.

use super::{b, finding, pct, percent, vmstat_rates, Rule, MIB};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::DoctorInput;

/// Post-peak retention: how the process's peak RSS (`VmHWM`, the high-water
/// mark of `VmRSS`, proc(5)) compares with its RSS now.
///
/// Two outcomes, defined as:
///
/// * **returned after a peak** (information): `VmHWM` is at least **1.5 x**
///   `VmRSS` and at least **64 MiB** above it. The process once held much more
///   and gave it back. Nothing is wrong now, but limits must fit the peak, and
///   the next burst will reach it again.
/// * **retained after a peak** (warning, needs jemalloc's `allocated`):
///   `VmRSS` is still at least **90 %** of `VmHWM`, while the program's live
///   heap (`allocated`) is under **50 %** of `VmRSS` and at least **64 MiB**
///   below it. The heap shrank after the peak but the process kept the memory
///   (fragmentation, dirty pages, or memory outside the allocator; see those
///   findings).
///
/// memprof's own thresholds.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostPeakRetention;

const PEAK_GAP_BYTES: u64 = 64 * MIB;

impl Rule for PostPeakRetention {
    fn id(&self) -> &'static str {
        "post-peak-retention"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let status = input.status()?;
        let rss = status.vm_rss_bytes?;
        let hwm = status.vm_hwm_bytes?;
        let allocated = latest_allocated(input);
        let mut evidence = vec![Evidence::bytes("VmHWM", hwm), Evidence::bytes("VmRSS", rss)];
        if hwm as f64 >= 1.5 * rss as f64 && hwm.saturating_sub(rss) >= PEAK_GAP_BYTES {
            evidence.push(pct("VmRSS_of_VmHWM", percent(rss, hwm)));
            return Some(finding(
                self.id(),
                Severity::Info,
                format!(
                    "Peak RSS was {} ({} more than now); the memory was given back",
                    b(hwm),
                    b(hwm - rss)
                ),
                evidence,
                "VmHWM is the most the process has held resident since it started. It \
                 returned the difference to the kernel, so nothing is held now, but the peak \
                 is what the machine or the cgroup limit has to fit, and the same workload \
                 will reach it again."
                    .to_owned(),
                "Size limits for the peak, not for now. To find what made the peak, take a \
                 heap profile during the next burst (GET /debug/memprof/heap?seconds=30). \
                 echo 5 > /proc/<pid>/clear_refs resets VmHWM to measure the next peak."
                    .to_owned(),
            ));
        }
        let allocated = allocated?;
        if rss as f64 >= 0.9 * hwm as f64
            && (allocated as f64) < 0.5 * rss as f64
            && rss.saturating_sub(allocated) >= PEAK_GAP_BYTES
        {
            evidence.push(Evidence::bytes("allocated", allocated));
            evidence.push(pct("allocated_of_VmRSS", percent(allocated, rss)));
            return Some(finding(
                self.id(),
                Severity::Warning,
                format!(
                    "Memory retained after a peak: RSS {} stays near its peak while the heap holds {}",
                    b(rss),
                    b(allocated)
                ),
                evidence,
                "The live heap is less than half of what the process holds, yet RSS has not \
                 come down from its peak: the freed memory was kept, as allocator \
                 fragmentation, dirty pages not yet purged, or memory outside the allocator."
                    .to_owned(),
                "See the allocator-fragmentation, allocator-dirty-pages and \
                 rss-outside-allocator findings; POST /debug/memprof/allocator/purge returns \
                 dirty pages at once."
                    .to_owned(),
            ));
        }
        None
    }
}

/// jemalloc's `allocated`, from the statistics or the latest reading of the
/// series.
fn latest_allocated(input: &DoctorInput) -> Option<u64> {
    #[cfg(feature = "jemalloc")]
    if let Some(stats) = input.jemalloc() {
        return Some(stats.totals.allocated_bytes);
    }
    input.series.iter().rev().find_map(|r| r.allocated_bytes)
}

/// Swap activity: pages moving to and from swap now, and the process's own
/// swapped-out memory.
///
/// Over the series (vmstat's `si`/`so`: `pswpin`/`pswpout` per second):
/// a **warning** when swap-in plus swap-out is at least **256 KiB/s**,
/// **critical** when swap-in alone is at least **4 MiB/s** (tasks wait on
/// disk for memory they had: thrashing). Any sustained `si`/`so` is a sign
/// of memory saturation in the USE method (Brendan Gregg, "Linux Performance
/// Analysis in 60 seconds", vmstat(8)). Without rates, **information** when
/// the process has at least **64 MiB** swapped out (`VmSwap`): touching it
/// again costs a disk read per page.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwapActivity;

const SWAP_WARN_BYTES_PER_SEC: f64 = 256.0 * 1024.0;
const SWAP_IN_CRITICAL_BYTES_PER_SEC: f64 = 4.0 * 1024.0 * 1024.0;
const PROCESS_SWAP_BYTES: u64 = 64 * MIB;

impl Rule for SwapActivity {
    fn id(&self) -> &'static str {
        "swap-activity"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let rates = vmstat_rates(input);
        let swap_in = rates
            .as_ref()
            .map_or(0.0, |r| r.swap_in_kib_per_sec * 1024.0);
        let swap_out = rates
            .as_ref()
            .map_or(0.0, |r| r.swap_out_kib_per_sec * 1024.0);
        let process_swap = input.status().and_then(|s| s.vm_swap_bytes).unwrap_or(0);
        let severity = if swap_in >= SWAP_IN_CRITICAL_BYTES_PER_SEC {
            Severity::Critical
        } else if swap_in + swap_out >= SWAP_WARN_BYTES_PER_SEC {
            Severity::Warning
        } else if process_swap >= PROCESS_SWAP_BYTES {
            Severity::Info
        } else {
            return None;
        };
        let mut evidence = Vec::new();
        if let Some(r) = &rates {
            evidence.push(Evidence::number("si", swap_in, Unit::BytesPerSecond));
            evidence.push(Evidence::number("so", swap_out, Unit::BytesPerSecond));
            evidence.push(Evidence::number(
                "pgmajfault",
                r.pgmajfault_per_sec,
                Unit::PerSecond,
            ));
            evidence.push(Evidence::number(
                "interval",
                r.interval_seconds,
                Unit::Seconds,
            ));
        }
        if input.status().is_some() {
            evidence.push(Evidence::bytes("VmSwap", process_swap));
        }
        if let Some(m) = input.meminfo() {
            if let (Some(total), Some(free)) = (m.swap_total_bytes, m.swap_free_bytes) {
                evidence.push(Evidence::bytes("SwapTotal", total));
                evidence.push(Evidence::bytes("SwapUsed", total.saturating_sub(free)));
            }
        }
        let (title, meaning) = if severity == Severity::Info {
            (
                format!("{} of the process is swapped out", b(process_swap)),
                "Part of the process's anonymous memory was written to swap earlier. It is \
                 not being swapped now, but the first touch of each page waits on a disk \
                 read, which shows up as latency spikes."
                    .to_owned(),
            )
        } else {
            (
                format!(
                    "Swapping now: {}/s in, {}/s out",
                    b(swap_in as u64),
                    b(swap_out as u64)
                ),
                "The kernel is moving memory to and from swap because RAM is short. \
                 Swap-out means it evicts anonymous memory; swap-in means tasks wait for \
                 memory they need back (thrashing when it is sustained), and every such \
                 wait is a disk read."
                    .to_owned(),
            )
        };
        Some(finding(
            self.id(),
            severity,
            title,
            evidence,
            meaning,
            "Find who uses the memory (memprof top, sorted by PSS) and reduce it, or give the \
             machine or cgroup more memory. Lowering vm.swappiness makes the kernel prefer \
             dropping page cache; for latency-critical services consider mlock or disabling \
             swap for their cgroup (memory.swap.max=0)."
                .to_owned(),
        ))
    }
}
