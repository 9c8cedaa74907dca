//! Whether jemalloc is the allocator serving this process.
//!
//! tikv-jemalloc-sys links jemalloc into every binary built with the
//! `jemalloc` feature, even when the global allocator is something else
//! (`MemProf::new(std::alloc::System)`); its statistics then describe an
//! idle allocator. `MemProf` is generic, so the library cannot tell from
//! types alone. Instead this asks jemalloc: allocate a block through the
//! global allocator and see whether jemalloc's per-thread `thread.allocated`
//! counter moved by at least its size.

use super::keys;
use super::Unavailable;

/// Bytes allocated by the probe; big enough not to be confused with
/// anything jemalloc does internally, small enough to be served at once.
const PROBE_BYTES: usize = 4096;

/// Whether the global allocator is served by jemalloc, as seen from the
/// calling thread.
///
/// Allocates and frees one 4 KiB block through the global allocator
/// (unsampled, so it does not show up in profiles). An error means jemalloc
/// could not even be asked.
///
/// # Errors
///
/// `Unavailable` when jemalloc's statistics cannot be read (another allocator
/// is linked in, or the read fails).
pub fn serves_global_allocator() -> Result<bool, Unavailable> {
    let before = keys::THREAD_ALLOCATED.read()?;
    crate::thread_state::unsampled(|| {
        let block: Vec<u8> = Vec::with_capacity(PROBE_BYTES);
        // Keep the allocation from being optimised away.
        drop(std::hint::black_box(block));
    });
    let after = keys::THREAD_ALLOCATED.read()?;
    Ok(after.wrapping_sub(before) >= PROBE_BYTES as u64)
}

/// `Ok(())` when jemalloc serves the global allocator, else why not.
pub(crate) fn require_global_allocator() -> Result<(), Unavailable> {
    if serves_global_allocator()? {
        Ok(())
    } else {
        Err(Unavailable::NotGlobalAllocator)
    }
}

/// Bytes this thread has allocated less the bytes it has freed, through
/// jemalloc, when jemalloc serves the global allocator; a difference of two
/// readings is what the code between them kept (or, negative, released).
///
/// `None` when jemalloc does not serve the process (its counters would not
/// move) or cannot be asked. Whether it serves is probed once.
pub(crate) fn thread_net_allocated() -> Option<i64> {
    use core::sync::atomic::{AtomicU8, Ordering};
    // 0: not probed yet, 1: serves, 2: does not. Not a `OnceLock`: a child
    // forked while another thread initialised one would wait on it forever;
    // two threads probing at once both get the same answer.
    static SERVES: AtomicU8 = AtomicU8::new(0);
    let serves = match SERVES.load(Ordering::Relaxed) {
        0 => {
            let serves = serves_global_allocator().unwrap_or(false);
            SERVES.store(if serves { 1 } else { 2 }, Ordering::Relaxed);
            serves
        }
        known => known == 1,
    };
    if !serves {
        return None;
    }
    let allocated = keys::THREAD_ALLOCATED.read().ok()?;
    let deallocated = keys::THREAD_DEALLOCATED.read().ok()?;
    Some(allocated.wrapping_sub(deallocated) as i64)
}
