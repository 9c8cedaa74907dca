//! The flight recorder's routes: `GET /dumps` (the dumps in the
//! directory, this process's counters and the previous run; JSON or
//! text), `POST /dumps` (a dump now), `GET /dumps/{id}/{file}` (a listed
//! dump's `summary.json`, `heap.pb.gz`, `heap.folded`) and
//! `GET /dumps/{id}/flamegraph[?base=current]`.

use std::fmt::Write;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use crate::dump::{DumpError, Listing};
use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, json, with_type, TextForm, FOLDED, JSON, SVG};
use crate::human::format_bytes;

impl TextForm for Listing {
    /// One line per dump, newest first, after the directory's state.
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "dumps: {} ({} written, {} failed by this process)",
            match (&self.dir, self.enabled) {
                (Some(dir), true) => dir.clone(),
                _ => "off (set MEMPROF_DUMP_DIR)".to_owned(),
            },
            self.written,
            self.failed
        );
        if let Some(error) = &self.error {
            let _ = writeln!(out, "error: {error}");
        }
        if let Some(run) = &self.previous_run {
            let killed = match run.oom_killed {
                Some(true) => "OOM-killed",
                Some(false) => "not OOM-killed (per the kernel log)",
                None => "OOM kill unknown (kernel log unreadable)",
            };
            let _ = writeln!(
                out,
                "previous run: pid {}, {killed}; last dump {}",
                run.pid, run.last_dump.id
            );
        }
        for d in &self.dumps {
            let _ = writeln!(
                out,
                "{}  {:<7} heap {:>10}  rss {:>10}  {}{}",
                d.id,
                d.trigger,
                format_bytes(d.heap_bytes.max(0.0) as u64),
                d.rss_bytes.map_or("-".to_owned(), format_bytes),
                d.detail,
                if d.current_run { "" } else { "  (earlier run)" }
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

fn api_error(e: DumpError) -> ApiError {
    match e {
        DumpError::Disabled => ApiError::Unavailable(e.to_string()),
        DumpError::NotFound(what) => ApiError::NotFound(what),
        DumpError::Io(line) => ApiError::Unavailable(line),
    }
}

/// `GET /dumps?format=`
pub(crate) async fn dumps_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    blocking(move || answer(&crate::dump::listing(), format)).await
}

/// `POST /dumps`: writes a `request` dump; 201 with its entry.
pub(crate) async fn create_dump(query: QueryPairs) -> Result<Response, ApiError> {
    Params::parse(query, &[])?;
    let entry =
        blocking(|| crate::dump::dump_now("POST /debug/memprof/dumps").map_err(api_error)).await?;
    let mut response = json(StatusCode::CREATED, &entry)?;
    if let Ok(location) = HeaderValue::from_str(&format!("dumps/{}", entry.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /dumps/{id}/{file}`: a listed dump's file, or its flamegraph.
pub(crate) async fn dump_file(
    path: Result<Path<(String, String)>, PathRejection>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let Ok(Path((id, file))) = path else {
        return Err(ApiError::NotFound("no such dump".to_owned()));
    };
    if file == "flamegraph" {
        let p = Params::parse(query, &["base"])?;
        let base_current = p.one_of("base", &["current"])?.is_some();
        return blocking(move || {
            let svg = crate::dump::flamegraph(&id, base_current).map_err(api_error)?;
            Ok(with_type(svg, SVG))
        })
        .await;
    }
    Params::parse(query, &[])?;
    blocking(move || {
        let path = crate::dump::file_path(&id, &file).map_err(api_error)?;
        let body =
            std::fs::read(&path).map_err(|e| ApiError::NotFound(format!("{id}/{file}: {e}")))?;
        let content_type = match file.as_str() {
            "summary.json" => JSON,
            "heap.folded" => FOLDED,
            _ => crate::export::pprof::CONTENT_TYPE,
        };
        let mut response = with_type(body, content_type);
        if file == "heap.pb.gz" {
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.pb.gz\"")) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, v);
            }
        }
        Ok(response)
    })
    .await
}
