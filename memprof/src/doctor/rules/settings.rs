//! Rules over the host's memory settings: min_free_kbytes, transparent huge
//! pages and overcommit.

use super::{b, finding, pct, percent, Rule};
use crate::doctor::finding::{Evidence, Finding, Severity, Unit};
use crate::doctor::input::DoctorInput;

/// `vm.min_free_kbytes` well below the kernel's own default.
///
/// The kernel sets `min_free_kbytes = sqrt(lowmem_kbytes * 16)`, clamped to
/// 128..=262144 (mm/page_alloc.c, `calculate_min_free_kbytes`; vm.rst), and
/// khugepaged raises it further for THP. Estimating `lowmem_kbytes` by
/// `MemTotal`, the rule warns when the setting is under **75 %** of that
/// default: the min watermark is so low that atomic allocations (network
/// receive) fail and kswapd starts too late, so allocations stall in direct
/// reclaim. Information when it is above **5 %** of RAM (memory kept idle,
/// reclaim starts early).
#[derive(Debug, Clone, Copy, Default)]
pub struct LowMinFreeKbytes;

/// The kernel's default `min_free_kbytes` for `mem_kib` of low memory.
pub(crate) fn default_min_free_kib(mem_kib: u64) -> u64 {
    let product = mem_kib.saturating_mul(16) as f64;
    (product.sqrt() as u64).clamp(128, 262_144)
}

impl Rule for LowMinFreeKbytes {
    fn id(&self) -> &'static str {
        "min-free-kbytes"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let host = input.host.as_ref()?;
        let min_free = *host.sysctls.min_free_bytes.value()?;
        let total = input.meminfo()?.mem_total_bytes?;
        let default = default_min_free_kib(total / 1024).saturating_mul(1024);
        let share = percent(min_free, total);
        let evidence = vec![
            Evidence::bytes("vm.min_free_kbytes", min_free),
            Evidence::bytes("kernel_default", default),
            Evidence::bytes("MemTotal", total),
            pct("of_MemTotal", share),
        ];
        if (min_free as f64) < 0.75 * default as f64 {
            Some(finding(
                self.id(),
                Severity::Warning,
                format!(
                    "vm.min_free_kbytes is {} where the kernel would pick {}",
                    b(min_free),
                    b(default)
                ),
                evidence,
                "The kernel keeps this much memory free for allocations that cannot wait \
                 (interrupts, network receive) and places kswapd's watermarks from it. Set \
                 this low, kswapd wakes late, allocations stall in direct reclaim, and atomic \
                 allocations fail (\"page allocation failure\" in dmesg)."
                    .to_owned(),
                format!(
                    "Restore at least the default: sysctl -w vm.min_free_kbytes={} (and in \
                     /etc/sysctl.d). To make kswapd start earlier without raising the \
                     reserve, raise vm.watermark_scale_factor instead.",
                    default / 1024
                ),
            ))
        } else if share > 5.0 {
            Some(finding(
                self.id(),
                Severity::Info,
                format!(
                    "vm.min_free_kbytes keeps {share:.1} % of RAM ({}) free",
                    b(min_free)
                ),
                evidence,
                "A large reserve is memory no application can use; reclaim starts early and \
                 the OOM killer can fire while this much is free."
                    .to_owned(),
                format!(
                    "Unless a driver or network load needs it, lower it towards the default \
                     ({} KiB).",
                    default / 1024
                ),
            ))
        } else {
            None
        }
    }
}

/// Transparent huge page policy.
///
/// A **warning** when `enabled` is `always` and `defrag` is `always`: a page
/// fault that finds no free huge page stalls in direct reclaim and
/// compaction (Documentation/admin-guide/mm/transhuge.rst: "always means that
/// an application requesting THP will stall on allocation failure and
/// directly reclaim pages and compact memory"). **Information** when
/// `enabled` is `always` and jemalloc serves the process: partly used huge
/// pages inflate RSS (Redis warns of THP for the same reason), and jemalloc's
/// own `thp` option (jemalloc(3), `opt.thp`) decides how it asks for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThpPolicy;

