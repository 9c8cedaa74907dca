//! The profile routes: `/heap`, `/flamegraph`, `/snapshots`, `/diff`,
//! `/stats`, `/metrics`, and the fallbacks. Each parses its parameters,
//! takes snapshots and renders through [`crate::export`] on the blocking
//! pool, and answers. The incident views are in [`super::views`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::diff_text::DiffView;
use super::error::ApiError;
use super::params::{At, Format, Params, QueryPairs};
use super::respond::{answer, blocking, json, with_type, FOLDED, JSON, SVG};
use super::AppState;
use crate::allocator_reading::AllocatorReading;
use crate::export::delta::delta_snapshot;
use crate::export::flamegraph::{self, FlamegraphOptions};
use crate::export::pprof::{self, PprofOptions};
use crate::export::prometheus::{self, MetricsWriter};
use crate::export::stats::Stats;
use crate::host::{CgroupView, Meminfo, Pid, Pressure};
use crate::profile::{Bound, Kind, Snapshot};
use crate::stack::Trim;

async fn take_snapshot(trim: Trim) -> Result<Snapshot, ApiError> {
    blocking(move || Ok(crate::profile::snapshot::snapshot_with(trim))).await
}

/// The profile now, or the delta over the next `seconds` (taken by sleeping
/// on the runtime, not on a worker).
async fn profile_over(seconds: Option<Duration>, trim: Trim) -> Result<Snapshot, ApiError> {
    let Some(duration) = seconds else {
        return take_snapshot(trim).await;
    };
    let before = take_snapshot(trim).await?;
    tokio::time::sleep(duration).await;
    let after = take_snapshot(trim).await?;
    blocking(move || Ok(delta_snapshot(&after.diff(&before), &after))).await
}

/// Renders one profile in `format`, its stacks bounded as `bound` says;
/// every stack (an unbounded view other than SVG, which bounds itself by
/// its narrowest frame) is streamed as it is written.
async fn render(
    snapshot: Arc<Snapshot>,
    format: Format,
    kind: Kind,
    duration: Option<Duration>,
    title: String,
    bound: Bound,
) -> Result<Response, ApiError> {
    let write = move |snapshot: &Snapshot, out: &mut dyn std::io::Write| match format {
        Format::Pprof => {
            let mut options = PprofOptions::for_kind(kind);
            options.duration = duration;
            pprof::write_pprof(snapshot, &options, out)
        }
        Format::Folded => snapshot.write_folded(out, kind),
        Format::Svg => {
            let mut options = FlamegraphOptions::for_kind(kind);
            options.title = title;
            flamegraph::write_flamegraph(snapshot, kind, &options, out)
        }
        Format::Json | Format::Text => snapshot.save(out),
    };
    let content_type = match format {
        Format::Pprof => pprof::CONTENT_TYPE,
        Format::Folded => FOLDED,
        Format::Svg => SVG,
        Format::Json | Format::Text => JSON,
    };
    let mut response = if bound.is_all() && format != Format::Svg {
        super::stream::streamed(content_type, move |out| write(&snapshot, out))
    } else {
        blocking(move || {
            let mut out = Vec::new();
            write(&snapshot.bounded(kind, bound), &mut out)?;
            Ok(with_type(out, content_type))
        })
        .await?
    };
    if format == Format::Pprof {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"heap.pb.gz\""),
        );
    }
    Ok(response)
}

/// The stacks a view in `format` shows unless `limit` says: SVG all (a
/// flamegraph leaves out what is too narrow to draw), the rest
/// [`Bound::DEFAULT_LIMIT`].
fn default_limit(format: Format) -> Option<usize> {
    (format != Format::Svg).then_some(Bound::DEFAULT_LIMIT)
}

fn title(kind: Kind, seconds: Option<Duration>) -> String {
    match seconds {
        Some(d) => format!("memprof {}: change over {} s", kind.name(), d.as_secs()),
        None => format!("memprof {}", kind.name()),
    }
}

