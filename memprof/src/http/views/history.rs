//! `GET /history?since=&stacks=&format=`: the series the page plots.

use std::fmt::Write;

use axum::response::Response;
use serde::Serialize;

use super::{bytes_or_dash, clock};
use crate::history::{Point, Status};
use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};
use crate::human::format_bytes_signed;

/// The history's status and its points.
#[derive(Serialize)]
pub(crate) struct HistoryBody {
    #[serde(flatten)]
    pub(crate) status: Status,
    pub(crate) points: Vec<Point>,
}

impl TextForm for HistoryBody {
    /// The series as a table, one line per point.
    fn text(&self) -> String {
        let s = &self.status;
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
        for p in &self.points {
            let a = p.allocator;
            let pr = p.process;
            let _ = writeln!(
                out,
                "{:<9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
                clock(p.unix_ms),
                bytes_or_dash(a.map(|a| a.allocated_bytes)),
                bytes_or_dash(a.map(|a| a.active_bytes)),
                bytes_or_dash(a.map(|a| a.resident_bytes)),
                bytes_or_dash(a.map(|a| a.retained_bytes)),
                bytes_or_dash(pr.and_then(|p| p.rss_bytes)),
                bytes_or_dash(pr.and_then(|p| p.pss_bytes)),
                format_bytes_signed(p.heap.inuse_bytes),
            );
        }
        out
    }
}

/// `GET /history?since=&stacks=&format=`
pub(crate) async fn history_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["since", "stacks", "format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let since = p.optional_u64(
        "since",
        "milliseconds since the Unix epoch (a whole number)",
    )?;
    let stacks = p.flag("stacks")?;
    let history = super::history()?;
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
        answer(&body, format)
    })
    .await
}
