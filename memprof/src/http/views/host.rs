//! `GET /host?top=&format=`: the process, the host, the cgroup and the top
//! processes, with the history's latest vmstat rates.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::bytes_or_dash;
use crate::host::{read_all_with, Overview, ReadOptions, Reading, VmstatRates};
use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};
use crate::http::AppState;
use crate::human::format_bytes;

/// The most processes `/host?top=` lists.
const MAX_TOP_PROCESSES: u64 = 50;

/// The overview and the latest vmstat rates.
#[derive(Serialize)]
pub(crate) struct HostBody {
    #[serde(flatten)]
    pub(crate) overview: Overview,
    /// Rates between the history's last two ticks.
    pub(crate) vmstat_rates: Option<VmstatRates>,
}

fn reason<T>(reading: &Reading<T>) -> &str {
    reading.reason().unwrap_or("")
}

impl TextForm for HostBody {
    /// The process, host and cgroup, and the top processes.
    fn text(&self) -> String {
        let o = &self.overview;
        let bytes = bytes_or_dash;
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
        if let Some(r) = &self.vmstat_rates {
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
}

/// `GET /host?top=&format=`: other processes by program name, with whole
/// command lines only where [`crate::http::Config::command_lines`] says so.
pub(crate) async fn host_view(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["top", "format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let top = p.number("top", 0, MAX_TOP_PROCESSES, 5)?;
    let history = super::history()?;
    let command_lines = state.command_lines;
    blocking(move || {
        let options = ReadOptions::default()
            .top_limit(usize::try_from(top).unwrap_or(0))
            .command_lines(command_lines);
        let body = HostBody {
            overview: read_all_with("/", &options),
            vmstat_rates: history.vmstat_rates(),
        };
        answer(&body, format)
    })
    .await
}