/// The profile the history sampler kept at the heap's peak
/// (`crate::history::peak`), for `at=peak`. It is one profile already
/// taken, so a change over `seconds` and another `trim` cannot apply.
fn kept_peak(p: &Params) -> Result<Arc<Snapshot>, ApiError> {
    for (name, conflict) in [
        ("seconds", p.has("seconds")),
        ("trim", p.trim()? != Trim::default()),
    ] {
        if conflict {
            return Err(ApiError::bad_parameter(
                name,
                format!("at=peak serves the profile kept at the peak, so {name} cannot apply"),
                format!("{name} left out with at=peak"),
            ));
        }
    }
    crate::history::peak()
        .map(|peak| peak.snapshot)
        .ok_or_else(|| {
            ApiError::NotFound(
                "no peak kept yet: the history sampler keeps it from its first tick".to_string(),
            )
        })
}

fn peak_title(kind: Kind, snapshot: &Snapshot) -> String {
    format!(
        "memprof {}: at the peak ({} MiB)",
        kind.name(),
        (snapshot.totals.inuse_bytes / (1 << 20) as f64).round()
    )
}

/// `GET /heap?at=&format=&kind=&seconds=&trim=&limit=&min_share=`
pub(crate) async fn heap(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(
        query,
        &[
            "format",
            "kind",
            "seconds",
            "trim",
            "limit",
            "min_share",
            "at",
        ],
    )?;
    let format = p.format(&[Format::Pprof, Format::Folded, Format::Svg, Format::Json])?;
    let kind = p.kind()?;
    let seconds = p.seconds()?;
    let bound = p.bound(default_limit(format))?;
    if p.at()? == At::Peak {
        let peak = kept_peak(&p)?;
        let title = peak_title(kind, &peak);
        return render(peak, format, kind, None, title, bound).await;
    }
    let snapshot = profile_over(seconds, p.trim()?).await?;
    render(
        Arc::new(snapshot),
        format,
        kind,
        seconds,
        title(kind, seconds),
        bound,
    )
    .await
}

/// `GET /flamegraph?at=&kind=&seconds=&base=&trim=&limit=&min_share=`
pub(crate) async fn flamegraph(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let p = Params::parse(
        query,
        &[
            "kind",
            "seconds",
            "base",
            "trim",
            "limit",
            "min_share",
            "at",
        ],
    )?;
    let kind = p.kind()?;
    let seconds = p.seconds()?;
    let trim = p.trim()?;
    let bound = p.bound(default_limit(Format::Svg))?;
    if p.at()? == At::Peak {
        if p.has("base") {
            return Err(ApiError::bad_parameter(
                "base",
                "base and at=peak cannot be combined",
                "either base (a diff against a snapshot) or at=peak",
            ));
        }
        let peak = kept_peak(&p)?;
        let title = peak_title(kind, &peak);
        return render(peak, Format::Svg, kind, None, title, bound).await;
    }
    let Some(base_id) = p.snapshot_id("base")? else {
        let snapshot = profile_over(seconds, trim).await?;
        return render(
            Arc::new(snapshot),
            Format::Svg,
            kind,
            seconds,
            title(kind, seconds),
            bound,
        )
        .await;
    };
    if !bound.is_all() {
        return Err(ApiError::bad_parameter(
            if p.has("limit") { "limit" } else { "min_share" },
            "a differential flamegraph shows every stack of both profiles",
            "limit and min_share left out with base",
        ));
    }
    if seconds.is_some() {
        return Err(ApiError::bad_parameter(
            "seconds",
            "seconds and base cannot be combined",
            "either seconds (a delta from now) or base (a diff against a snapshot)",
        ));
    }
    if trim != Trim::default() {
        return Err(ApiError::bad_parameter(
            "trim",
            "a differential flamegraph compares with a kept snapshot, which is trimmed",
            "trim left out with base",
        ));
    }
    let base = state.snapshot(base_id)?;
    let now = take_snapshot(trim).await?;
    differential(
        base,
        Arc::new(now),
        kind,
        format!("since snapshot {base_id}"),
    )
    .await
}

