//! The host and its processes as aligned plain text for a terminal: what
//! `memprof host` and `memprof top` print, and what `GET /host?format=text`
//! answers, from one renderer each. Amounts are in binary units, as
//! [`crate::doctor::format_bytes`] writes them.

use std::fmt::Write;

use super::{CgroupMemory, CgroupView, HostView, Limit, Reading, TopProcesses};
use crate::human::format_bytes;

/// The host (memory, pressure, vm settings, THP, free blocks by zone) and a
/// memory cgroup, one section each:
///
/// ```text
/// MEMORY
///   total 15.5 GiB   available 9.81 GiB   free 2.04 GiB   cached 7.12 GiB
/// ...
/// CGROUP
///   /user.slice/user-1000.slice (v2)
///   usage 3.20 GiB   working set 2.90 GiB   max unlimited   high unlimited   peak 4.01 GiB
/// ```
///
/// A reading that could not be made shows as `unavailable:` and why.
pub fn render_host(host: &HostView, cgroup: &Reading<CgroupView>) -> String {
    let mut out = String::new();
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), format_bytes);
    let _ = writeln!(out, "MEMORY");
    match host.meminfo.value() {
        Some(m) => {
            let swap_used = match (m.swap_total_bytes, m.swap_free_bytes) {
                (Some(t), Some(f)) => Some(t.saturating_sub(f)),
                _ => None,
            };
            let _ = writeln!(
                out,
                "  total {}   available {}   free {}   cached {}",
                opt(m.mem_total_bytes),
                opt(m.mem_available_bytes),
                opt(m.mem_free_bytes),
                opt(m.cached_bytes)
            );
            let _ = writeln!(
                out,
                "  anon {}   shmem {}   swap {} used of {}",
                opt(m.anon_pages_bytes),
                opt(m.shmem_bytes),
                opt(swap_used),
                opt(m.swap_total_bytes)
            );
            let _ = writeln!(
                out,
                "  slab unreclaimable {}   reclaimable {}   page tables {}   committed {} of limit {}",
                opt(m.s_unreclaim_bytes),
                opt(m.s_reclaimable_bytes),
                opt(m.page_tables_bytes),
                opt(m.committed_as_bytes),
                opt(m.commit_limit_bytes)
            );
        }
        None => unavailable(&mut out, &host.meminfo),
    }
    let _ = writeln!(out, "PRESSURE (percent of time stalled on memory)");
    match host.pressure.value() {
        Some(p) => {
            let _ = writeln!(
                out,
                "  some  avg10 {:6.2}  avg60 {:6.2}  avg300 {:6.2}",
                p.some.avg10, p.some.avg60, p.some.avg300
            );
            if let Some(f) = p.full {
                let _ = writeln!(
                    out,
                    "  full  avg10 {:6.2}  avg60 {:6.2}  avg300 {:6.2}",
                    f.avg10, f.avg60, f.avg300
                );
            }
        }
        None => unavailable(&mut out, &host.pressure),
    }
    let _ = writeln!(out, "SETTINGS");
    let num = |r: &Reading<u64>| r.value().map_or_else(|| "-".to_owned(), u64::to_string);
    let word = |r: &Reading<String>| r.value().cloned().unwrap_or_else(|| "-".to_owned());
    let s = &host.sysctls;
    let _ = writeln!(
        out,
        "  vm.overcommit_memory {}   vm.overcommit_ratio {}   vm.swappiness {}",
        num(&s.overcommit_memory),
        num(&s.overcommit_ratio),
        num(&s.swappiness)
    );
    let _ = writeln!(
        out,
        "  vm.min_free_kbytes {}   vm.watermark_scale_factor {}",
        opt(s.min_free_bytes.value().copied()),
        num(&s.watermark_scale_factor)
    );
    let _ = writeln!(
        out,
        "  transparent_hugepage enabled={} defrag={}",
        word(&host.thp.enabled),
        word(&host.thp.defrag)
    );
    let _ = writeln!(
        out,
        "ZONES (free memory; unusable index = share of free memory in blocks too small)"
    );
    match host.buddyinfo.value() {
        Some(b) => {
            let _ = writeln!(
                out,
                "  {:<5} {:<8} {:>10} {:>10} {:>10} {:>10}",
                "NODE", "ZONE", "FREE", "ORDER4", "ORDER9", "ORDER10"
            );
            for z in &b.zones {
                let idx = |o: usize| {
                    z.orders.get(o).map_or_else(
                        || "-".to_owned(),
                        |i| format!("{:.3}", i.unusable_free_index),
                    )
                };
                let _ = writeln!(
                    out,
                    "  {:<5} {:<8} {:>10} {:>10} {:>10} {:>10}",
                    z.node,
                    z.zone,
                    format_bytes(z.free_bytes),
                    idx(4),
                    idx(9),
                    idx(10)
                );
            }
        }
        None => unavailable(&mut out, &host.buddyinfo),
    }
    let _ = writeln!(out, "CGROUP");
    match cgroup.value() {
        Some(view) => write_cgroup(&mut out, view),
        None => unavailable(&mut out, cgroup),
    }
    out
}

