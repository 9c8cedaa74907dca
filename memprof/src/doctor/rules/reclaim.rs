//! Rules over the kernel's reclaim: pressure stalls, high-order free
//! blocks, and unreclaimable slab.

use super::{b, finding, pct, percent, vmstat_rates, Rule, MIB};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::DoctorInput;
use crate::host::{CgroupMemory, Pressure};

/// Reclaim stress: tasks stalled on memory (pressure stall information),
/// direct reclaim, and reclaim that scans far more than it frees.
///
/// Thresholds, on the host's `/proc/pressure/memory` and the cgroup v2
/// `memory.pressure` (Documentation/accounting/psi.rst):
///
/// * **warning** when `some avg10` >= **10 %**, `some avg60` >= **5 %** or
///   `full avg10` >= **2 %**; **critical** when `full avg10` >= **20 %** or
///   `full avg60` >= **10 %** (for scale: systemd-oomd's default is to kill at
///   60 % pressure held for 30 s, oomd.conf(5)).
/// * **warning** when direct reclaim happens at **1 stall/s** or more over the
///   series (`allocstall_*` in `/proc/vmstat`): allocating threads reclaim
///   pages themselves and wait.
/// * **warning** when reclaim efficiency (`pgsteal / pgscan`, sar -B's
///   `%vmeff`) is under **30 %** while scanning at least **1000 pages/s**;
///   sar(1): "If it gets too low (e.g. less than 30%) then the virtual memory is
///   having some difficulties".
#[derive(Debug, Clone, Copy, Default)]
pub struct ReclaimPressure;

impl Rule for ReclaimPressure {
    fn id(&self) -> &'static str {
        "reclaim-pressure"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let mut severity: Option<Severity> = None;
        let mut raise = |s: Severity| severity = Some(severity.map_or(s, |old| old.max(s)));
        let mut evidence = Vec::new();
        let mut seen = Vec::new();
        let host = input.host.as_ref().and_then(|h| h.pressure.value());
        let cgroup = input.cgroup_view().and_then(|c| match &c.memory {
            CgroupMemory::V2(v2) => v2.pressure.value(),
            CgroupMemory::V1(_) => None,
        });
        for (scope, pressure) in [("host", host), ("cgroup", cgroup)] {
            let Some(p) = pressure else { continue };
            if let Some(s) = psi_severity(p) {
                raise(s);
                seen.push(format!(
                    "{scope}: some tasks stalled {:.1} % of the last 10 s{}",
                    p.some.avg10,
                    p.full
                        .map(|f| format!(", all tasks at once {:.1} %", f.avg10))
                        .unwrap_or_default()
                ));
            }
            evidence.push(pct(&format!("{scope}_psi_some_avg10"), p.some.avg10));
            evidence.push(pct(&format!("{scope}_psi_some_avg60"), p.some.avg60));
            if let Some(full) = p.full {
                evidence.push(pct(&format!("{scope}_psi_full_avg10"), full.avg10));
                evidence.push(pct(&format!("{scope}_psi_full_avg60"), full.avg60));
            }
        }
        if let Some(r) = vmstat_rates(input) {
            evidence.push(Evidence::number(
                "allocstall",
                r.allocstall_per_sec,
                Unit::PerSecond,
            ));
            evidence.push(Evidence::number(
                "pgscan",
                r.pgscan_per_sec,
                Unit::PerSecond,
            ));
            evidence.push(Evidence::number(
                "pgsteal",
                r.pgsteal_per_sec,
                Unit::PerSecond,
            ));
            if r.allocstall_per_sec >= 1.0 {
                raise(Severity::Warning);
                seen.push(format!(
                    "{:.1} direct reclaim stalls/s: allocating threads reclaim memory themselves",
                    r.allocstall_per_sec
                ));
            }
            if let Some(eff) = r.reclaim_efficiency {
                evidence.push(pct("reclaim_efficiency", eff * 100.0));
                if eff < 0.3 && r.pgscan_per_sec >= 1000.0 {
                    raise(Severity::Warning);
                    seen.push(format!(
                        "reclaim frees only {:.0} % of the pages it scans",
                        eff * 100.0
                    ));
                }
            }
        }
        let severity = severity?;
        Some(finding(
            self.id(),
            severity,
            "Memory pressure: tasks are waiting for memory".to_owned(),
            evidence,
            format!(
                "{}. Time stalled on memory is time not spent working: latency rises before \
                 anything is killed.",
                seen.join("; ")
            ),
            "Find who uses the memory (memprof top) and what grows (memprof watch <pid>). \
             Reduce the working set or give more memory. If page cache churns, the files \
             read do not fit in RAM; if anonymous memory grows, look for a leak \
             (GET /debug/memprof/leaks)."
                .to_owned(),
        ))
    }
}

