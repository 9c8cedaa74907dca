//! `GET /allocator` and `POST /allocator/purge`: jemalloc's statistics, and
//! a purge of its dirty pages.

#[cfg(feature = "jemalloc")]
use std::fmt::Write;

use axum::response::Response;
use serde::Serialize;

use crate::allocator_reading::AllocatorReading;
use crate::http::error::ApiError;
use crate::http::params::{Format, Params, QueryPairs};
use crate::http::respond::{answer, blocking, TextForm};
#[cfg(feature = "jemalloc")]
use crate::human::format_bytes;

/// jemalloc's statistics, `{"available": true, ...}`, or 200
/// `{"available": false, "reason": ...}` when jemalloc does not serve the
/// process (the page and scripts can tell without parsing an error).
#[derive(Serialize)]
pub(crate) struct AllocatorBody {
    pub(crate) available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[cfg(feature = "jemalloc")]
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<crate::jemalloc::JemallocStats>,
}

impl From<AllocatorReading> for AllocatorBody {
    fn from(reading: AllocatorReading) -> AllocatorBody {
        AllocatorBody {
            available: reading.reason().is_none(),
            reason: reading.reason().map(str::to_owned),
            #[cfg(feature = "jemalloc")]
            stats: reading.into_stats(),
        }
    }
}

#[cfg(feature = "jemalloc")]
fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
}

impl TextForm for AllocatorBody {
    /// jemalloc's totals, ratios, pages and the most wasteful bins.
    fn text(&self) -> String {
        #[cfg(feature = "jemalloc")]
        if let Some(s) = &self.stats {
            return stats_text(s);
        }
        format!(
            "allocator statistics not available: {}\n",
            self.reason.as_deref().unwrap_or("unknown")
        )
    }
}

#[cfg(feature = "jemalloc")]
fn stats_text(s: &crate::jemalloc::JemallocStats) -> String {
    let mut out = String::new();
    let t = &s.totals;
    let r = &s.ratios;
    let _ = writeln!(
        out,
        "jemalloc (epoch {})\n  allocated {}  active {}  resident {}  retained {}  metadata {}  mapped {}",
        s.epoch,
        format_bytes(t.allocated_bytes),
        format_bytes(t.active_bytes),
        format_bytes(t.resident_bytes),
        format_bytes(t.retained_bytes),
        format_bytes(t.metadata_bytes),
        format_bytes(t.mapped_bytes)
    );
    let _ = writeln!(
        out,
        "  fragmentation (active/allocated) {}  rss ratio (resident/active) {}  rss overhead (rss/resident) {}",
        ratio(r.allocator_fragmentation_ratio),
        ratio(r.allocator_rss_ratio),
        ratio(r.rss_overhead_ratio)
    );
    let _ = writeln!(
        out,
        "  dirty {}  muzzy {}  free slots in small bins {}",
        format_bytes(s.pages.dirty_bytes),
        format_bytes(s.pages.muzzy_bytes),
        format_bytes(r.small_bin_waste_bytes)
    );
    let _ = writeln!(
        out,
        "  dirty_decay_ms {}  muzzy_decay_ms {}  background_thread {}  narenas {}",
        s.settings.opt_dirty_decay_ms,
        s.settings.opt_muzzy_decay_ms,
        s.settings.background_thread,
        s.settings.narenas
    );
    let mut bins: Vec<_> = s.bins.iter().filter(|b| b.wasted_bytes > 0).collect();
    bins.sort_by_key(|b| std::cmp::Reverse(b.wasted_bytes));
    if !bins.is_empty() {
        let _ = writeln!(
            out,
            "most wasteful size classes\n  {:>8} {:>10} {:>8} {:>12} {:>10}",
            "size", "regions", "slabs", "utilisation", "wasted"
        );
        for b in bins.iter().take(10) {
            let _ = writeln!(
                out,
                "  {:>8} {:>10} {:>8} {:>12} {:>10}",
                b.size_bytes,
                b.curregs,
                b.curslabs,
                ratio(b.utilisation),
                format_bytes(b.wasted_bytes)
            );
        }
    }
    out
}

#[cfg(feature = "jemalloc")]
impl TextForm for crate::jemalloc::PurgeReport {
    /// A purge's before and after.
    fn text(&self) -> String {
        let released = if self.released_bytes >= 0 {
            format_bytes(self.released_bytes.unsigned_abs())
        } else {
            format!("-{}", format_bytes(self.released_bytes.unsigned_abs()))
        };
        format!(
            "purged: resident {} -> {} (released {released}); dirty {} -> {}; muzzy {} -> {}; active {} -> {}\n",
            format_bytes(self.resident_before_bytes),
            format_bytes(self.resident_after_bytes),
            format_bytes(self.dirty_before_bytes),
            format_bytes(self.dirty_after_bytes),
            format_bytes(self.muzzy_before_bytes),
            format_bytes(self.muzzy_after_bytes),
            format_bytes(self.active_before_bytes),
            format_bytes(self.active_after_bytes),
        )
    }
}

/// `GET /allocator?format=`
pub(crate) async fn allocator_view(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    blocking(move || answer(&AllocatorBody::from(AllocatorReading::read(None)), format)).await
}

/// `POST /allocator/purge?format=`: 200 with the purge report, 503 when
/// jemalloc does not serve the process.
pub(crate) async fn allocator_purge(query: QueryPairs) -> Result<Response, ApiError> {
    let p = Params::parse(query, &["format"])?;
    let format = p.format(&[Format::Json, Format::Text])?;
    blocking(move || {
        #[cfg(feature = "jemalloc")]
        {
            let report =
                crate::jemalloc::purge().map_err(|why| ApiError::Unavailable(why.to_string()))?;
            answer(&report, format)
        }
        #[cfg(not(feature = "jemalloc"))]
        {
            let _ = format;
            Err(ApiError::Unavailable(
                crate::allocator_reading::NOT_BUILT.to_string(),
            ))
        }
    })
    .await
}
