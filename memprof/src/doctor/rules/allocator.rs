//! Rules over jemalloc's statistics and the process memory around them.

// Without jemalloc the allocator rules find nothing; their thresholds and
// helpers go unused.
#![cfg_attr(not(feature = "jemalloc"), allow(dead_code, unused_imports))]

use super::{b, finding, pct, Rule, MIB};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::DoctorInput;

/// Allocator fragmentation: free slots in slabs that still hold live blocks.
///
/// Fires when jemalloc's `active / allocated` (Redis's `allocator_frag_ratio`)
/// is above **1.1** and `active - allocated` is above **10 MiB**: the
/// thresholds of Redis's `MEMORY DOCTOR` ("High allocator fragmentation",
/// `src/object.c`, `high_alloc_frag`). A warning. Names the three size classes
/// with the most bytes in free slots, with their utilisation
/// (`curregs / (nregs * curslabs)`, jemalloc's `stats.arenas.<i>.bins.<j>`).
///
/// Purging does not cure it: a slab with one live slot keeps its pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocatorFragmentation;

/// Redis's `allocator_frag` thresholds.
const FRAG_RATIO: f64 = 1.1;
const FRAG_BYTES: i64 = 10 << 20;

impl Rule for AllocatorFragmentation {
    fn id(&self) -> &'static str {
        "allocator-fragmentation"
    }

    #[cfg(not(feature = "jemalloc"))]
    fn check(&self, _input: &DoctorInput) -> Option<Finding> {
        None
    }

    #[cfg(feature = "jemalloc")]
    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let stats = input.jemalloc()?;
        let ratio = stats.ratios.allocator_fragmentation_ratio?;
        let bytes = stats.ratios.allocator_fragmentation_bytes;
        if !(ratio > FRAG_RATIO && bytes > FRAG_BYTES) {
            return None;
        }
        let mut worst: Vec<_> = stats.bins.iter().filter(|b| b.wasted_bytes > 0).collect();
        worst.sort_by_key(|bin| std::cmp::Reverse(bin.wasted_bytes));
        worst.truncate(3);
        // The worst class always; others only when they matter (1 MiB).
        let mut rank = 0;
        worst.retain(|bin| {
            rank += 1;
            rank == 1 || bin.wasted_bytes >= MIB
        });
        let mut evidence = vec![
            Evidence::number("allocator_frag_ratio", ratio, Unit::Ratio),
            Evidence::number("allocator_frag_bytes", bytes as f64, Unit::Bytes),
            Evidence::bytes("allocated", stats.totals.allocated_bytes),
            Evidence::bytes("active", stats.totals.active_bytes),
            Evidence::bytes("small_bin_waste", stats.ratios.small_bin_waste_bytes),
        ];
        let mut named = Vec::new();
        for bin in &worst {
            let used = bin.utilisation.unwrap_or(0.0) * 100.0;
            evidence.push(Evidence::bytes(
                format!("bin_{}_wasted", bin.size_bytes),
                bin.wasted_bytes,
            ));
            evidence.push(pct(&format!("bin_{}_utilisation", bin.size_bytes), used));
            named.push(format!(
                "the {}-byte class ({used:.0} % of slots used, {} in free slots)",
                bin.size_bytes,
                b(bin.wasted_bytes)
            ));
        }
        let worst_text = if named.is_empty() {
            "No small size class stands out, so the waste is in large extents \
             (page rounding of large blocks)."
                .to_owned()
        } else {
            format!("Worst: {}.", named.join("; "))
        };
        Some(finding(
            self.id(),
            Severity::Warning,
            format!(
                "Allocator fragmentation: {} of active pages hold no live data (ratio {ratio:.2})",
                b(bytes.max(0) as u64)
            ),
            evidence,
            format!(
                "jemalloc keeps {} of active pages for {} of live blocks. The difference is \
                 free slots in slabs that still hold some live blocks, so the pages cannot be \
                 returned; purging releases only whole free pages and does not help. {worst_text}",
                b(stats.totals.active_bytes),
                b(stats.totals.allocated_bytes)
            ),
            "Usually many small objects were allocated, then most freed while a few \
             survivors pin each slab (caches, maps that grew then shrank). It shrinks as new \
             allocations of the same sizes reuse the free slots. Find who holds the survivors: \
             GET /debug/memprof/heap (or the flamegraph) shows live blocks by stack. Rebuild \
             or shrink_to_fit long-lived collections after large removals; keep long-lived and \
             short-lived objects of the same size apart. A restart gives the memory back."
                .to_owned(),
        ))
    }
}

