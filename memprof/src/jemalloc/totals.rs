//! Allocator-wide totals, dirty and muzzy pages, and the Redis-style ratios.

use serde::Serialize;

use super::keys;
use super::Unavailable;

/// jemalloc's totals in bytes (`stats.*`), as of the reading's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// `stats.allocated`: bytes in blocks the program holds.
    pub allocated_bytes: u64,
    /// `stats.active`: bytes in active pages (a multiple of the page size);
    /// includes the free slots of partly used slabs.
    pub active_bytes: u64,
    /// `stats.metadata`: bytes of jemalloc's own metadata.
    pub metadata_bytes: u64,
    /// `stats.resident`: bytes in physically resident pages jemalloc maps
    /// (active, metadata, and dirty pages not yet purged).
    pub resident_bytes: u64,
    /// `stats.mapped`: bytes in active extents mapped by jemalloc.
    pub mapped_bytes: u64,
    /// `stats.retained`: bytes in virtual memory jemalloc keeps mapped but
    /// returned to the OS (not resident).
    pub retained_bytes: u64,
}

impl Totals {
    /// Reads the totals; the caller advances the epoch first.
    pub(crate) fn read() -> Result<Self, Unavailable> {
        Ok(Totals {
            allocated_bytes: keys::ALLOCATED.read()? as u64,
            active_bytes: keys::ACTIVE.read()? as u64,
            metadata_bytes: keys::METADATA.read()? as u64,
            resident_bytes: keys::RESIDENT.read()? as u64,
            mapped_bytes: keys::MAPPED.read()? as u64,
            retained_bytes: keys::RETAINED.read()? as u64,
        })
    }
}

/// Unused pages jemalloc still holds, over all arenas.
///
/// Dirty pages are resident and count in `resident_bytes`; decay (or a
/// purge) turns them muzzy (`MADV_FREE`) and then returns them to the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PageCounts {
    /// `arenas.page`: the page size in bytes.
    pub page_bytes: u64,
    /// `stats.arenas.4096.pdirty`: dirty pages.
    pub dirty_pages: u64,
    /// Dirty pages in bytes.
    pub dirty_bytes: u64,
    /// `stats.arenas.4096.pmuzzy`: muzzy pages.
    pub muzzy_pages: u64,
    /// Muzzy pages in bytes.
    pub muzzy_bytes: u64,
}

impl PageCounts {
    /// Reads the page counts; the caller advances the epoch first.
    pub(crate) fn read() -> Result<Self, Unavailable> {
        let page_bytes = keys::PAGE.read()? as u64;
        let dirty_pages = keys::PDIRTY.read()? as u64;
        let muzzy_pages = keys::PMUZZY.read()? as u64;
        Ok(PageCounts {
            page_bytes,
            dirty_pages,
            dirty_bytes: dirty_pages.saturating_mul(page_bytes),
            muzzy_pages,
            muzzy_bytes: muzzy_pages.saturating_mul(page_bytes),
        })
    }
}

/// Ratios between the totals, as Redis's `INFO memory` defines them, each
/// with the difference in bytes beside it.
///
/// A ratio is `None` when its denominator is 0. Byte differences are signed:
/// they can be negative (for example when the process RSS is measured a
/// moment apart from jemalloc's `resident`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct Ratios {
    /// `active / allocated` (Redis `allocator_frag_ratio`): how much of the
    /// active pages the program's blocks fill. Above ~1.5 on a large heap,
    /// freed blocks are scattered across slabs that cannot be released.
    pub allocator_fragmentation_ratio: Option<f64>,
    /// `active - allocated` (Redis `allocator_frag_bytes`).
    pub allocator_fragmentation_bytes: i64,
    /// Free slots in partly used small-size slabs:
    /// `sum_j (nregs_j * curslabs_j - curregs_j) * size_j` over the merged
    /// arena's bins (Redis `allocator_frag_smallbins_bytes`). The part of the
    /// fragmentation that lives in small size classes.
    pub small_bin_waste_bytes: u64,
    /// `resident / active` (Redis `allocator_rss_ratio`): resident pages
    /// jemalloc holds beyond active ones (dirty pages, metadata).
    pub allocator_rss_ratio: Option<f64>,
    /// `resident - active` (Redis `allocator_rss_bytes`).
    pub allocator_rss_bytes: i64,
    /// `process RSS / resident` (Redis `rss_overhead_ratio`): memory the
    /// process holds outside jemalloc (binary, stacks, other allocators).
    /// `None` when the process RSS is unknown.
    pub rss_overhead_ratio: Option<f64>,
    /// `process RSS - resident` (Redis `rss_overhead_bytes`); `None` when the
    /// process RSS is unknown.
    pub rss_overhead_bytes: Option<i64>,
    /// The process RSS used (`VmRSS`), in bytes, if known.
    pub process_rss_bytes: Option<u64>,
}

