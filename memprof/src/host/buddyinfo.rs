//! `/proc/buddyinfo`: free blocks per order in each zone, and the kernel's
//! fragmentation indices computed from them.
//!
//! The indices are those of `/sys/kernel/debug/extfrag/{unusable_index,
//! extfrag_index}`, computed exactly as `mm/vmstat.c` does
//! (`fill_contig_page_info`, `unusable_free_index`, `__fragmentation_index`),
//! in the same integer thousandths, so the numbers match what an operator
//! with debugfs would see. Reading them from buddyinfo needs neither root nor
//! debugfs.

use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use super::error::{ParseError, ReadError};
use super::util;

/// Orders past this are refused: the kernel has 11 (`MAX_PAGE_ORDER` 10) on
/// most configurations and never more than a few dozen, and `1 << order` must
/// fit in 64 bits.
const MAX_ORDERS: usize = 48;

/// `/proc/buddyinfo`: one entry per populated zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Buddyinfo {
    /// The base page size used to turn pages into bytes.
    pub page_size_bytes: u64,
    /// The zones, in the kernel's order.
    pub zones: Vec<BuddyZone>,
}

/// One zone of one NUMA node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BuddyZone {
    /// The NUMA node.
    pub node: u32,
    /// The zone name (`DMA`, `DMA32`, `Normal`, `Movable`, ...).
    pub zone: String,
    /// Free pages in the zone: the sum of `blocks << order`.
    pub free_pages: u64,
    /// Free memory in the zone.
    pub free_bytes: u64,
    /// Per order, from 0: the free blocks and the indices.
    pub orders: Vec<OrderInfo>,
}

/// One order of one zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OrderInfo {
    /// The order: blocks of `2^order` pages.
    pub order: u32,
    /// Free blocks of exactly this order (the buddyinfo column).
    pub free_blocks: u64,
    /// The size of one block of this order.
    pub block_bytes: u64,
    /// The unusable free space index in thousandths, as the kernel computes
    /// it: the share of free memory in blocks too small for this order.
    /// 0 = no fragmentation, 1000 = all free memory unusable (or none free).
    pub unusable_free_index_milli: u64,
    /// [`Self::unusable_free_index_milli`] as a fraction, e.g. `0.347`.
    pub unusable_free_index: f64,
    /// The external fragmentation index in thousandths, or `None` where it
    /// does not apply (a block of this order is free, so an allocation would
    /// succeed; the kernel returns -1000 there). Towards 0 an allocation of
    /// this order fails for lack of memory, towards 1000 for fragmentation.
    pub fragmentation_index_milli: Option<i64>,
    /// [`Self::fragmentation_index_milli`] as a fraction, e.g. `0.912`.
    pub fragmentation_index: Option<f64>,
}

/// The kernel's `struct contig_page_info` for one zone and one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContigPageInfo {
    /// Free base pages in the zone.
    pub free_pages: u64,
    /// Free blocks of any order.
    pub free_blocks_total: u64,
    /// Free blocks able to satisfy the order, counted in blocks of that order
    /// (a free block of a higher order counts as `2^(higher - order)`).
    pub free_blocks_suitable: u64,
}

impl ContigPageInfo {
    /// `fill_contig_page_info`: sums `free_blocks` (indexed by order) for an
    /// allocation of `suitable_order`. Saturates instead of wrapping.
    pub fn new(free_blocks: &[u64], suitable_order: u32) -> ContigPageInfo {
        let mut info = ContigPageInfo::default();
        for (order, &blocks) in free_blocks.iter().enumerate() {
            let order = u32::try_from(order).unwrap_or(u32::MAX);
            info.free_blocks_total = info.free_blocks_total.saturating_add(blocks);
            info.free_pages = info.free_pages.saturating_add(shl(blocks, order));
            if order >= suitable_order {
                info.free_blocks_suitable = info
                    .free_blocks_suitable
                    .saturating_add(shl(blocks, order - suitable_order));
            }
        }
        info
    }

    /// `unusable_free_index`: thousandths of free memory unusable for an
    /// allocation of `order`; 1000 when nothing is free.
    pub fn unusable_free_index(&self, order: u32) -> u64 {
        if self.free_pages == 0 {
            return 1000;
        }
        let usable = shl(self.free_blocks_suitable, order).min(self.free_pages);
        (self.free_pages - usable).saturating_mul(1000) / self.free_pages
    }