/// Allocator RSS overhead: resident pages jemalloc holds beyond its active
/// ones, mostly dirty pages not yet purged.
///
/// Fires when `resident / active` (Redis's `allocator_rss_ratio`) is above
/// **1.1** and `resident - active` above **10 MiB**, Redis `MEMORY DOCTOR`'s
/// "High allocator RSS overhead" (`high_alloc_rss`). A warning when jemalloc
/// has no background thread or never decays (`dirty_decay_ms` -1): then dirty
/// pages go back only when the program calls into jemalloc (jemalloc(3),
/// `opt.dirty_decay_ms`, `background_thread`); otherwise information, as decay
/// will return them within `dirty_decay_ms`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocatorRssOverhead;

const RSS_RATIO: f64 = 1.1;
const RSS_BYTES: i64 = 10 << 20;

impl Rule for AllocatorRssOverhead {
    fn id(&self) -> &'static str {
        "allocator-dirty-pages"
    }

    #[cfg(not(feature = "jemalloc"))]
    fn check(&self, _input: &DoctorInput) -> Option<Finding> {
        None
    }

    #[cfg(feature = "jemalloc")]
    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let stats = input.jemalloc()?;
        let ratio = stats.ratios.allocator_rss_ratio?;
        let bytes = stats.ratios.allocator_rss_bytes;
        if !(ratio > RSS_RATIO && bytes > RSS_BYTES) {
            return None;
        }
        let s = &stats.settings;
        let slow = !s.background_thread || s.opt_dirty_decay_ms < 0;
        let severity = if slow {
            Severity::Warning
        } else {
            Severity::Info
        };
        let decay = if s.opt_dirty_decay_ms < 0 {
            "dirty_decay_ms is -1, so dirty pages are never returned by decay".to_owned()
        } else {
            format!(
                "dirty pages are returned over dirty_decay_ms = {} ms{}",
                s.opt_dirty_decay_ms,
                if s.background_thread {
                    " by jemalloc's background thread"
                } else {
                    ", but with no background thread only while the program calls into \
                     jemalloc: an idle thread pool keeps them"
                }
            )
        };
        Some(finding(
            self.id(),
            severity,
            format!(
                "Allocator holds {} of resident pages beyond its active ones (ratio {ratio:.2})",
                b(bytes.max(0) as u64)
            ),
            vec![
                Evidence::number("allocator_rss_ratio", ratio, Unit::Ratio),
                Evidence::number("allocator_rss_bytes", bytes as f64, Unit::Bytes),
                Evidence::bytes("resident", stats.totals.resident_bytes),
                Evidence::bytes("active", stats.totals.active_bytes),
                Evidence::bytes("dirty", stats.pages.dirty_bytes),
                Evidence::bytes("muzzy", stats.pages.muzzy_bytes),
                Evidence::bytes("metadata", stats.totals.metadata_bytes),
                Evidence::number("opt.dirty_decay_ms", s.opt_dirty_decay_ms as f64, Unit::Milliseconds),
                Evidence::number("opt.muzzy_decay_ms", s.opt_muzzy_decay_ms as f64, Unit::Milliseconds),
                Evidence::text("background_thread", s.background_thread.to_string()),
            ],
            format!(
                "Freed memory sits in {} of dirty pages that jemalloc keeps for reuse and has \
                 not yet returned to the kernel; they count in the process RSS and the cgroup. \
                 Here {decay}.",
                b(stats.pages.dirty_bytes)
            ),
            "Return them now with POST /debug/memprof/allocator/purge (memprof::jemalloc::purge()). \
             To return them sooner for good, start the program with \
             _RJEM_MALLOC_CONF=background_thread:true,dirty_decay_ms:1000 (MALLOC_CONF when \
             jemalloc is not prefixed); background threads decay pages even when the program is idle."
                .to_owned(),
        ))
    }
}

