//! The sampler's counters as one reading: the live table, the stack table
//! and the symbol cache together (each of those modules counts its own).

use core::sync::atomic::Ordering;

use crate::sample::{SamplerCounters, LIVE, SKIPPED_BUSY};
use crate::stack::STACKS;

/// Reads the sampler's counters: what it has recorded, what it holds, and
/// what it had to drop.
///
/// # Examples
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// fn main() {
///     let previous = memprof::set_thread_rate(Some(1)); // record exactly
///     let buffer = vec![0u8; 1 << 16];
///     memprof::set_thread_rate(previous);
///
///     let counters = memprof::counters();
///     assert!(counters.samples_taken >= 1 && counters.live_samples >= 1);
///     println!("{} samples live, {} dropped", counters.live_samples, counters.samples_dropped);
///     drop(buffer);
/// }
/// ```
pub fn counters() -> SamplerCounters {
    SamplerCounters {
        samples_taken: LIVE.samples_taken(),
        samples_freed: LIVE.samples_freed(),
        live_samples: LIVE.len() as u64,
        samples_dropped: LIVE.dropped(),
        stacks_dropped: STACKS.dropped(),
        stacks: u64::from(STACKS.id_limit().saturating_sub(1)),
        skipped_reentrant: SKIPPED_BUSY.load(Ordering::Relaxed),
        profiler_bytes: (LIVE.mapped_bytes()
            + STACKS.memory_bytes()
            + crate::stack::symbolize::cache_bytes()) as u64,
        promotion_padding_bytes: LIVE.promotion_padding() as u64,
        unaligned_live_samples: LIVE.unaligned() as u64,
    }
}
