//! `GET /doctor?format=`: the findings over the readings now and the
//! history's last minute.

use std::fmt::Write;
use std::time::Duration;

use axum::response::Response;
use serde::Serialize;

use crate::doctor::Finding;
use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};

/// The findings and what they were drawn from.
#[derive(Serialize)]
pub(crate) struct DoctorBody {
    pub(crate) findings: Vec<Finding>,
    /// Readings the rules over rates compared (history ticks plus now).
    pub(crate) series_readings: usize,
    /// Seconds those readings span.
    pub(crate) series_span_seconds: f64,
}

impl TextForm for DoctorBody {
    /// The findings, as the doctor renders them, and what they were drawn
    /// from.
    fn text(&self) -> String {
        let mut out = crate::doctor::render_text(&self.findings);
        let _ = writeln!(
            out,
            "(rates over {} readings spanning {:.0} s)",
            self.series_readings, self.series_span_seconds
        );
        out
    }
}

/// `GET /doctor?format=`
pub(crate) async fn doctor_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let history = super::history()?;
    blocking(move || {
        let input = crate::doctor::read_with_history(&history)
            .with_previous_run(crate::dump::previous_run_for_doctor());
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
        answer(&body, format)
    })
    .await
}