/// The severity of one pressure file, by [`ReclaimPressure`]'s thresholds.
fn psi_severity(p: &Pressure) -> Option<Severity> {
    let (full10, full60) = p.full.map_or((0.0, 0.0), |f| (f.avg10, f.avg60));
    if full10 >= 20.0 || full60 >= 10.0 {
        Some(Severity::Critical)
    } else if p.some.avg10 >= 10.0 || p.some.avg60 >= 5.0 || full10 >= 2.0 {
        Some(Severity::Warning)
    } else {
        None
    }
}

/// High-order depletion: almost no free memory in blocks big enough for a
/// huge page.
///
/// Looks at the `Normal` and `Movable` zones (or `DMA32` on machines without
/// `Normal`) at the huge page order (9 with 4 KiB pages and 2 MiB huge
/// pages, from `Hugepagesize`). Fires, as a warning, when the kernel's unusable
/// free space index there is above **0.9**: over 90 % of the zone's free
/// memory is in blocks too small for a huge page (mm/vmstat.c
/// `unusable_free_index`, debugfs `extfrag/unusable_index`). Transparent huge
/// page faults then fall back to small pages or stall in compaction. The
/// fragmentation index is shown too: towards 1 the failure is due to
/// fragmentation, towards 0 to lack of memory (vm.rst, `extfrag_threshold`,
/// default 500).
#[derive(Debug, Clone, Copy, Default)]
pub struct HighOrderDepletion;

const UNUSABLE_INDEX: f64 = 0.9;

impl Rule for HighOrderDepletion {
    fn id(&self) -> &'static str {
        "high-order-depletion"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let host = input.host.as_ref()?;
        let buddy = host.buddyinfo.value()?;
        let page = host.page_size_bytes.max(1);
        let huge = input
            .meminfo()
            .and_then(|m| m.hugepagesize_bytes)
            .unwrap_or(2 * MIB);
        let order = (huge / page).max(1).ilog2();
        let has_normal = buddy.zones.iter().any(|z| z.zone == "Normal");
        let mut evidence = Vec::new();
        let mut depleted = Vec::new();
        for zone in &buddy.zones {
            let wanted = if has_normal {
                zone.zone == "Normal" || zone.zone == "Movable"
            } else {
                zone.zone == "DMA32"
            };
            let Some(info) = zone.orders.get(order as usize) else {
                continue;
            };
            if !wanted || info.unusable_free_index <= UNUSABLE_INDEX {
                continue;
            }
            let name = format!("node{}_{}", zone.node, zone.zone);
            evidence.push(Evidence::number(
                format!("{name}_unusable_index_order{order}"),
                info.unusable_free_index,
                Unit::Ratio,
            ));
            if let Some(frag) = info.fragmentation_index {
                evidence.push(Evidence::number(
                    format!("{name}_fragmentation_index_order{order}"),
                    frag,
                    Unit::Ratio,
                ));
            }
            evidence.push(Evidence::bytes(format!("{name}_free"), zone.free_bytes));
            let big: u64 = zone.orders[order as usize..]
                .iter()
                .map(|o| {
                    let blocks = 1u64.checked_shl(o.order - order).unwrap_or(u64::MAX);
                    o.free_blocks.saturating_mul(blocks)
                })
                .fold(0u64, u64::saturating_add);
            evidence.push(Evidence::number(
                format!("{name}_free_huge_blocks"),
                big as f64,
                Unit::Count,
            ));
            depleted.push(format!(
                "node {} {}: {:.0} % of {} free is in blocks smaller than {}",
                zone.node,
                zone.zone,
                info.unusable_free_index * 100.0,
                b(zone.free_bytes),
                b(huge)
            ));
        }
        if depleted.is_empty() {
            return None;
        }
        if let Some(r) = vmstat_rates(input) {
            evidence.push(Evidence::number(
                "compact_stall",
                r.compact_stall_per_sec,
                Unit::PerSecond,
            ));
            evidence.push(Evidence::number(
                "thp_fault_fallback",
                r.thp_fault_fallback_per_sec,
                Unit::PerSecond,
            ));
        }
        if let Some(enabled) = host.thp.enabled.value() {
            evidence.push(Evidence::text("thp_enabled", enabled.clone()));
        }
        Some(finding(
            self.id(),
            Severity::Warning,
            format!("Free memory is too fragmented for {} pages", b(huge)),
            evidence,
            format!(
                "{}. Transparent huge page faults will fall back to small pages (more TLB \
                 misses) or stall while the kernel compacts memory; drivers and hugetlb \
                 allocations of that size may fail.",
                depleted.join("; ")
            ),
            "Compact now with echo 1 > /proc/sys/vm/compact_memory (costs CPU); keep more \
             free memory (vm.min_free_kbytes, vm.watermark_scale_factor) so kswapd and \
             kcompactd work ahead; reserve hugetlb pages at boot if an application needs \
             them; with THP, defrag=defer or madvise avoids stalls in page faults."
                .to_owned(),
        ))
    }
}

