//! `memprof watch`: a process's RSS, PSS and swap over time, with growth
//! per minute.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use memprof::doctor::format_bytes;
use memprof::host::{Pid, ProcStatus, SmapsRollup};
use serde::Serialize;

use crate::{fail, print, Failure, Result};

/// Fails with exit code 2 when `pid`'s status cannot be read.
pub(crate) fn require_process(pid: u32) -> Result<ProcStatus> {
    ProcStatus::read("/", Pid::Id(pid))
        .map_err(|err| Failure(format!("cannot read process {pid}: {err}")))
}

#[derive(Serialize)]
struct WatchSample {
    pid: u32,
    elapsed_seconds: f64,
    rss_bytes: Option<u64>,
    pss_bytes: Option<u64>,
    swap_bytes: Option<u64>,
    anon_bytes: Option<u64>,
    /// RSS growth per minute since the previous sample.
    rss_growth_bytes_per_minute: Option<f64>,
    /// RSS growth per minute since the first sample.
    rss_growth_since_start_bytes_per_minute: Option<f64>,
}

pub(crate) fn watch(
    pid: u32,
    interval: Duration,
    count: Option<u64>,
    json: bool,
) -> Result<ExitCode> {
    require_process(pid)?;
    let start = Instant::now();
    let mut first: Option<(f64, u64)> = None;
    let mut previous: Option<(f64, u64)> = None;
    let mut taken = 0u64;
    if !json {
        print(&format!(
            "{:>9} {:>10} {:>10} {:>10} {:>14} {:>14}\n",
            "SECONDS", "RSS", "PSS", "SWAP", "RSS/MIN(LAST)", "RSS/MIN(ALL)"
        ))?;
    }
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let status = match ProcStatus::read("/", Pid::Id(pid)) {
            Ok(status) => status,
            Err(err) => {
                eprintln!("memprof: process {pid} went away: {err}");
                return Ok(ExitCode::from(1));
            }
        };
        let smaps = SmapsRollup::read("/", Pid::Id(pid)).ok();
        let rss = status.vm_rss_bytes;
        let rate = |from: Option<(f64, u64)>| {
            let (t0, r0) = from?;
            let r1 = rss?;
            let minutes = (elapsed - t0) / 60.0;
            (minutes > 0.0).then(|| (r1 as f64 - r0 as f64) / minutes)
        };
        let sample = WatchSample {
            pid,
            elapsed_seconds: elapsed,
            rss_bytes: rss,
            pss_bytes: smaps.as_ref().and_then(|s| s.pss_bytes),
            swap_bytes: status
                .vm_swap_bytes
                .or(smaps.as_ref().and_then(|s| s.swap_bytes)),
            anon_bytes: status.rss_anon_bytes,
            rss_growth_bytes_per_minute: rate(previous),
            rss_growth_since_start_bytes_per_minute: rate(first),
        };
        if let Some(r) = rss {
            previous = Some((elapsed, r));
            first = first.or(previous);
        }
        if json {
            match serde_json::to_string(&sample) {
                Ok(line) => print(&(line + "\n"))?,
                Err(err) => return fail(format!("cannot write JSON: {err}")),
            };
        } else {
            let bytes = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), format_bytes);
            let growth = |v: Option<f64>| {
                v.map_or_else(
                    || "-".to_owned(),
                    |g| {
                        let sign = if g < 0.0 { "-" } else { "+" };
                        format!("{sign}{}", format_bytes(g.abs().round() as u64))
                    },
                )
            };
            print(&format!(
                "{:>9.1} {:>10} {:>10} {:>10} {:>14} {:>14}\n",
                elapsed,
                bytes(sample.rss_bytes),
                bytes(sample.pss_bytes),
                bytes(sample.swap_bytes),
                growth(sample.rss_growth_bytes_per_minute),
                growth(sample.rss_growth_since_start_bytes_per_minute)
            ))?;
        }
        taken += 1;
        if count.is_some_and(|c| taken >= c) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(interval);
    }
}