    /// `__fragmentation_index` in thousandths: `None` when a suitable block
    /// is free (the kernel's -1000, "not applicable"), `Some(0)` when no block
    /// is free at all, otherwise
    /// `1000 - (1000 + free_pages * 1000 / requested) / free_blocks_total`
    /// with the kernel's integer divisions.
    pub fn fragmentation_index(&self, order: u32) -> Option<i64> {
        if self.free_blocks_total == 0 {
            return Some(0);
        }
        if self.free_blocks_suitable > 0 {
            return None;
        }
        let requested = shl(1, order);
        let quotient = 1000u64.saturating_add(self.free_pages.saturating_mul(1000) / requested)
            / self.free_blocks_total;
        Some(1000i64.saturating_sub(i64::try_from(quotient).unwrap_or(i64::MAX)))
    }
}

/// `value << shift`, saturating at `u64::MAX` instead of losing bits.
fn shl(value: u64, shift: u32) -> u64 {
    if value == 0 {
        return 0;
    }
    if shift >= 64 || value.leading_zeros() < shift {
        return u64::MAX;
    }
    value << shift
}

impl BuddyZone {
    /// Builds a zone from its per-order free block counts.
    pub fn new(
        node: u32,
        zone: impl Into<String>,
        free_blocks: &[u64],
        page_size_bytes: u64,
    ) -> BuddyZone {
        let free_pages = ContigPageInfo::new(free_blocks, 0).free_pages;
        let orders = free_blocks
            .iter()
            .enumerate()
            .map(|(order, &blocks)| {
                let order = u32::try_from(order).unwrap_or(u32::MAX);
                let info = ContigPageInfo::new(free_blocks, order);
                let unusable = info.unusable_free_index(order);
                let frag = info.fragmentation_index(order);
                OrderInfo {
                    order,
                    free_blocks: blocks,
                    block_bytes: shl(page_size_bytes, order),
                    unusable_free_index_milli: unusable,
                    unusable_free_index: unusable as f64 / 1000.0,
                    fragmentation_index_milli: frag,
                    fragmentation_index: frag.map(|f| f as f64 / 1000.0),
                }
            })
            .collect();
        BuddyZone {
            node,
            zone: zone.into(),
            free_pages,
            free_bytes: free_pages.saturating_mul(page_size_bytes),
            orders,
        }
    }

    /// The free block counts, indexed by order.
    pub fn free_blocks(&self) -> Vec<u64> {
        self.orders.iter().map(|o| o.free_blocks).collect()
    }
}

impl Buddyinfo {
    /// Parses the text of `/proc/buddyinfo`
    /// (`Node 0, zone   Normal   18464   8641 ...`), with pages of
    /// `page_size_bytes`.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R, page_size_bytes: u64) -> Result<Buddyinfo, ParseError> {
        let mut zones = Vec::new();
        util::for_each_line(reader, |line, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            zones.push(parse_zone(line, text, page_size_bytes)?);
            Ok(())
        })?;
        if zones.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(Buddyinfo {
            page_size_bytes,
            zones,
        })
    }

    /// Parses `/proc/buddyinfo` text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str, page_size_bytes: u64) -> Result<Buddyinfo, ParseError> {
        Buddyinfo::parse(text.as_bytes(), page_size_bytes)
    }

    /// Reads `<root>/proc/buddyinfo`, with this system's page size.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>) -> Result<Buddyinfo, ReadError> {
        let path = util::join(root.as_ref(), "/proc/buddyinfo");
        let page_size = util::page_size();
        util::read_with(&path, |bytes| Buddyinfo::parse(bytes, page_size))
    }

    /// Free pages over all zones. This need not equal `MemFree` (per-CPU page
    /// lists, memory hot-plug), so compare the two with care.
    pub fn free_pages(&self) -> u64 {
        self.zones
            .iter()
            .fold(0u64, |sum, z| sum.saturating_add(z.free_pages))
    }
}

