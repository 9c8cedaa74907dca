//! Sampling: exponential draws and weights, the live-sample table, and the
//! counters that say what the sampler did and what it dropped.

pub(crate) mod filter;
pub(crate) mod live;
pub(crate) mod per_thread;
pub(crate) mod promotion;
pub(crate) mod rate;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use live::LiveSample;
pub(crate) use live::LiveSamples;
pub use promotion::SAMPLED_BLOCK_ALIGN;

/// Every sampled block that is still allocated.
pub(crate) static LIVE: LiveSamples = LiveSamples::new();

/// Crossings skipped because memprof was already busy on that thread.
pub(crate) static SKIPPED_BUSY: AtomicU64 = AtomicU64::new(0);

/// Set by the first slow path of any thread: `MemProf` is the global
/// allocator.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether `MemProf` has served an allocation in this process (any
/// thread's first allocation takes its slow path, whatever the rate), which
/// shows that it is the global allocator.
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether `MemProf` is the process's global allocator: allocates one small
/// block and sees whether `MemProf` took note (every thread's first
/// allocation passes through its slow path, whatever the rate).
pub(crate) fn serves_global_allocator() -> bool {
    drop(core::hint::black_box(Box::new(0u64)));
    is_active()
}

/// What to tell someone whose program does not have `MemProf` as its global
/// allocator: without it memprof sees no allocation, and every profile is
/// empty.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) const NOT_GLOBAL_ALLOCATOR: &str = "MemProf is not the global allocator, so memprof \
    sees no allocations and every profile is empty. Add to the program's main.rs (or \
    lib.rs): #[global_allocator] static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();";

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
    crate::thread_state::unsampled(|| {
        let mut live = Vec::new();
        LIVE.copy_into(&mut live);
        live
    })
}
