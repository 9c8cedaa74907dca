//! Size classes: small-size bins (slabs of equal slots) and large extents.

use serde::Serialize;

use super::keys::{self, ARENAS_INDEX_POS, STATS_INDEX_POS};
use super::totals::ratio;
use super::Unavailable;

/// One small size class over all arenas: its slab geometry
/// (`arenas.bin.<j>.*`) joined with its counters
/// (`stats.arenas.4096.bins.<j>.*`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct BinStats {
    /// The bin index `j`.
    pub index: u32,
    /// `arenas.bin.<j>.size`: the size class (slot size) in bytes.
    pub size_bytes: u64,
    /// `arenas.bin.<j>.nregs`: slots per slab.
    pub nregs: u32,
    /// `arenas.bin.<j>.slab_size`: bytes per slab.
    pub slab_size_bytes: u64,
    /// `curregs`: slots in use now.
    pub curregs: u64,
    /// `curslabs`: slabs now held.
    pub curslabs: u64,
    /// `nonfull_slabs`: slabs with at least one free slot.
    pub nonfull_slabs: u64,
    /// `nmalloc`: allocations served from this bin, cumulative.
    pub nmalloc: u64,
    /// `ndalloc`: deallocations returned to this bin, cumulative.
    pub ndalloc: u64,
    /// `curregs / (nregs * curslabs)`: how full the slabs are; `None` when
    /// the bin holds no slabs.
    pub utilisation: Option<f64>,
    /// `(nregs * curslabs - curregs) * size`: bytes in free slots of held
    /// slabs. Purging cannot return these while a slab has one live slot.
    pub wasted_bytes: u64,
}

impl BinStats {
    /// Builds a bin from its raw figures, computing utilisation and waste.
    pub fn new(
        index: u32,
        size_bytes: u64,
        nregs: u32,
        slab_size_bytes: u64,
        curregs: u64,
        curslabs: u64,
    ) -> Self {
        let slots = u64::from(nregs).saturating_mul(curslabs);
        BinStats {
            index,
            size_bytes,
            nregs,
            slab_size_bytes,
            curregs,
            curslabs,
            utilisation: ratio(curregs, slots),
            // Saturating: the merged counters are gathered arena by arena and
            // may be a little out of step with each other.
            wasted_bytes: slots.saturating_sub(curregs).saturating_mul(size_bytes),
            ..BinStats::default()
        }
    }
}

/// One large size class with live extents (`stats.arenas.4096.lextents.<j>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct LargeStats {
    /// The large extent index `j`.
    pub index: u32,
    /// `arenas.lextent.<j>.size`: the size class in bytes.
    pub size_bytes: u64,
    /// `curlextents`: live extents of this size.
    pub curlextents: u64,
    /// `size * curlextents`.
    pub total_bytes: u64,
}

/// Reads all small bins of the merged arena; the caller advances the epoch.
pub(crate) fn read_bins() -> Result<Vec<BinStats>, Unavailable> {
    let nbins = keys::NBINS.read()?;
    let mut size = keys::BIN_SIZE.mib::<4>()?;
    let mut nregs = keys::BIN_NREGS.mib::<4>()?;
    let mut slab_size = keys::BIN_SLAB_SIZE.mib::<4>()?;
    let mut curregs = keys::BIN_CURREGS.mib::<6>()?;
    let mut curslabs = keys::BIN_CURSLABS.mib::<6>()?;
    let mut nonfull = keys::BIN_NONFULL_SLABS.mib::<6>()?;
    let mut nmalloc = keys::BIN_NMALLOC.mib::<6>()?;
    let mut ndalloc = keys::BIN_NDALLOC.mib::<6>()?;
    let mut bins = Vec::with_capacity(nbins as usize);
    for j in 0..nbins {
        let i = j as usize;
        let mut bin = BinStats::new(
            j,
            size.read_at(ARENAS_INDEX_POS, i)? as u64,
            nregs.read_at(ARENAS_INDEX_POS, i)?,
            slab_size.read_at(ARENAS_INDEX_POS, i)? as u64,
            curregs.read_at(STATS_INDEX_POS, i)? as u64,
            curslabs.read_at(STATS_INDEX_POS, i)? as u64,
        );
        bin.nonfull_slabs = nonfull.read_at(STATS_INDEX_POS, i)? as u64;
        bin.nmalloc = nmalloc.read_at(STATS_INDEX_POS, i)?;
        bin.ndalloc = ndalloc.read_at(STATS_INDEX_POS, i)?;
        bins.push(bin);
    }
    Ok(bins)
}

/// Reads the large size classes with live extents; the caller advances the
/// epoch.
pub(crate) fn read_large() -> Result<Vec<LargeStats>, Unavailable> {
    let nlextents = keys::NLEXTENTS.read()?;
    let mut size = keys::LEXTENT_SIZE.mib::<4>()?;
    let mut cur = keys::LEXTENT_CURLEXTENTS.mib::<6>()?;
    let mut large = Vec::new();
    for j in 0..nlextents {
        let curlextents = cur.read_at(STATS_INDEX_POS, j as usize)? as u64;
        if curlextents == 0 {
            continue;
        }
        let size_bytes = size.read_at(ARENAS_INDEX_POS, j as usize)? as u64;
        large.push(LargeStats {
            index: j,
            size_bytes,
            curlextents,
            total_bytes: size_bytes.saturating_mul(curlextents),
        });
    }
    Ok(large)
}

/// `sum_j (nregs_j * curslabs_j - curregs_j) * size_j`: bytes in free slots
/// of held small slabs (Redis's `allocator_frag_smallbins_bytes`).
pub fn small_bin_waste_bytes(bins: &[BinStats]) -> u64 {
    bins.iter()
        .fold(0u64, |sum, bin| sum.saturating_add(bin.wasted_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_and_waste() {
        // 112-byte class, 36 slots per 4 KiB slab, 10 slabs, 60 slots used.
        let bin = BinStats::new(7, 112, 36, 4096, 60, 10);
        assert_eq!(bin.utilisation, Some(60.0 / 360.0));
        assert_eq!(bin.wasted_bytes, 300 * 112);
    }

    #[test]
    fn no_slabs_means_no_utilisation() {
        let bin = BinStats::new(0, 8, 512, 4096, 0, 0);
        assert_eq!(bin.utilisation, None);
        assert_eq!(bin.wasted_bytes, 0);
    }

    #[test]
    fn inconsistent_counters_do_not_underflow() {
        let bin = BinStats::new(0, 8, 512, 4096, 600, 1);
        assert_eq!(bin.wasted_bytes, 0);
    }

    #[test]
    fn waste_sums_over_bins() {
        let bins = [
            BinStats::new(0, 8, 512, 4096, 500, 1),
            BinStats::new(1, 16, 256, 4096, 0, 2),
        ];
        assert_eq!(small_bin_waste_bytes(&bins), 12 * 8 + 512 * 16);
    }
}
