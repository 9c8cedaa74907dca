//! `GET /scopes?min_age=&scope=&format=`: memory by scope.

use std::fmt::Write;
use std::time::Duration;

use axum::response::Response;

use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};
use crate::human::format_bytes_signed;
use crate::profile::{scope_report, ScopeReport};

/// The longest `min_age` `/scopes` takes, seconds (a day), as `/leaks`.
const MAX_MIN_AGE_SECONDS: u64 = 86_400;

impl TextForm for ScopeReport {
    /// One row per scope, largest in use first.
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} scopes (survivors: live for {:.0} s or more; figures include nested scopes)\n",
            self.scopes.len(),
            self.min_age_seconds
        );
        let _ = writeln!(
            out,
            "{:>12} {:>12} {:>10} {:>12} {:>12} {:>12} {:>12} {:>10}  scope",
            "in use", "± 95%", "objects", "allocated", "freed", "peak", "survivors", "entered"
        );
        for s in &self.scopes {
            let _ = writeln!(
                out,
                "{:>12} {:>12} {:>10.0} {:>12} {:>12} {:>12} {:>12} {:>10}  {}",
                format_bytes_signed(s.inuse_bytes),
                if s.inuse_error.is_exact() {
                    "exact".to_string()
                } else {
                    format_bytes_signed(s.inuse_bytes_margin_95)
                },
                s.inuse_objects,
                format_bytes_signed(s.alloc_bytes),
                format_bytes_signed(s.freed_bytes),
                format_bytes_signed(s.peak_bytes),
                format_bytes_signed(s.survivor_bytes),
                s.entered,
                s.scope.path()
            );
        }
        out
    }
}

/// `GET /scopes?min_age=&scope=&format=`
pub(crate) async fn scopes_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["min_age", "scope", "format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let min_age = p.number("min_age", 0, MAX_MIN_AGE_SECONDS, 10)?;
    let scope = p.scope()?;
    blocking(move || {
        answer(
            &scope_report(Duration::from_secs(min_age), scope.as_ref()),
            format,
        )
    })
    .await
}