impl Rule for ThpPolicy {
    fn id(&self) -> &'static str {
        "thp-policy"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let host = input.host.as_ref()?;
        let enabled = host.thp.enabled.value()?;
        if enabled != "always" {
            return None;
        }
        let defrag = host.thp.defrag.value();
        let mut evidence = vec![Evidence::text("transparent_hugepage/enabled", enabled)];
        if let Some(defrag) = defrag {
            evidence.push(Evidence::text("transparent_hugepage/defrag", defrag));
        }
        if let Some(anon_huge) = input.meminfo().and_then(|m| m.anon_huge_pages_bytes) {
            evidence.push(Evidence::bytes("AnonHugePages", anon_huge));
        }
        if defrag.is_some_and(|d| d == "always") {
            return Some(finding(
                self.id(),
                Severity::Warning,
                "Transparent huge pages: enabled=always with defrag=always".to_owned(),
                evidence,
                "Every anonymous page fault tries for a 2 MiB page, and when none is free the \
                 faulting thread stops to reclaim and compact memory. This shows as \
                 unexplained latency spikes of milliseconds or more."
                    .to_owned(),
                "echo defer+madvise > /sys/kernel/mm/transparent_hugepage/defrag (compaction \
                 moves to kcompactd; only madvised regions stall), or set enabled=madvise."
                    .to_owned(),
            ));
        }
        if !jemalloc_present(input) {
            return None;
        }
        Some(finding(
            self.id(),
            Severity::Info,
            "Transparent huge pages are always on under jemalloc".to_owned(),
            evidence,
            "With THP always on, a huge page that jemalloc uses only in part is still fully \
             resident, and returning part of it splits it. RSS can be higher than the heap \
             explains."
                .to_owned(),
            "If RSS matters more than TLB misses, set enabled=madvise, or start the program \
             with _RJEM_MALLOC_CONF=thp:never; thp:always asks for huge pages on purpose."
                .to_owned(),
        ))
    }
}

/// Whether jemalloc statistics are part of the input.
fn jemalloc_present(input: &DoctorInput) -> bool {
    #[cfg(feature = "jemalloc")]
    if input.jemalloc().is_some() {
        return true;
    }
    input.series.iter().any(|r| r.allocated_bytes.is_some())
}

/// Overcommit policy and how much is committed.
///
/// From Documentation/mm/overcommit-accounting.rst:
///
/// * `vm.overcommit_memory = 2` (strict): allocations fail with `ENOMEM`
///   once `Committed_AS` reaches `CommitLimit`. A **warning** at **90 %** of
///   it, **critical** at **98 %**: `malloc`, `mmap` and `fork` are about to fail.
/// * `vm.overcommit_memory = 1` (always): the kernel never refuses, so
///   running out ends in the OOM killer rather than a failed allocation.
///   **Information**, a **warning** when `Committed_AS` exceeds
///   `MemTotal + SwapTotal` (more promised than exists).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overcommit;

impl Rule for Overcommit {
    fn id(&self) -> &'static str {
        "overcommit"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let host = input.host.as_ref()?;
        let mode = *host.sysctls.overcommit_memory.value()?;
        let meminfo = input.meminfo()?;
        let committed = meminfo.committed_as_bytes?;
        let mut evidence = vec![
            Evidence::number("vm.overcommit_memory", mode as f64, Unit::None),
            Evidence::bytes("Committed_AS", committed),
        ];
        match mode {
            2 => {
                let limit = meminfo.commit_limit_bytes?;
                let share = percent(committed, limit);
                evidence.push(Evidence::bytes("CommitLimit", limit));
                evidence.push(pct("Committed_AS_of_CommitLimit", share));
                if let Some(ratio) = host.sysctls.overcommit_ratio.value() {
                    evidence.push(Evidence::number(
                        "vm.overcommit_ratio",
                        *ratio as f64,
                        Unit::Percent,
                    ));
                }
                let severity = if share >= 98.0 {
                    Severity::Critical
                } else if share >= 90.0 {
                    Severity::Warning
                } else {
                    return None;
                };
                Some(finding(
                    self.id(),
                    severity,
                    format!("Strict overcommit: {share:.0} % of the commit limit is promised"),
                    evidence,
                    format!(
                        "With vm.overcommit_memory=2 the kernel refuses new memory once {} \
                         is committed ({} is). malloc returns NULL, mmap and fork fail with \
                         ENOMEM, even with free RAM, because address space reserved but not \
                         yet used counts too.",
                        b(limit),
                        b(committed)
                    ),
                    "Raise vm.overcommit_ratio (or vm.overcommit_kbytes) or add swap; find \
                     processes reserving much more than they use (VmSize far above VmRSS, \
                     large thread stacks, JVM heaps)."
                        .to_owned(),
                ))
            }
            1 => {
                let total = meminfo
                    .mem_total_bytes?
                    .saturating_add(meminfo.swap_total_bytes.unwrap_or(0));
                evidence.push(Evidence::bytes("MemTotal+SwapTotal", total));
                let severity = if committed > total {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                Some(finding(
                    self.id(),
                    severity,
                    "Overcommit always on (vm.overcommit_memory=1)".to_owned(),
                    evidence,
                    format!(
                        "The kernel grants every allocation, so a shortage ends in the OOM \
                         killer instead of a failed allocation. {} is promised against {} \
                         of RAM and swap.",
                        b(committed),
                        b(total)
                    ),
                    "Fine for workloads that map sparse memory (Redis fork, some \
                     databases); otherwise the default heuristic (0) refuses obviously \
                     impossible allocations. Either way, watch cgroup limits and OOM kills."
                        .to_owned(),
                ))
            }
            _ => None,
        }
    }
}
