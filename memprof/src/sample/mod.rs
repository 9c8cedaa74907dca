//! Sampling: exponential draws and weights, the live-sample table, and the
//! counters that say what the sampler did and what it dropped.

pub mod filter;
pub mod live;
pub mod rate;

use core::sync::atomic::{AtomicU64, Ordering};

pub use live::{LiveSample, LiveSamples, SAMPLED_BLOCK_ALIGN};

/// Every sampled block that is still allocated.
pub(crate) static LIVE: LiveSamples = LiveSamples::new();

/// Crossings skipped because memprof was already busy on that thread.
pub(crate) static SKIPPED_BUSY: AtomicU64 = AtomicU64::new(0);

/// What the sampler has done, and what it had to drop.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SamplerCounters {
    /// Samples recorded since start.
    pub samples_taken: u64,
    /// Sampled blocks since freed.
    pub samples_freed: u64,
    /// Sampled blocks alive now.
    pub live_samples: u64,
    /// Samples dropped because the live table was full.
    pub samples_dropped: u64,
    /// Stacks the stack table could not hold (counted under an overflow stack).
    pub stacks_dropped: u64,
    /// Distinct stacks interned.
    pub stacks: u64,
    /// Sample points that fell while memprof itself was allocating.
    pub skipped_reentrant: u64,
    /// Bytes mapped for the live table, stack table and symbol cache.
    pub profiler_bytes: u64,
    /// Bytes the live sampled blocks hold beyond what was asked for, because
    /// they were promoted to a page (see [`LiveSample::is_promoted`]).
    #[serde(default)]
    pub promotion_padding_bytes: u64,
    /// Live samples that are not page-aligned (not promoted: exact mode, a
    /// thread's own rate below the promotion rate, over-aligned blocks).
    /// While there are any, every free consults the sampled-address filter.
    #[serde(default)]
    pub unaligned_live_samples: u64,
}

/// Copies every live sample: the sampled blocks not freed yet, with their
/// addresses, sizes and stack ids. What `snapshot` aggregates, one by one.
pub fn live_samples() -> Vec<LiveSample> {
    crate::alloc::unsampled(|| {
        let mut live = Vec::new();
        LIVE.copy_into(&mut live);
        live
    })
}

/// Reads the sampler's counters.
pub fn counters() -> SamplerCounters {
    let stacks = &crate::stack::STACKS;
    SamplerCounters {
        samples_taken: LIVE.samples_taken(),
        samples_freed: LIVE.samples_freed(),
        live_samples: LIVE.len() as u64,
        samples_dropped: LIVE.dropped(),
        stacks_dropped: stacks.dropped(),
        stacks: u64::from(stacks.id_limit().saturating_sub(1)),
        skipped_reentrant: SKIPPED_BUSY.load(Ordering::Relaxed),
        profiler_bytes: (LIVE.mapped_bytes()
            + stacks.memory_bytes()
            + crate::stack::symbolize::cache_bytes()) as u64,
        promotion_padding_bytes: LIVE.promotion_padding() as u64,
        unaligned_live_samples: LIVE.unaligned() as u64,
    }
}
