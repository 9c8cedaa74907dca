//! `GET /leaks?min_age=&limit=&format=`: the leak candidates over the
//! history.

use std::fmt::Write;
use std::time::Duration;

use axum::response::Response;

use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};
use crate::human::format_bytes_signed;
use crate::profile::{LeakOptions, LeakReport, ScopePath};

/// The longest `min_age` `/leaks` takes, seconds (a day).
const MAX_MIN_AGE_SECONDS: u64 = 86_400;
/// The most candidates `/leaks` lists.
const MAX_LEAKS: u64 = 1000;

impl TextForm for LeakReport {
    /// The leak candidates, most suspicious first.
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} leak candidates (min age {:.0} s, {} history points, {} live samples)",
            self.candidates.len(),
            self.min_age_seconds,
            self.history_points,
            self.live_samples
        );
        for c in &self.candidates {
            let _ = writeln!(
                out,
                "\n#{} {} in use, {} older than min age, growing {}/min (r² {:.2})\n  at {}\n  scope {}\n  {}",
                c.rank,
                format_bytes_signed(c.inuse_bytes),
                format_bytes_signed(c.old_bytes),
                format_bytes_signed(c.growth_bytes_per_second * 60.0),
                c.growth_r_squared,
                c.site,
                c.scope.as_ref().map_or_else(|| "-".to_string(), ScopePath::path),
                c.summary
            );
        }
        if let Some(o) = &self.outside_heap {
            let _ = writeln!(out, "\noutside the heap: {}", o.note);
        }
        out
    }
}

/// `GET /leaks?min_age=&limit=&format=&trim=`
pub(crate) async fn leaks_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["min_age", "limit", "format", "trim"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    let min_age = p.number("min_age", 0, MAX_MIN_AGE_SECONDS, 10)?;
    let limit = p.number("limit", 1, MAX_LEAKS, 20)?;
    let trim = p.trim()?;
    let history = super::history()?;
    blocking(move || {
        let options = LeakOptions::default()
            .min_age(Duration::from_secs(min_age))
            .limit(usize::try_from(limit).unwrap_or(20))
            .trim(trim);
        answer(&history.find_leaks(&options), format)
    })
    .await
}
