//! `format=text`: the views as aligned plain text for a terminal
//! (`curl -s .../doctor?format=text`). Amounts are in binary units
//! (KiB, MiB, GiB), as [`crate::doctor::format_bytes`] writes them.

use std::fmt::Write;

use super::views::{AllocatorBody, DoctorBody, HistoryBody, HostBody, TopBody};
use crate::host::Reading;
use crate::human::{format_bytes, format_bytes_signed};
use crate::profile::{Diff, Kind, LeakReport};

fn bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), format_bytes)
}

#[cfg(feature = "jemalloc")]
fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
}

/// `hh:mm:ss` (UTC) of a Unix time in milliseconds.
fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

fn reason<T>(reading: &Reading<T>) -> &str {
    reading.reason().unwrap_or("")
}

/// The series as a table, one line per point.
pub(crate) fn history(body: &HistoryBody) -> String {
    let s = &body.status;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history: {} points (at most {}), one every {} ms; sampler cost per tick: last {} us, mean {:.0} us, max {} us",
        s.held_points,
        s.capacity,
        s.interval_ms,
        s.sampler_cost_us.last_us,
        s.sampler_cost_us.mean_us,
        s.sampler_cost_us.max_us
    );
    if let Some(why) = &s.allocator_unavailable {
        let _ = writeln!(out, "allocator: {why}");
    }
    let _ = writeln!(
        out,
        "\n{:<9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "time UTC", "allocated", "active", "resident", "retained", "rss", "pss", "heap est."
    );
    for p in &body.points {
        let a = p.allocator;
        let pr = p.process;
        let _ = writeln!(
            out,
            "{:<9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
            clock(p.unix_ms),
            bytes(a.map(|a| a.allocated_bytes)),
            bytes(a.map(|a| a.active_bytes)),
            bytes(a.map(|a| a.resident_bytes)),
            bytes(a.map(|a| a.retained_bytes)),
            bytes(pr.and_then(|p| p.rss_bytes)),
            bytes(pr.and_then(|p| p.pss_bytes)),
            format_bytes_signed(p.heap.inuse_bytes),
        );
    }
    out
}

/// The process, host and cgroup, and the top processes.
pub(crate) fn host(body: &HostBody) -> String {
    let o = &body.overview;
    let mut out = String::new();
    out.push_str("process\n");
    match o.process.status.value() {
        Some(s) => {
            let _ = writeln!(
                out,
                "  rss {}  anon {}  file {}  swap {}  peak rss {}",
                bytes(s.vm_rss_bytes),
                bytes(s.rss_anon_bytes),
                bytes(s.rss_file_bytes),
                bytes(s.vm_swap_bytes),
                bytes(s.vm_hwm_bytes)
            );
        }
        None => {
            let _ = writeln!(out, "  status: {}", reason(&o.process.status));
        }
    }
    if let Some(r) = o.process.smaps_rollup.value() {
        let _ = writeln!(
            out,
            "  pss {}  uss {}",
            bytes(r.pss_bytes),
            format_bytes(r.uss_bytes())
        );
    }
    out.push_str("host\n");
    match o.host.meminfo.value() {
        Some(m) => {
            let _ = writeln!(
                out,
                "  total {}  available {}  free {}  swap {} of {} free",
                bytes(m.mem_total_bytes),
                bytes(m.mem_available_bytes),
                bytes(m.mem_free_bytes),
                bytes(m.swap_free_bytes),
                bytes(m.swap_total_bytes)
            );
        }
        None => {
            let _ = writeln!(out, "  meminfo: {}", reason(&o.host.meminfo));
        }
    }
    match o.host.pressure.value() {
        Some(p) => {
            let full = p
                .full
                .map_or_else(|| "-".to_string(), |f| format!("{:.2}%", f.avg10));
            let _ = writeln!(
                out,
                "  memory pressure avg10: some {:.2}%  full {full}",
                p.some.avg10
            );
        }
        None => {
            let _ = writeln!(out, "  pressure: {}", reason(&o.host.pressure));
        }
    }
    if let Some(r) = &body.vmstat_rates {
        let _ = writeln!(
            out,
            "  over {:.1} s: swap in {:.0} KiB/s, out {:.0} KiB/s, major faults {:.1}/s, direct reclaim stalls {:.1}/s, OOM kills {}",
            r.interval_seconds,
            r.swap_in_kib_per_sec,
            r.swap_out_kib_per_sec,
            r.pgmajfault_per_sec,
            r.allocstall_per_sec,
            r.oom_kills
        );
    }
    out.push_str("cgroup\n");
    match o.cgroup.value() {
        Some(c) => {
            let _ = writeln!(
                out,
                "  {}",
                serde_json::to_string(&c.location.path).unwrap_or_default()
            );
            let (usage, limit) = match &c.memory {
                crate::host::CgroupMemory::V2(v2) => (
                    v2.current_bytes.value().copied(),
                    v2.max_bytes.value().copied(),
                ),
                crate::host::CgroupMemory::V1(v1) => (
                    v1.usage_bytes.value().copied(),
                    v1.limit_bytes.value().copied(),
                ),
            };
            let limit = match limit {
                Some(crate::host::Limit::Bytes(b)) => format_bytes(b),
                Some(crate::host::Limit::Unlimited) => "unlimited".to_string(),
                None => "-".to_string(),
            };
            let _ = writeln!(out, "  usage {}  limit {limit}", bytes(usage));
        }
        None => {
            let _ = writeln!(out, "  {}", reason(&o.cgroup));
        }
    }
    if let Some(top) = o.top_processes.value() {
        let _ = writeln!(
            out,
            "top processes by PSS\n  {:>8} {:<12} {:>10} {:>10} {:>10} {:>10}  program",
            "pid", "user", "swap", "uss", "pss", "rss"
        );
        for p in &top.processes {
            let _ = writeln!(
                out,
                "  {:>8} {:<12} {:>10} {:>10} {:>10} {:>10}  {}",
                p.pid,
                p.user,
                format_bytes(p.swap_bytes),
                format_bytes(p.uss_bytes),
                format_bytes(p.pss_bytes),
                format_bytes(p.rss_bytes),
                p.command.as_deref().unwrap_or(&p.name)
            );
        }
    }
    out
}