/// Kernel slab growth: unreclaimable kernel slab (`SUnreclaim` in
/// `/proc/meminfo`) that is large or growing.
///
/// A **warning** when `SUnreclaim` is at least **10 %** of `MemTotal`
/// (**critical** from **20 %**), or grew by at least **16 MiB** and **5 %**
/// over the series. `SUnreclaim` is kernel memory that cannot be reclaimed
/// under pressure (Documentation/filesystems/proc.rst, meminfo); a few
/// percent of RAM is usual, growth without bound is a kernel-side leak
/// (socket buffers, conntrack, a driver). memprof's own thresholds.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelSlabGrowth;

const SLAB_WARN_PERCENT: f64 = 10.0;
const SLAB_CRITICAL_PERCENT: f64 = 20.0;
const SLAB_GROWTH_BYTES: u64 = 16 * MIB;

impl Rule for KernelSlabGrowth {
    fn id(&self) -> &'static str {
        "kernel-slab"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let meminfo = input.meminfo();
        let unreclaim = meminfo.and_then(|m| m.s_unreclaim_bytes);
        let total = meminfo.and_then(|m| m.mem_total_bytes);
        let share = match (unreclaim, total) {
            (Some(u), Some(t)) if t > 0 => Some(percent(u, t)),
            _ => None,
        };
        let growth = input.span(|r| r.meminfo.as_ref()?.s_unreclaim_bytes);
        let mut severity = None;
        if let Some(share) = share {
            if share >= SLAB_CRITICAL_PERCENT {
                severity = Some(Severity::Critical);
            } else if share >= SLAB_WARN_PERCENT {
                severity = Some(Severity::Warning);
            }
        }
        let mut evidence = Vec::new();
        let mut growing = None;
        if let Some((first, last, seconds)) = growth {
            let grown = last.saturating_sub(first);
            if grown >= SLAB_GROWTH_BYTES && grown as f64 >= first as f64 * 0.05 {
                severity = severity.or(Some(Severity::Warning));
                growing = Some((grown, seconds));
            }
            evidence.push(Evidence::bytes("SUnreclaim_first", first));
            evidence.push(Evidence::number(
                "SUnreclaim_growth_rate",
                (last as f64 - first as f64) * 60.0 / seconds,
                Unit::BytesPerMinute,
            ));
        }
        let severity = severity?;
        if let Some(u) = unreclaim {
            evidence.insert(0, Evidence::bytes("SUnreclaim", u));
        }
        if let Some(t) = total {
            evidence.push(Evidence::bytes("MemTotal", t));
        }
        if let Some(share) = share {
            evidence.push(pct("SUnreclaim_of_MemTotal", share));
        }
        if let Some(r) = meminfo.and_then(|m| m.s_reclaimable_bytes) {
            evidence.push(Evidence::bytes("SReclaimable", r));
        }
        let title = match growing {
            Some((grown, seconds)) => format!(
                "Unreclaimable kernel slab grew {} in {seconds:.0} s",
                b(grown)
            ),
            None => format!(
                "Unreclaimable kernel slab holds {:.0} % of RAM",
                share.unwrap_or(0.0)
            ),
        };
        Some(finding(
            self.id(),
            severity,
            title,
            evidence,
            "The kernel's own allocations that cannot be reclaimed under pressure \
             (SUnreclaim) are large or growing. This memory is charged to no process, so \
             per-process tools do not show it."
                .to_owned(),
            "See which caches grow with slabtop -s c (or /proc/slabinfo as root). Common \
             causes: socket buffers of many connections, nf_conntrack entries, a leaking \
             driver or filesystem. A kernel leak is fixed by an upgrade or a reboot, not in \
             the application."
                .to_owned(),
        ))
    }
}