/// RSS outside the allocator: the process holds much more than jemalloc's
/// resident pages.
///
/// Fires when `VmRSS / resident` (Redis's `rss_overhead_ratio`) is above
/// **1.1** and `VmRSS - resident` above **10 MiB**, Redis `MEMORY DOCTOR`'s
/// "High process RSS overhead" (`high_proc_rss`). A warning when anonymous
/// memory (`RssAnon`) alone exceeds jemalloc's resident by those margins
/// (other allocators, `mmap`, thread stacks); information when the excess is
/// file-backed (`RssFile`: the binary, libraries, mapped files), which the
/// kernel can reclaim or shares.
#[derive(Debug, Clone, Copy, Default)]
pub struct RssOutsideAllocator;

impl Rule for RssOutsideAllocator {
    fn id(&self) -> &'static str {
        "rss-outside-allocator"
    }

    #[cfg(not(feature = "jemalloc"))]
    fn check(&self, _input: &DoctorInput) -> Option<Finding> {
        None
    }

    #[cfg(feature = "jemalloc")]
    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let stats = input.jemalloc()?;
        let status = input.status();
        let rss = status
            .and_then(|s| s.vm_rss_bytes)
            .or(stats.ratios.process_rss_bytes)?;
        let resident = stats.totals.resident_bytes;
        if resident == 0 {
            return None;
        }
        let outside = rss.saturating_sub(resident);
        let ratio = rss as f64 / resident as f64;
        if !(ratio > RSS_RATIO && outside > RSS_BYTES as u64) {
            return None;
        }
        let anon = status.and_then(|s| s.rss_anon_bytes);
        let file = status.and_then(|s| s.rss_file_bytes);
        let anon_outside = anon.map(|a| a.saturating_sub(resident));
        let anon_heavy = anon.is_some_and(|a| {
            a as f64 / resident as f64 > RSS_RATIO && a.saturating_sub(resident) > RSS_BYTES as u64
        });
        let mut evidence = vec![
            Evidence::bytes("VmRSS", rss),
            Evidence::bytes("jemalloc_resident", resident),
            Evidence::number("rss_overhead_ratio", ratio, Unit::Ratio),
            Evidence::bytes("rss_overhead_bytes", outside),
        ];
        let status_fields = [
            ("RssAnon", anon),
            ("RssFile", file),
            ("RssShmem", status.and_then(|s| s.rss_shmem_bytes)),
        ];
        for (name, value) in status_fields {
            if let Some(value) = value {
                evidence.push(Evidence::bytes(name, value));
            }
        }
        if let Some(threads) = status.and_then(|s| s.threads) {
            evidence.push(Evidence::number("Threads", threads as f64, Unit::Count));
        }
        let (severity, meaning) = if anon_heavy {
            (
                Severity::Warning,
                format!(
                    "The process has {} of anonymous memory that jemalloc did not hand out: \
                     another allocator (a C library using glibc malloc, an embedded runtime), \
                     direct mmap, or thread stacks. memprof's heap profile does not see it.",
                    b(anon_outside.unwrap_or(outside))
                ),
            )
        } else {
            (
                Severity::Info,
                format!(
                    "Most of the {} outside jemalloc is file-backed (the binary, shared \
                     libraries, mapped files): shared with the page cache and reclaimable.",
                    b(outside)
                ),
            )
        };
        Some(finding(
            self.id(),
            severity,
            format!(
                "Process RSS is {} above what jemalloc holds (ratio {ratio:.2})",
                b(outside)
            ),
            evidence,
            meaning,
            "See which mappings hold it: pmap -x <pid> | sort -n -k3 | tail, or \
             /proc/<pid>/smaps (anonymous regions without a name are mmap or another \
             malloc's arenas). With glibc malloc in C dependencies, MALLOC_ARENA_MAX=2 caps \
             its arenas; many threads each keep a stack (see Threads)."
                .to_owned(),
        ))
    }
}

/// Retained address space: virtual memory jemalloc keeps mapped for reuse
/// after returning its pages to the kernel.
///
/// Fires, as information, when `stats.retained` is at least **1 GiB** and at
/// least `stats.mapped`. Retained memory is not resident: it counts in
/// `VmSize` and against `RLIMIT_AS` (`ulimit -v`), not in RSS or the cgroup
/// (jemalloc(3), `stats.retained`, `opt.retain`). Usually harmless.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetainedAddressSpace;

const RETAINED_BYTES: u64 = 1 << 30;