impl Ratios {
    /// Computes the ratios from totals, the small-bin waste and, if known,
    /// the process RSS (`VmRSS`) in bytes.
    pub fn compute(
        totals: &Totals,
        small_bin_waste_bytes: u64,
        process_rss_bytes: Option<u64>,
    ) -> Self {
        Ratios {
            allocator_fragmentation_ratio: ratio(totals.active_bytes, totals.allocated_bytes),
            allocator_fragmentation_bytes: difference(totals.active_bytes, totals.allocated_bytes),
            small_bin_waste_bytes,
            allocator_rss_ratio: ratio(totals.resident_bytes, totals.active_bytes),
            allocator_rss_bytes: difference(totals.resident_bytes, totals.active_bytes),
            rss_overhead_ratio: process_rss_bytes.and_then(|rss| ratio(rss, totals.resident_bytes)),
            rss_overhead_bytes: process_rss_bytes.map(|rss| difference(rss, totals.resident_bytes)),
            process_rss_bytes,
        }
    }
}

/// `numerator / denominator`, or `None` when the denominator is 0.
pub(crate) fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    if denominator == 0 {
        None
    } else {
        Some(numerator as f64 / denominator as f64)
    }
}

/// `a - b` as a signed number, saturating at the ends of `i64`.
pub(crate) fn difference(a: u64, b: u64) -> i64 {
    if a >= b {
        i64::try_from(a - b).unwrap_or(i64::MAX)
    } else {
        i64::try_from(b - a).map_or(i64::MIN, |d| -d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(allocated: u64, active: u64, resident: u64) -> Totals {
        Totals {
            allocated_bytes: allocated,
            active_bytes: active,
            resident_bytes: resident,
            ..Totals::default()
        }
    }

    #[test]
    fn ratios_follow_redis_definitions() {
        let r = Ratios::compute(&totals(1000, 3000, 4500), 1800, Some(9000));
        assert_eq!(r.allocator_fragmentation_ratio, Some(3.0));
        assert_eq!(r.allocator_fragmentation_bytes, 2000);
        assert_eq!(r.small_bin_waste_bytes, 1800);
        assert_eq!(r.allocator_rss_ratio, Some(1.5));
        assert_eq!(r.allocator_rss_bytes, 1500);
        assert_eq!(r.rss_overhead_ratio, Some(2.0));
        assert_eq!(r.rss_overhead_bytes, Some(4500));
        assert_eq!(r.process_rss_bytes, Some(9000));
    }

    #[test]
    fn zero_denominators_give_none() {
        let r = Ratios::compute(&totals(0, 0, 0), 0, Some(100));
        assert_eq!(r.allocator_fragmentation_ratio, None);
        assert_eq!(r.allocator_rss_ratio, None);
        assert_eq!(r.rss_overhead_ratio, None);
        assert_eq!(r.rss_overhead_bytes, Some(100));
        assert_eq!(ratio(5, 0), None);
        assert_eq!(ratio(0, 5), Some(0.0));
    }

    #[test]
    fn unknown_rss_gives_none() {
        let r = Ratios::compute(&totals(10, 20, 30), 0, None);
        assert_eq!(r.rss_overhead_ratio, None);
        assert_eq!(r.rss_overhead_bytes, None);
        assert_eq!(r.process_rss_bytes, None);
    }

    #[test]
    fn differences_are_signed_and_saturate() {
        assert_eq!(difference(3, 5), -2);
        assert_eq!(difference(5, 3), 2);
        assert_eq!(difference(u64::MAX, 0), i64::MAX);
        assert_eq!(difference(0, u64::MAX), i64::MIN);
        assert_eq!(difference(0, 1 << 63), i64::MIN);
    }
}