async fn differential(
    before: Arc<Snapshot>,
    after: Arc<Snapshot>,
    kind: Kind,
    what: String,
) -> Result<Response, ApiError> {
    blocking(move || {
        let mut options = FlamegraphOptions::for_kind(kind);
        options.title = format!("memprof {}: {what}", kind.name());
        options.subtitle =
            Some("width: newer profile; red grew, blue shrank (vs the older one)".to_string());
        let mut out = Vec::new();
        flamegraph::write_differential_flamegraph(&before, &after, kind, &options, &mut out)?;
        Ok(with_type(out, SVG))
    })
    .await
}

/// A snapshot's id in `GET /snapshots`: a kept one's number, or `"peak"`
/// for the profile kept at the heap's peak.
#[derive(Serialize)]
#[serde(untagged)]
enum SnapshotId {
    Kept(u64),
    Peak(&'static str),
}

/// What `POST /snapshots` and `GET /snapshots` say about a snapshot.
#[derive(Serialize)]
struct SnapshotInfo {
    id: SnapshotId,
    taken_at_unix_ms: u64,
    stacks: usize,
    totals: crate::profile::Estimates,
}

impl SnapshotInfo {
    fn of(id: SnapshotId, s: &Snapshot) -> SnapshotInfo {
        SnapshotInfo {
            id,
            taken_at_unix_ms: s.taken_at_unix_ms,
            stacks: s.stacks.len(),
            totals: s.totals,
        }
    }
}

/// `POST /snapshots`: keeps a snapshot; answers 201 with its id.
pub(crate) async fn create_snapshot(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let snapshot = Arc::new(take_snapshot(Trim::default()).await?);
    let id = state.store.insert(Arc::clone(&snapshot));
    let mut response = json(
        StatusCode::CREATED,
        &SnapshotInfo::of(SnapshotId::Kept(id), &snapshot),
    )?;
    if let Ok(location) = HeaderValue::from_str(&format!("snapshots/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /snapshots`: the kept snapshots, oldest first, then the profile
/// kept at the heap's peak (id `"peak"`) if there is one.
pub(crate) async fn list_snapshots(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let mut list: Vec<SnapshotInfo> = state
        .store
        .list()
        .iter()
        .map(|(id, s)| SnapshotInfo::of(SnapshotId::Kept(*id), s))
        .collect();
    if let Some(peak) = crate::history::peak() {
        list.push(SnapshotInfo::of(SnapshotId::Peak("peak"), &peak.snapshot));
    }
    json(StatusCode::OK, &list)
}

/// `GET /snapshots/{id}?format=&kind=`
pub(crate) async fn get_snapshot(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    // A segment that does not even decode names no snapshot either.
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound("no such snapshot".to_string()));
    };
    let p = Params::parse(query, &["format", "kind", "limit", "min_share"])?;
    let format = p.format(&[Format::Json, Format::Folded, Format::Svg, Format::Pprof])?;
    let kind = p.kind()?;
    let bound = p.bound(default_limit(format))?;
    if id == "peak" {
        let peak = kept_peak(&p)?;
        let title = peak_title(kind, &peak);
        return render(peak, format, kind, None, title, bound).await;
    }
    let id = id
        .parse::<u64>()
        .map_err(|_| ApiError::NotFound(format!("no snapshot {id:?}")))?;
    let snapshot = state.snapshot(id)?;
    let title = format!("memprof {}: snapshot {id}", kind.name());
    render(snapshot, format, kind, None, title, bound).await
}

/// `GET /diff?base=ID[&to=ID]&format=&kind=`
pub(crate) async fn diff(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["base", "to", "format", "kind"])?;
    let format = p.format(&[
        Format::Json,
        Format::Folded,
        Format::Svg,
        Format::Pprof,
        Format::Text,
    ])?;
    let kind = p.kind()?;
    let base_id = p.snapshot_id("base")?.ok_or_else(|| {
        ApiError::bad_parameter(
            "base",
            "missing base",
            "a snapshot id returned by POST /snapshots (a positive integer)",
        )
    })?;
    let to_id = p.snapshot_id("to")?;
    let before = state.snapshot(base_id)?;
    let (after, to_name) = match to_id {
        Some(id) => (state.snapshot(id)?, format!("snapshot {id}")),
        None => (
            Arc::new(take_snapshot(Trim::default()).await?),
            "now".to_string(),
        ),
    };
    let what = format!("snapshot {base_id} to {to_name}");
    if format == Format::Svg {
        return differential(before, after, kind, what).await;
    }
    blocking(move || {
        let diff = after.diff(&before);
        let mut out = Vec::new();
        let content_type = match format {
            Format::Folded => {
                diff.write_folded_pair(&mut out, kind)?;
                FOLDED
            }
            Format::Pprof => {
                let delta = delta_snapshot(&diff, &after);
                let duration = Duration::from_millis(
                    after
                        .taken_at_unix_ms
                        .saturating_sub(before.taken_at_unix_ms),
                );
                let options = PprofOptions::for_kind(kind).with_duration(duration);
                pprof::write_pprof(&delta, &options, &mut out)?;
                pprof::CONTENT_TYPE
            }
            Format::Text | Format::Json | Format::Svg => {
                return answer(
                    &DiffView {
                        diff: &diff,
                        kind,
                        what: &what,
                    },
                    format,
                );
            }
        };
        Ok(with_type(out, content_type))
    })
    .await
}

/// `GET /stats`
pub(crate) async fn stats(query: QueryPairs) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    blocking(|| {
        let stats = Stats::from_snapshot(&crate::profile::snapshot())
            .with_process(crate::history::ProcessFigures::read());
        let stats = match AllocatorReading::read(None) {
            #[cfg(feature = "jemalloc")]
            AllocatorReading::Stats(allocator) => stats.with_allocator(Ok(&allocator)),
            AllocatorReading::Unavailable(why) => stats.without_allocator(why),
        };
        json(
            StatusCode::OK,
            &StatsBody {
                stats,
                dumps: crate::dump::status(),
            },
        )
    })
    .await
}