impl Rule for RetainedAddressSpace {
    fn id(&self) -> &'static str {
        "allocator-retained"
    }

    #[cfg(not(feature = "jemalloc"))]
    fn check(&self, _input: &DoctorInput) -> Option<Finding> {
        None
    }

    #[cfg(feature = "jemalloc")]
    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let stats = input.jemalloc()?;
        let retained = stats.totals.retained_bytes;
        if retained < RETAINED_BYTES || retained < stats.totals.mapped_bytes {
            return None;
        }
        let mut evidence = vec![
            Evidence::bytes("retained", retained),
            Evidence::bytes("mapped", stats.totals.mapped_bytes),
            Evidence::bytes("resident", stats.totals.resident_bytes),
        ];
        if let Some(size) = input.status().and_then(|s| s.vm_size_bytes) {
            evidence.push(Evidence::bytes("VmSize", size));
        }
        Some(finding(
            self.id(),
            Severity::Info,
            format!(
                "jemalloc retains {} of address space (not memory)",
                b(retained)
            ),
            evidence,
            "Retained ranges are virtual address space whose pages went back to the kernel; \
             jemalloc keeps the mappings to reuse them without new mmap calls. They use no RAM \
             and do not count in RSS or the cgroup, only in VmSize. Usually harmless."
                .to_owned(),
            "Nothing to do unless an address-space limit (ulimit -v, RLIMIT_AS) bites; then \
             start with _RJEM_MALLOC_CONF=retain:false so jemalloc unmaps instead."
                .to_owned(),
        ))
    }
}

/// Anonymous memory growth without allocator growth: the process's
/// `RssAnon` grows over the series while jemalloc's resident and allocated
/// bytes stay flat, so the growth is outside the heap memprof sees.
///
/// Needs two readings with both figures. Fires, as a warning, when `RssAnon`
/// grew by at least **32 MiB** and **10 %**, and at least **75 %** of that
/// growth is not matched by growth of jemalloc's `resident` (or `allocated`).
/// memprof's own threshold.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnonGrowthOutsideHeap;

const ANON_GROWTH_BYTES: u64 = 32 * MIB;

impl Rule for AnonGrowthOutsideHeap {
    fn id(&self) -> &'static str {
        "anon-growth-outside-heap"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let ((anon0, alloc0, res0), (anon1, alloc1, res1), seconds) = input.span(|r| {
            let anon = r.status.as_ref()?.rss_anon_bytes?;
            Some((anon, r.allocated_bytes?, r.resident_bytes))
        })?;
        let growth = anon1.saturating_sub(anon0);
        if growth < ANON_GROWTH_BYTES || (growth as f64) < anon0 as f64 * 0.10 {
            return None;
        }
        let heap_growth = alloc1.saturating_sub(alloc0);
        let resident_growth = match (res0, res1) {
            (Some(r0), Some(r1)) => r1.saturating_sub(r0),
            _ => 0,
        };
        let explained = heap_growth.max(resident_growth);
        let outside = growth.saturating_sub(explained);
        if (outside as f64) < growth as f64 * 0.75 {
            return None;
        }
        let per_minute = outside as f64 * 60.0 / seconds;
        Some(finding(
            self.id(),
            Severity::Warning,
            format!(
                "Anonymous memory grew {} in {seconds:.0} s while the heap stayed flat",
                b(growth)
            ),
            vec![
                Evidence::bytes("RssAnon_first", anon0),
                Evidence::bytes("RssAnon_last", anon1),
                Evidence::bytes("allocated_first", alloc0),
                Evidence::bytes("allocated_last", alloc1),
                Evidence::bytes("resident_growth", resident_growth),
                Evidence::bytes("growth_outside_allocator", outside),
                Evidence::number("growth_rate", per_minute, Unit::BytesPerMinute),
                Evidence::number("interval", seconds, Unit::Seconds),
            ],
            format!(
                "{} of new anonymous memory did not come from jemalloc, so memprof's heap \
                 profile cannot show where it comes from: another allocator (C libraries, \
                 glibc malloc), anonymous mmap, new threads' stacks, or a memory-mapped \
                 buffer.",
                b(outside)
            ),
            "Compare /proc/<pid>/smaps (or pmap -x) now and in a minute to see which mapping \
             grows; check the thread count; look at native dependencies with their own \
             allocation (TLS, compression, database drivers)."
                .to_owned(),
        ))
    }
}
