//! `GET /top?n=&kind=&format=`: the largest stacks, small enough for the
//! page to poll.

use std::collections::HashMap;
use std::fmt::Write;

use axum::response::Response;
use serde::Serialize;

use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};
use crate::human::format_bytes_signed;
use crate::profile::Kind;

/// The most rows `/top` lists (`n`).
const MAX_TOP_ROWS: u64 = 100;

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

/// The largest stacks by a kind.
#[derive(Serialize)]
pub(crate) struct TopBody {
    pub(crate) kind: &'static str,
    pub(crate) total: f64,
    pub(crate) stacks: Vec<TopStack>,
}

impl TopBody {
    /// The largest `n` stacks by `kind`, stacks that read the same (every
    /// frame's function, file and line; they differ only in addresses, calls
    /// from one line) merged into one row, and each row's site told apart
    /// from the others' (see [`crate::profile::distinct_sites`]).
    fn of(snapshot: &crate::Snapshot, kind: Kind, n: usize) -> TopBody {
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
}

impl TextForm for TopBody {
    /// The largest stacks.
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "top stacks by {} (total {:.0})", self.kind, self.total);
        for s in &self.stacks {
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
}

/// `GET /top?n=&kind=&format=&trim=`
pub(crate) async fn top_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["n", "kind", "format", "trim"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let kind = p.kind()?;
    let n = p.number("n", 1, MAX_TOP_ROWS, 10)?;
    let trim = p.trim()?;
    blocking(move || {
        let snapshot = crate::profile::snapshot::snapshot_with(trim);
        let body = TopBody::of(&snapshot, kind, usize::try_from(n).unwrap_or(10));
        answer(&body, format)
    })
    .await
}