/// jemalloc's totals, ratios, pages and the most wasteful bins.
pub(crate) fn allocator(body: &AllocatorBody) -> String {
    let mut out = String::new();
    #[cfg(feature = "jemalloc")]
    if let Some(s) = &body.stats {
        let t = &s.totals;
        let r = &s.ratios;
        let _ = writeln!(
            out,
            "jemalloc (epoch {})\n  allocated {}  active {}  resident {}  retained {}  metadata {}  mapped {}",
            s.epoch,
            format_bytes(t.allocated_bytes),
            format_bytes(t.active_bytes),
            format_bytes(t.resident_bytes),
            format_bytes(t.retained_bytes),
            format_bytes(t.metadata_bytes),
            format_bytes(t.mapped_bytes)
        );
        let _ = writeln!(
            out,
            "  fragmentation (active/allocated) {}  rss ratio (resident/active) {}  rss overhead (rss/resident) {}",
            ratio(r.allocator_fragmentation_ratio),
            ratio(r.allocator_rss_ratio),
            ratio(r.rss_overhead_ratio)
        );
        let _ = writeln!(
            out,
            "  dirty {}  muzzy {}  free slots in small bins {}",
            format_bytes(s.pages.dirty_bytes),
            format_bytes(s.pages.muzzy_bytes),
            format_bytes(r.small_bin_waste_bytes)
        );
        let _ = writeln!(
            out,
            "  dirty_decay_ms {}  muzzy_decay_ms {}  background_thread {}  narenas {}",
            s.settings.opt_dirty_decay_ms,
            s.settings.opt_muzzy_decay_ms,
            s.settings.background_thread,
            s.settings.narenas
        );
        let mut bins: Vec<_> = s.bins.iter().filter(|b| b.wasted_bytes > 0).collect();
        bins.sort_by_key(|b| std::cmp::Reverse(b.wasted_bytes));
        if !bins.is_empty() {
            let _ = writeln!(
                out,
                "most wasteful size classes\n  {:>8} {:>10} {:>8} {:>12} {:>10}",
                "size", "regions", "slabs", "utilisation", "wasted"
            );
            for b in bins.iter().take(10) {
                let _ = writeln!(
                    out,
                    "  {:>8} {:>10} {:>8} {:>12} {:>10}",
                    b.size_bytes,
                    b.curregs,
                    b.curslabs,
                    ratio(b.utilisation),
                    format_bytes(b.wasted_bytes)
                );
            }
        }
        return out;
    }
    let _ = writeln!(
        out,
        "allocator statistics not available: {}",
        body.reason.as_deref().unwrap_or("unknown")
    );
    out
}

