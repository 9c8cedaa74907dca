//! The incident views: `/history`, `/host`, `/allocator` (and its purge),
//! `/doctor`, `/leaks` and `/top`. Each reads through [`crate::history`],
//! [`crate::host`], [`crate::jemalloc`], [`crate::doctor`] or
//! [`crate::profile`] on the blocking pool and answers JSON, or plain text
//! for a terminal with `format=text` (see [`super::text`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::params::{Format, Params};
use super::routes::{blocking, json, with_type};
use super::text;
use super::AppState;
use crate::doctor::{DoctorInput, Finding, TimedReading};
use crate::history::{History, Point, RecentReading, Status};
use crate::host::{read_all_with, Overview, ReadOptions, VmstatRates};
use crate::profile::{Kind, LeakOptions, LeakReport, ProcessPoint, StackUsage};

type QueryMap = super::params::QueryPairs;

const TEXT: &str = "text/plain; charset=utf-8";

/// The most processes `/host?top=` lists.
pub(crate) const MAX_TOP_PROCESSES: u64 = 50;
/// The longest `min_age` `/leaks` takes, seconds (a day).
pub(crate) const MAX_MIN_AGE_SECONDS: u64 = 86_400;
/// The most candidates `/leaks` lists.
pub(crate) const MAX_LEAKS: u64 = 1000;
/// The most stacks `/top` lists.
pub(crate) const MAX_TOP_STACKS: u64 = 100;

fn history() -> Result<History, ApiError> {
    crate::history::ensure_started()
        .map_err(|e| ApiError::Internal(format!("history sampler: {e}")))
}

fn text_response(body: String) -> Response {
    with_type(body.into_bytes(), TEXT)
}

/// `GET /history`: the status and the points.
#[derive(Serialize)]
pub(crate) struct HistoryBody {
    #[serde(flatten)]
    pub(crate) status: Status,
    pub(crate) points: Vec<Point>,
}

/// `GET /history?since=&stacks=&format=`
pub(crate) async fn history_view(query: QueryMap) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["since", "stacks", "format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let since = p.optional_u64(
        "since",
        "milliseconds since the Unix epoch (a whole number)",
    )?;
    let stacks = p.flag("stacks")?;
    let history = history()?;
    blocking(move || {
        let mut points = history.points(since);
        if !stacks {
            for point in &mut points {
                point.stacks = Vec::new();
            }
        }
        let body = HistoryBody {
            status: history.status(),
            points,
        };
        match format {
            Format::Text => Ok(text_response(text::history(&body))),
            _ => json(StatusCode::OK, &body),
        }
    })
    .await
}

/// `GET /host`: the overview and the latest vmstat rates.
#[derive(Serialize)]
pub(crate) struct HostBody {
    #[serde(flatten)]
    pub(crate) overview: Overview,
    /// Rates between the history's last two ticks.
    pub(crate) vmstat_rates: Option<VmstatRates>,
}

/// `GET /host?top=&format=`: other processes by program name, with whole
/// command lines only where [`super::Config::command_lines`] says so.
pub(crate) async fn host_view(
    State(state): State<AppState>,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["top", "format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let top = p.number("top", 0, MAX_TOP_PROCESSES, 5)?;
    let history = history()?;
    let command_lines = state.command_lines;
    blocking(move || {
        let options = ReadOptions::default()
            .top_limit(usize::try_from(top).unwrap_or(0))
            .command_lines(command_lines);
        let body = HostBody {
            overview: read_all_with("/", &options),
            vmstat_rates: history.vmstat_rates(),
        };
        match format {
            Format::Text => Ok(text_response(text::host(&body))),
            _ => json(StatusCode::OK, &body),
        }
    })
    .await
}

/// `GET /allocator`: jemalloc's statistics, `{"available": true, ...}`, or
/// 200 `{"available": false, "reason": ...}` when jemalloc does not serve
/// the process (the page and scripts can tell without parsing an error).
#[derive(Serialize)]
pub(crate) struct AllocatorBody {
    pub(crate) available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[cfg(feature = "jemalloc")]
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<crate::jemalloc::JemallocStats>,
}

fn allocator_reading() -> AllocatorBody {
    #[cfg(feature = "jemalloc")]
    {
        match crate::jemalloc::stats() {
            Ok(stats) => AllocatorBody {
                available: true,
                reason: None,
                stats: Some(stats),
            },
            Err(why) => AllocatorBody {
                available: false,
                reason: Some(why.to_string()),
                stats: None,
            },
        }
    }
    #[cfg(not(feature = "jemalloc"))]
    AllocatorBody {
        available: false,
        reason: Some("memprof was built without the jemalloc feature".to_string()),
    }
}

/// `GET /allocator?format=`
pub(crate) async fn allocator_view(query: QueryMap) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    blocking(move || {
        let body = allocator_reading();
        match format {
            Format::Text => Ok(text_response(text::allocator(&body))),
            _ => json(StatusCode::OK, &body),
        }
    })
    .await
}

