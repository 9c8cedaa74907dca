//! One full reading: totals, ratios, bins, large extents, pages, settings.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::bins::{read_bins, read_large, small_bin_waste_bytes, BinStats, LargeStats};
use super::ctl::advance_epoch;
use super::probe::require_global_allocator;
use super::settings::Settings;
use super::totals::{PageCounts, Ratios, Totals};
use super::Unavailable;

/// A reading of jemalloc's statistics, all taken after one epoch advance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JemallocStats {
    /// jemalloc's epoch after the advance that refreshed these statistics.
    pub epoch: u64,
    /// When they were refreshed, in milliseconds since the Unix epoch (0 if
    /// the clock is before 1970).
    pub refreshed_at_unix_ms: u64,
    /// Allocator-wide totals.
    pub totals: Totals,
    /// Redis-style ratios over the totals.
    pub ratios: Ratios,
    /// Dirty and muzzy pages.
    pub pages: PageCounts,
    /// Every small size class (`arenas.nbins` of them), in index order.
    pub bins: Vec<BinStats>,
    /// Large size classes with live extents, in index order.
    pub large: Vec<LargeStats>,
    /// Decay, background-thread and arena settings.
    pub settings: Settings,
}

/// Reads jemalloc's statistics, with the process RSS taken from
/// `/proc/self/status` (through [`crate::host::ProcStatus`]) right after the
/// epoch advance.
///
/// Fails with [`Unavailable`] when jemalloc does not serve the global
/// allocator, reports nothing allocated, or a mallctl fails.
///
/// # Errors
///
/// `Unavailable` when jemalloc is not the allocator linked in, or its
/// statistics cannot be read.
pub fn stats() -> Result<JemallocStats, Unavailable> {
    read(process_rss_bytes)
}

/// Like [`stats`], with the process RSS (`VmRSS`, bytes) given by the caller,
/// for example from the `host` module's reading; `None` leaves the
/// RSS-overhead ratio out.
///
/// # Errors
///
/// `Unavailable` when jemalloc is not the allocator linked in, or its
/// statistics cannot be read.
pub fn stats_with_rss(process_rss_bytes: Option<u64>) -> Result<JemallocStats, Unavailable> {
    read(|| process_rss_bytes)
}

/// This process's `VmRSS` in bytes, `None` where `/proc` cannot say.
fn process_rss_bytes() -> Option<u64> {
    crate::host::ProcStatus::read("/", crate::host::Pid::Current)
        .ok()?
        .vm_rss_bytes
}

fn read(rss: impl FnOnce() -> Option<u64>) -> Result<JemallocStats, Unavailable> {
    require_global_allocator()?;
    let epoch = advance_epoch()?;
    let refreshed_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let process_rss = rss();
    let totals = Totals::read()?;
    if totals.allocated_bytes == 0 {
        return Err(Unavailable::NotInUse);
    }
    let pages = PageCounts::read()?;
    let bins = read_bins()?;
    let large = read_large()?;
    let settings = Settings::read()?;
    let ratios = Ratios::compute(&totals, small_bin_waste_bytes(&bins), process_rss);
    Ok(JemallocStats {
        epoch,
        refreshed_at_unix_ms,
        totals,
        ratios,
        pages,
        bins,
        large,
        settings,
    })
}