/// Processes by PSS, largest first, like `smem -tkp`: swap, USS, PSS and
/// RSS, the program's name (never cut) and its command line (the name when
/// command lines were not read), then the totals over every process read
/// and how many could not be read, with why.
pub fn render_top(top: &TopProcesses) -> String {
    let mut out = String::new();
    // The program's name is never cut; the command line comes last, whole.
    let name_width = top
        .processes
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 32);
    let _ = writeln!(
        out,
        "{:>8} {:<10} {:>10} {:>10} {:>10} {:>10}  {:<name_width$}  Command",
        "PID", "User", "Swap", "USS", "PSS", "RSS", "Program"
    );
    for p in &top.processes {
        let user: String = p.user.chars().take(10).collect();
        let name = if p.name.is_empty() { "-" } else { &p.name };
        let _ = writeln!(
            out,
            "{:>8} {:<10} {:>10} {:>10} {:>10} {:>10}  {:<name_width$}  {}",
            p.pid,
            user,
            format_bytes(p.swap_bytes),
            format_bytes(p.uss_bytes),
            format_bytes(p.pss_bytes),
            format_bytes(p.rss_bytes),
            name,
            p.command.as_deref().unwrap_or(name)
        );
    }
    let t = &top.totals;
    let _ = writeln!(out, "{}", "-".repeat(64 + name_width));
    let _ = writeln!(
        out,
        "{:>8} {:<10} {:>10} {:>10} {:>10} {:>10}  processes (totals over all read)",
        t.processes,
        "",
        format_bytes(t.swap_bytes),
        format_bytes(t.uss_bytes),
        format_bytes(t.pss_bytes),
        format_bytes(t.rss_bytes)
    );
    let s = &top.skipped;
    if s.denied > 0 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let hint = if root {
            "even as root: reading another process's memory map needs ptrace access, which \
             this process lacks (a container without CAP_SYS_PTRACE, or a process of \
             another user namespace)"
        } else {
            "processes of other users; run as root to include them"
        };
        let _ = writeln!(out, "({} processes not readable: {hint})", s.denied);
    }
    out
}

fn unavailable<T>(out: &mut String, reading: &Reading<T>) {
    let _ = writeln!(out, "  unavailable: {}", reading.reason().unwrap_or("?"));
}

fn limit_text(limit: Option<&Limit>) -> String {
    match limit {
        Some(Limit::Bytes(b)) => format_bytes(*b),
        Some(Limit::Unlimited) => "unlimited".to_owned(),
        None => "-".to_owned(),
    }
}

fn write_cgroup(out: &mut String, view: &CgroupView) {
    let opt = |v: Option<&u64>| v.map_or_else(|| "-".to_owned(), |b| format_bytes(*b));
    match &view.memory {
        CgroupMemory::V2(m) => {
            let _ = writeln!(out, "  {} (v2)", view.location.path);
            let _ = writeln!(
                out,
                "  usage {}   working set {}   max {}   high {}   peak {}",
                opt(m.current_bytes.value()),
                opt(m.working_set_bytes.value()),
                limit_text(m.max_bytes.value()),
                limit_text(m.high_bytes.value()),
                opt(m.peak_bytes.value())
            );
            if let Some(e) = m.events.value() {
                let n = |v: Option<u64>| v.unwrap_or(0);
                let _ = writeln!(
                    out,
                    "  events: high {}  max {}  oom {}  oom_kill {}",
                    n(e.high),
                    n(e.max),
                    n(e.oom),
                    n(e.oom_kill)
                );
            }
            if let Some(p) = m.pressure.value() {
                let _ = writeln!(
                    out,
                    "  pressure: some avg10 {:.2}  full avg10 {:.2}",
                    p.some.avg10,
                    p.full.map_or(0.0, |f| f.avg10)
                );
            }
        }
        CgroupMemory::V1(m) => {
            let _ = writeln!(out, "  {} (v1)", view.location.path);
            let _ = writeln!(
                out,
                "  usage {}   working set {}   limit {}   max usage {}",
                opt(m.usage_bytes.value()),
                opt(m.working_set_bytes.value()),
                limit_text(m.limit_bytes.value()),
                opt(m.max_usage_bytes.value())
            );
            if let Some(o) = m.oom_control.value() {
                let _ = writeln!(
                    out,
                    "  oom_control: under_oom {}  oom_kill {}",
                    u8::from(o.under_oom),
                    o.oom_kill.unwrap_or(0)
                );
            }
        }
    }
}