/// `POST /allocator/purge?format=`: 200 with the purge report, 503 when
/// jemalloc does not serve the process.
pub(crate) async fn allocator_purge(query: QueryMap) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    blocking(move || {
        #[cfg(feature = "jemalloc")]
        {
            let report =
                crate::jemalloc::purge().map_err(|why| ApiError::Unavailable(why.to_string()))?;
            match format {
                Format::Text => Ok(text_response(text::purge(&report))),
                _ => json(StatusCode::OK, &report),
            }
        }
        #[cfg(not(feature = "jemalloc"))]
        {
            let _ = format;
            Err(ApiError::Unavailable(
                "memprof was built without the jemalloc feature".to_string(),
            ))
        }
    })
    .await
}

/// `GET /doctor`: the findings and what they were drawn from.
#[derive(Serialize)]
pub(crate) struct DoctorBody {
    pub(crate) findings: Vec<Finding>,
    /// Readings the rules over rates compared (history ticks plus now).
    pub(crate) series_readings: usize,
    /// Seconds those readings span.
    pub(crate) series_span_seconds: f64,
}

fn timed(r: &RecentReading) -> TimedReading {
    TimedReading::new(r.taken)
        .with_status(r.status.clone())
        .with_meminfo(r.meminfo.clone())
        .with_vmstat(r.vmstat.clone())
        .with_allocator(r.allocated_bytes, r.resident_bytes)
}

/// Reads the process, host and cgroup now, jemalloc's statistics, takes
/// the history's recent readings as the series for the rules over rates,
/// and finds the leak candidates the heap-growth rule names.
fn doctor_input(history: &History) -> DoctorInput {
    let now = Instant::now();
    let overview = read_all_with("/", &ReadOptions::default().top_limit(0));
    let mut input = DoctorInput::from_overview(overview);
    let (allocated, resident) = allocator_now(&mut input);
    let mut series: Vec<TimedReading> = history.recent().iter().map(timed).collect();
    series.push(
        TimedReading::from_views(now, input.process.as_ref(), input.host.as_ref())
            .with_allocator(allocated, resident),
    );
    input.series = series;
    let (usage, process) = leak_inputs(&history.points(None));
    input.leaks = Some(crate::profile::find_leaks(
        &LeakOptions::default(),
        &usage,
        &process,
    ));
    input
}

#[cfg(feature = "jemalloc")]
fn allocator_now(input: &mut DoctorInput) -> (Option<u64>, Option<u64>) {
    let rss = input
        .process
        .as_ref()
        .and_then(|p| p.status.value())
        .and_then(|s| s.vm_rss_bytes);
    input.jemalloc = crate::jemalloc::stats_with_rss(rss).ok();
    match &input.jemalloc {
        Some(stats) => (
            Some(stats.totals.allocated_bytes),
            Some(stats.totals.resident_bytes),
        ),
        None => (None, None),
    }
}

#[cfg(not(feature = "jemalloc"))]
fn allocator_now(_input: &mut DoctorInput) -> (Option<u64>, Option<u64>) {
    (None, None)
}

/// `GET /doctor?format=`
pub(crate) async fn doctor_view(query: QueryMap) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let history = history()?;
    blocking(move || {
        let input = doctor_input(&history);
        let findings = crate::doctor::examine(&input);
        let span = match (input.series.first(), input.series.last()) {
            (Some(first), Some(last)) => last
                .taken
                .checked_duration_since(first.taken)
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let body = DoctorBody {
            findings,
            series_readings: input.series.len(),
            series_span_seconds: span.as_secs_f64(),
        };
        match format {
            Format::Text => Ok(text_response(text::doctor(&body))),
            _ => json(StatusCode::OK, &body),
        }
    })
    .await
}

/// The per-stack and process series of the history, as the leak finder
/// takes them.
fn leak_inputs(points: &[Point]) -> (Vec<StackUsage>, Vec<ProcessPoint>) {
    let usage = points
        .iter()
        .map(|p| StackUsage {
            unix_ms: p.unix_ms,
            stacks: p.stacks.clone(),
        })
        .collect();
    let process = points
        .iter()
        .filter_map(|p| {
            let rss = p.process.and_then(|f| f.rss_bytes)?;
            let heap = p
                .allocator
                .map_or(p.heap.inuse_bytes, |a| a.allocated_bytes as f64);
            Some(ProcessPoint {
                unix_ms: p.unix_ms,
                rss_bytes: rss as f64,
                heap_bytes: heap,
            })
        })
        .collect();
    (usage, process)
}