fn parse_zone(line: usize, text: &str, page_size_bytes: u64) -> Result<BuddyZone, ParseError> {
    const SHAPE: &str = "Node N, zone NAME count...";
    let malformed = || ParseError::Malformed {
        line,
        expected: SHAPE,
    };
    let mut fields = text.split_whitespace();
    if fields.next() != Some("Node") {
        return Err(malformed());
    }
    let node = fields
        .next()
        .and_then(|n| n.strip_suffix(','))
        .ok_or_else(malformed)?;
    let node =
        u32::try_from(util::number(node, line, "node")?).map_err(|_| ParseError::BadNumber {
            line,
            field: "node".to_owned(),
        })?;
    if fields.next() != Some("zone") {
        return Err(malformed());
    }
    let zone = fields.next().ok_or_else(malformed)?;
    let blocks = fields
        .map(|f| util::number(f, line, "free blocks"))
        .collect::<Result<Vec<u64>, ParseError>>()?;
    if blocks.is_empty() || blocks.len() > MAX_ORDERS {
        return Err(malformed());
    }
    Ok(BuddyZone::new(node, zone, &blocks, page_size_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn indices_match_the_kernel_arithmetic() {
        // Orders 0..=2 hold 4, 2, 1 free blocks: 4 + 4 + 4 = 12 free pages in
        // 7 blocks.
        let z = BuddyZone::new(0, "Normal", &[4, 2, 1], 4096);
        assert_eq!(z.free_pages, 12);
        assert_eq!(z.free_bytes, 12 * 4096);
        // order 0: everything usable: (12 - 12) * 1000 / 12 = 0; suitable > 0.
        assert_eq!(z.orders[0].unusable_free_index_milli, 0);
        assert_eq!(z.orders[0].fragmentation_index_milli, None);
        // order 1: suitable = 2 + 1 * 2 = 4 blocks of 2 pages = 8 pages;
        // (12 - 8) * 1000 / 12 = 333.
        assert_eq!(z.orders[1].unusable_free_index_milli, 333);
        // order 2: suitable = 1 block = 4 pages; (12 - 4) * 1000 / 12 = 666.
        assert_eq!(z.orders[2].unusable_free_index_milli, 666);
        assert_eq!(z.orders[2].unusable_free_index, 0.666);
        // An order 3 request against the same blocks: nothing suitable, so
        // 1000 - (1000 + 12 * 1000 / 8) / 7 = 1000 - 2500 / 7 = 1000 - 357 = 643.
        let info = ContigPageInfo::new(&[4, 2, 1], 3);
        assert_eq!(info.free_blocks_suitable, 0);
        assert_eq!(info.fragmentation_index(3), Some(643));
        assert_eq!(info.unusable_free_index(3), 1000);
        // No free memory at all: unusable 1000, fragmentation 0.
        let empty = ContigPageInfo::new(&[0, 0], 1);
        assert_eq!(empty.unusable_free_index(1), 1000);
        assert_eq!(empty.fragmentation_index(1), Some(0));
    }

    #[test]
    fn parses_lines_and_refuses_garbage() {
        let b = Buddyinfo::parse_str(
            "Node 0, zone      DMA      0      0      1\nNode 1, zone   Normal  3 2 1\n",
            4096,
        )
        .unwrap();
        assert_eq!(b.zones.len(), 2);
        assert_eq!(b.zones[1].node, 1);
        assert_eq!(b.zones[1].zone, "Normal");
        assert_eq!(b.zones[1].free_blocks(), vec![3, 2, 1]);
        assert_eq!(b.free_pages(), 4 + 3 + 4 + 4);
        assert!(Buddyinfo::parse_str("", 4096).is_err());
        assert!(Buddyinfo::parse_str("Node 0 zone DMA 1\n", 4096).is_err());
        assert!(Buddyinfo::parse_str("Node 0, zone DMA\n", 4096).is_err());
        assert!(Buddyinfo::parse_str("Node 0, zone DMA 1 x\n", 4096).is_err());
    }

    #[test]
    fn huge_counts_saturate() {
        let z = BuddyZone::new(0, "Normal", &[u64::MAX; 11], u64::MAX);
        assert_eq!(z.free_pages, u64::MAX);
        assert_eq!(z.free_bytes, u64::MAX);
        assert!(z.orders.iter().all(|o| o.unusable_free_index_milli <= 1000));
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Buddyinfo::parse(&bytes[..], 4096);
        }

        #[test]
        fn indices_stay_in_range(blocks in proptest::collection::vec(any::<u64>(), 1..14), cut in 0usize..120) {
            let line = format!(
                "Node 0, zone Normal {}\n",
                blocks.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
            );
            let cut = cut.min(line.len());
            let _ = Buddyinfo::parse(&line.as_bytes()[..cut], 4096);
            let b = Buddyinfo::parse_str(&line, 4096).unwrap();
            for o in &b.zones[0].orders {
                prop_assert!(o.unusable_free_index_milli <= 1000);
                if let Some(f) = o.fragmentation_index_milli {
                    prop_assert!(f <= 1000);
                }
            }
        }
    }
}