/// A purge's before and after.
#[cfg(feature = "jemalloc")]
pub(crate) fn purge(r: &crate::jemalloc::PurgeReport) -> String {
    let released = if r.released_bytes >= 0 {
        format_bytes(r.released_bytes.unsigned_abs())
    } else {
        format!("-{}", format_bytes(r.released_bytes.unsigned_abs()))
    };
    format!(
        "purged: resident {} -> {} (released {released}); dirty {} -> {}; muzzy {} -> {}; active {} -> {}\n",
        format_bytes(r.resident_before_bytes),
        format_bytes(r.resident_after_bytes),
        format_bytes(r.dirty_before_bytes),
        format_bytes(r.dirty_after_bytes),
        format_bytes(r.muzzy_before_bytes),
        format_bytes(r.muzzy_after_bytes),
        format_bytes(r.active_before_bytes),
        format_bytes(r.active_after_bytes),
    )
}

/// The findings, as the doctor renders them, and what they were drawn from.
pub(crate) fn doctor(body: &DoctorBody) -> String {
    let mut out = crate::doctor::render_text(&body.findings);
    let _ = writeln!(
        out,
        "(rates over {} readings spanning {:.0} s)",
        body.series_readings, body.series_span_seconds
    );
    out
}

/// The leak candidates, most suspicious first.
pub(crate) fn leaks(report: &LeakReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} leak candidates (min age {:.0} s, {} history points, {} live samples)",
        report.candidates.len(),
        report.min_age_seconds,
        report.history_points,
        report.live_samples
    );
    for c in &report.candidates {
        let _ = writeln!(
            out,
            "\n#{} {} in use, {} older than min age, growing {}/min (r² {:.2})\n  at {}\n  {}",
            c.rank,
            format_bytes_signed(c.inuse_bytes),
            format_bytes_signed(c.old_bytes),
            format_bytes_signed(c.growth_bytes_per_second * 60.0),
            c.growth_r_squared,
            c.site,
            c.summary
        );
    }
    if let Some(o) = &report.outside_heap {
        let _ = writeln!(out, "\noutside the heap: {}", o.note);
    }
    out
}

/// The largest stacks.
pub(crate) fn top(body: &TopBody) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "top stacks by {} (total {:.0})", body.kind, body.total);
    for s in &body.stacks {
        let error = if s.inuse_bytes_margin_95 > 0.0 {
            format!(
                " ± {} (95%, {} samples)",
                format_bytes_signed(s.inuse_bytes_margin_95),
                s.inuse_samples
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n#{} {:.0} ({} in use{error}, {:.0} objects)\n  at {}",
            s.rank,
            s.value,
            format_bytes_signed(s.inuse_bytes),
            s.inuse_objects,
            s.site
        );
    }
    out
}

/// The most stacks [`diff`] lists; `format=json` has them all.
const DIFF_ROWS: usize = 100;

/// A value of `kind`: bytes in binary units, counts as numbers.
fn amount(kind: Kind, value: f64) -> String {
    match kind {
        Kind::InuseSpace | Kind::AllocSpace => format_bytes_signed(value.abs()),
        Kind::InuseObjects | Kind::AllocObjects => format!("{:.0}", value.abs()),
    }
}

/// A change of `kind`, with its sign.
fn change(kind: Kind, value: f64) -> String {
    let sign = if value < 0.0 { '-' } else { '+' };
    format!("{sign}{}", amount(kind, value))
}

/// The stacks whose `kind` changed between two snapshots, largest change
/// first: the change, both sides, and where the stack enters the program.
pub(crate) fn diff(diff: &Diff, kind: Kind, what: &str) -> String {
    let mut entries: Vec<_> = diff
        .entries
        .iter()
        .filter(|e| e.change(kind).abs() >= 0.5)
        .collect();
    entries.sort_by(|a, b| b.change(kind).abs().total_cmp(&a.change(kind).abs()));
    let mut out = String::new();
    let seconds = diff.after_unix_ms.saturating_sub(diff.before_unix_ms) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "{what}: {} {} ({} -> {}) over {seconds:.1} s; {} stacks changed",
        kind.name(),
        change(kind, diff.total_change(kind)),
        amount(kind, diff.before_totals.get(kind)),
        amount(kind, diff.after_totals.get(kind)),
        entries.len()
    );
    for e in entries.iter().take(DIFF_ROWS) {
        let _ = writeln!(
            out,
            "\n{} ({} -> {})\n  at {}",
            change(kind, e.change(kind)),
            amount(kind, e.before.get(kind)),
            amount(kind, e.after.get(kind)),
            crate::profile::program_site(&e.frames)
        );
    }
    if entries.len() > DIFF_ROWS {
        let _ = writeln!(
            out,
            "\n... and {} more (format=json lists them all)",
            entries.len() - DIFF_ROWS
        );
    }
    out
}