/// `GET /leaks?min_age=&limit=&format=`
pub(crate) async fn leaks_view(query: QueryMap) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["min_age", "limit", "format", "trim"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let min_age = p.number("min_age", 0, MAX_MIN_AGE_SECONDS, 10)?;
    let limit = p.number("limit", 1, MAX_LEAKS, 20)?;
    let trim = p.trim()?;
    let history = history()?;
    blocking(move || {
        let (usage, process) = leak_inputs(&history.points(None));
        let options = LeakOptions::default()
            .min_age(Duration::from_secs(min_age))
            .limit(usize::try_from(limit).unwrap_or(20))
            .trim(trim);
        let report: LeakReport = crate::profile::find_leaks(&options, &usage, &process);
        match format {
            Format::Text => Ok(text_response(text::leaks(&report))),
            _ => json(StatusCode::OK, &report),
        }
    })
    .await
}

/// One stack of `/top`.
#[derive(Serialize)]
pub(crate) struct TopStack {
    pub(crate) rank: usize,
    /// The value of the kind asked for.
    pub(crate) value: f64,
    pub(crate) inuse_bytes: f64,
    pub(crate) inuse_objects: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) alloc_objects: f64,
    /// Where the stack enters the program's own code; where rows share
    /// that, ` via ` the first frame where this one differs.
    pub(crate) site: String,
    /// Half the width of the 95% confidence interval of `inuse_bytes`
    /// (0 when exact).
    pub(crate) inuse_bytes_margin_95: f64,
    /// Live samples `inuse_bytes` was estimated from.
    pub(crate) inuse_samples: u64,
    /// Frames, leaf first, as `function (file:line)`.
    pub(crate) frames: Vec<String>,
}

/// `GET /top`: the largest stacks, small enough for the page to poll.
#[derive(Serialize)]
pub(crate) struct TopBody {
    pub(crate) kind: &'static str,
    pub(crate) total: f64,
    pub(crate) stacks: Vec<TopStack>,
}

/// `GET /top?n=&kind=&format=`
pub(crate) async fn top_view(query: QueryMap) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["n", "kind", "format", "trim"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let kind = p.kind()?;
    let n = p.number("n", 1, MAX_TOP_STACKS, 10)?;
    let trim = p.trim()?;
    blocking(move || {
        let snapshot = crate::profile::snapshot::snapshot_with(trim);
        let body = top_body(&snapshot, kind, usize::try_from(n).unwrap_or(10));
        match format {
            Format::Text => Ok(text_response(text::top(&body))),
            _ => json(StatusCode::OK, &body),
        }
    })
    .await
}

/// The largest `n` stacks by `kind`, stacks that read the same (every
/// frame's function, file and line; they differ only in addresses, calls
/// from one line) merged into one row, and each row's site told apart
/// from the others' (see [`crate::profile::distinct_sites`]).
fn top_body(snapshot: &crate::Snapshot, kind: Kind, n: usize) -> TopBody {
    let mut rows: Vec<(Vec<String>, crate::profile::StackProfile)> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    for s in &snapshot.stacks {
        let frames: Vec<String> = s
            .frames
            .iter()
            .map(|f| match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("{} ({file}:{line})", f.function),
                _ => f.function.clone(),
            })
            .collect();
        match index.get(&frames) {
            Some(&i) => {
                rows[i].1.estimates += s.estimates;
                rows[i].1.inuse_error += s.inuse_error;
            }
            None => {
                index.insert(frames.clone(), rows.len());
                rows.push((frames, s.clone()));
            }
        }
    }
    rows.sort_by(|a, b| b.1.value(kind).total_cmp(&a.1.value(kind)));
    rows.truncate(n);
    let stack_frames: Vec<&[std::sync::Arc<crate::stack::Frame>]> =
        rows.iter().map(|(_, s)| s.frames.as_slice()).collect();
    let sites = crate::profile::distinct_sites(&stack_frames);
    let stacks = rows
        .iter()
        .zip(sites)
        .enumerate()
        .map(|(i, ((frames, s), site))| TopStack {
            rank: i + 1,
            value: s.value(kind),
            inuse_bytes: s.estimates.inuse_bytes,
            inuse_objects: s.estimates.inuse_objects,
            alloc_bytes: s.estimates.alloc_bytes,
            alloc_objects: s.estimates.alloc_objects,
            site,
            inuse_bytes_margin_95: s.inuse_error.margin_95(),
            inuse_samples: s.inuse_error.samples,
            frames: frames.clone(),
        })
        .collect();
    TopBody {
        kind: kind.name(),
        total: snapshot.totals.get(kind),
        stacks,
    }
}
