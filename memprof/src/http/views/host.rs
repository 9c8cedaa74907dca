//! `GET /host?top=&format=`: the process, the host, the cgroup and the top
//! processes, with the history's latest vmstat rates.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::bytes_or_dash;
use crate::host::{
    read_all_with, render_host, render_top, Overview, ReadOptions, Reading, VmstatRates,
};
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
    reading.reason().unwrap_or("?")
}

impl TextForm for HostBody {
    /// This process's memory, then the host and the cgroup as `memprof host`
    /// prints them, the vmstat rates, and the top processes as `memprof top`
    /// prints them.
    fn text(&self) -> String {
        let o = &self.overview;
        let bytes = bytes_or_dash;
        let mut out = String::from("PROCESS\n");
        match o.process.status.value() {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "  rss {}   anon {}   file {}   swap {}   peak rss {}",
                    bytes(s.vm_rss_bytes),
                    bytes(s.rss_anon_bytes),
                    bytes(s.rss_file_bytes),
                    bytes(s.vm_swap_bytes),
                    bytes(s.vm_hwm_bytes)
                );
            }
            None => {
                let _ = writeln!(out, "  unavailable: {}", reason(&o.process.status));
            }
        }
        if let Some(r) = o.process.smaps_rollup.value() {
            let _ = writeln!(
                out,
                "  pss {}   uss {}",
                bytes(r.pss_bytes),
                format_bytes(r.uss_bytes())
            );
        }
        out.push_str(&render_host(&o.host, &o.cgroup));
        if let Some(r) = &self.vmstat_rates {
            let _ = writeln!(
                out,
                "RATES (over {:.1} s)\n  swap in {:.0} KiB/s   out {:.0} KiB/s   major faults {:.1}/s   direct reclaim stalls {:.1}/s   OOM kills {}",
                r.interval_seconds,
                r.swap_in_kib_per_sec,
                r.swap_out_kib_per_sec,
                r.pgmajfault_per_sec,
                r.allocstall_per_sec,
                r.oom_kills
            );
        }
        if let Some(top) = o.top_processes.value() {
            out.push_str("TOP PROCESSES BY PSS\n");
            out.push_str(&render_top(top));
        }
        out
    }
}

/// `GET /host?top=&format=`: other processes by program name, with whole
/// command lines only where [`crate::http::EndpointConfig::command_lines`] says so.
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