/// `/stats`: the profiler's figures and the flight recorder's state
/// (`dumps`: directory, `written`, `failed`, the last `error` in one line).
#[derive(Serialize)]
struct StatsBody {
    #[serde(flatten)]
    stats: Stats,
    dumps: crate::dump::DumpStatus,
}

/// `GET /metrics`: every metric family, in Prometheus text.
pub(crate) async fn metrics(query: QueryPairs) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    blocking(|| {
        let snapshot = crate::profile::snapshot();
        let mut m = MetricsWriter::new(Vec::new());
        prometheus::write_profiler_metrics(&mut m, &snapshot)?;
        prometheus::write_scope_metrics(&mut m, &crate::scope::scopes())?;
        let process = crate::history::ProcessFigures::read();
        #[cfg(feature = "jemalloc")]
        {
            let rss = process.and_then(|p| p.rss_bytes);
            let stats = AllocatorReading::read(rss).into_stats();
            prometheus::write_allocator_metrics(&mut m, stats.as_ref())?;
        }
        if let Some(process) = &process {
            prometheus::write_process_metrics(&mut m, process)?;
        }
        if let Ok(cgroup) = CgroupView::read("/", Pid::Current) {
            prometheus::write_cgroup_metrics(&mut m, &cgroup)?;
        }
        prometheus::write_host_metrics(
            &mut m,
            Meminfo::read("/").ok().as_ref(),
            Pressure::read("/").ok().as_ref(),
        )?;
        if let Some(history) = crate::history::get() {
            prometheus::write_history_metrics(&mut m, &history.status())?;
        }
        Ok(with_type(m.finish()?, prometheus::CONTENT_TYPE))
    })
    .await
}

/// Any path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; GET / lists them".to_string())
}

/// A route hit with a method it does not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
