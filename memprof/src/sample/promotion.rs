//! Promotion and the page gate: why most frees never touch the live table.
//!
//! # Promotion
//!
//! At rates of [`PROMOTE_MIN_RATE`] and above, the allocator gives a sampled
//! block a page-aligned layout of at least a page ([`promoted_layout`]), as
//! jemalloc's profiler promotes its sampled blocks to a large size class.
//! It costs at most a page per live sample, and since samples are drawn per
//! byte, most sampled blocks are not tiny: at the default rate the padding
//! is under 1% of the heap in the worst case. Below that rate (exact mode
//! above all) blocks keep their layout: the padding would be too large, and
//! every free consults the table anyway.
//!
//! A promoted block must be freed with its promoted layout, and only its
//! sample records that it was promoted. So a promoted block never lives
//! without its sample: if the live table refuses the sample, the block is
//! swapped for an ordinary one at once, and a reallocation leaves the old
//! block's sample in the table until the old block is freed
//! ([`Outgoing::StaysUntilFreed`](super::live::Outgoing)).
//!
//! # The page gate
//!
//! While every live sample is page-aligned, a free of any other address is
//! settled by its low bits alone: most frees are of small blocks, and most
//! small blocks are not page-aligned. The gate is one mask read on every
//! free ([`LiveSamples::may_contain`](super::LiveSamples)): the page mask
//! while all live samples are aligned, 0 (everything goes on to the filter)
//! while any is not. Its invariant: **the gate is never open while an
//! unaligned sample is live.**
//!
//! * An unaligned insert shuts the gate under its shard's lock, before the
//!   sample is visible.
//! * Each shard counts its unaligned samples under its lock. Removing a
//!   shard's last one may let the gate reopen: the remover then checks every
//!   shard's count, and only if all are zero takes every shard lock, in
//!   order, checks again and opens the gate, so no insert slips in between.
//! * Reopening is tried only at rates that promote ([`promotes_at`]): in
//!   exact mode nothing is promoted, the gate stays shut, and trying would
//!   only cost.
//!
//! An unaligned sample appears whenever promotion does not apply: a thread
//! whose own rate is below [`PROMOTE_MIN_RATE`], an over-aligned block, a
//! rate changed while samples of the old rate are live.

use core::alloc::Layout;

/// Alignment (and minimum size) of a promoted sampled block: one 4 KiB page,
/// the boundary the page gate tests.
pub const SAMPLED_BLOCK_ALIGN: usize = 4096;

/// The gate's mask while every live sample is aligned.
pub(crate) const PAGE_MASK: usize = SAMPLED_BLOCK_ALIGN - 1;

/// The lowest rate at which sampled blocks are promoted: a page of padding
/// per `rate` bytes of heap is then at most 1/64.
pub(crate) const PROMOTE_MIN_RATE: u64 = 256 << 10;

/// Whether blocks sampled at `rate` are promoted.
#[inline]
pub(crate) fn promotes_at(rate: u64) -> bool {
    rate >= PROMOTE_MIN_RATE
}

/// The layout a promoted block of the caller's `layout` really has, or
/// `None` if the layout cannot be promoted (it needs a larger alignment, or
/// its size would overflow).
pub(crate) fn promoted_layout(layout: Layout) -> Option<Layout> {
    if layout.align() > SAMPLED_BLOCK_ALIGN {
        return None;
    }
    Layout::from_size_align(layout.size().max(SAMPLED_BLOCK_ALIGN), SAMPLED_BLOCK_ALIGN).ok()
}

/// The layout to give a block of `layout` sampled at `rate`, if it is
/// promoted.
pub(crate) fn layout_for(rate: u64, layout: Layout) -> Option<Layout> {
    promotes_at(rate).then(|| promoted_layout(layout)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promoted_layouts_are_page_aligned_and_at_least_a_page() {
        let small = Layout::from_size_align(24, 8).unwrap();
        let p = promoted_layout(small).unwrap();
        assert_eq!(
            (p.size(), p.align()),
            (SAMPLED_BLOCK_ALIGN, SAMPLED_BLOCK_ALIGN)
        );
        let big = Layout::from_size_align(100_000, 16).unwrap();
        assert_eq!(promoted_layout(big).unwrap().size(), 100_000);
        let over_aligned = Layout::from_size_align(64, 2 * SAMPLED_BLOCK_ALIGN).unwrap();
        assert!(promoted_layout(over_aligned).is_none());
        let huge = Layout::from_size_align(isize::MAX as usize - 8, 8).unwrap();
        assert!(promoted_layout(huge).is_none());
    }

    #[test]
    fn only_rates_at_or_above_the_threshold_promote() {
        let small = Layout::from_size_align(24, 8).unwrap();
        assert!(layout_for(1, small).is_none(), "exact mode");
        assert!(layout_for(PROMOTE_MIN_RATE - 1, small).is_none());
        assert_eq!(layout_for(PROMOTE_MIN_RATE, small), promoted_layout(small));
    }
}
