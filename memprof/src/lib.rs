//! memprof: a sampling heap profiler and leak finder that a Rust service can
//! leave switched on in production.
//!
//! Set it as the global allocator; it wraps jemalloc by default:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! fn main() {
//!     let data: Vec<u8> = vec![0; 1 << 20];
//!     let snapshot = memprof::snapshot();
//!     for stack in snapshot.top(5, memprof::Kind::InuseSpace) {
//!         println!("{} bytes at {}", stack.estimates.inuse_bytes, stack.folded_key());
//!     }
//!     drop(data);
//! }
//! ```
//!
//! Allocations are sampled as a Poisson process on bytes (one sample per
//! 512 KiB on average, as Go and jemalloc do), each with its stack, and every
//! figure memprof reports is an unbiased estimate; `set_rate(1)` records every
//! allocation exactly.
//!
//! # Environment
//!
//! Read once, before or at the first sample; a bad value keeps the default,
//! is said once on stderr and shows in `/stats`, and never fails the program:
//!
//! * `MEMPROF_RATE`: mean bytes between samples (`0` off, `1` every
//!   allocation), with or without a unit (`524288`, `512KiB`, `1 MiB`).
//! * `MEMPROF_UNWIND`: `fp` (frame pointers), `framehop` (DWARF unwind
//!   tables, cached) or `dwarf` (the `backtrace` crate) to force the stack
//!   walker; by default the first samples verify frame pointers and then
//!   framehop against a full unwind, and the cheapest that agrees is kept.
//! * `MEMPROF_MAX_FRAMES`: the deepest stack kept, 1 to 256 frames (default
//!   64); a deeper stack keeps its leaf-most frames and ends in a
//!   `[truncated]` root frame.
//! * `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES`: the caps of
//!   [`set_max_stacks`] and [`set_max_samples`], applied before the first
//!   sample (so also in exact mode from before `main`); a cap set in code
//!   wins.
//! * `MEMPROF_ADDR` and `MEMPROF_TOKEN`: the endpoint's address and bearer
//!   token, for `http::serve_from_env()` (feature `http`).
//!
//! # Configuration in code
//!
//! ```
//! // Sample one allocation per 64 KiB on average instead of 512 KiB.
//! memprof::set_rate(64 * 1024);
//! assert_eq!(memprof::rate(), 64 * 1024);
//! // Record every allocation of this thread, exactly (tests do this).
//! let previous = memprof::set_thread_rate(Some(1));
//! memprof::set_thread_rate(previous);
//! memprof::set_rate(memprof::DEFAULT_RATE);
//! ```
//!
//! # Feature flags
//!
//! * `jemalloc` (default): `MemProf::jemalloc()` and jemalloc statistics.
//! * `http` (default): the embedded endpoint, [`serve`] and
//!   `http::router()`; turns on `export`.
//! * `export`: SVG flamegraphs (inferno) and gzipped pprof; folded stacks
//!   and Prometheus text need no feature.
//! * `cli`: the `memprof` command-line tool (`host`, `top`, `watch`,
//!   `doctor` for any process).

#![warn(missing_docs, unreachable_pub, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
mod allocator_reading;
pub mod doctor;
pub mod export;
mod fixed;
mod fork;
mod hash;
pub mod history;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
mod human;
#[cfg(feature = "jemalloc")]
pub mod jemalloc;
mod os;
pub mod profile;
pub mod sample;
pub mod scope;
pub mod stack;
mod stripe;
mod sync;
pub mod testing;

pub use crate::alloc::{is_active, unsampled, MemProf};
#[cfg(feature = "http")]
pub use crate::http::serve;
pub use crate::profile::{snapshot, Kind, Snapshot};
pub use crate::sample::rate::{rate, set_rate, DEFAULT_RATE};
pub use crate::scope::scope;
pub use memprof_macros::{scope, test};

/// Caps how many live samples are kept (default 4,194,304, enough for exact
/// mode over a few million live blocks). Samples past the cap are dropped and
/// counted in [`sample::counters`]. The cap is kept without a shared count
/// (each shard of the table holds an allowance it asks for now and then), so
/// a thread inserting while an allowance is granted may pass it by a sample
/// or two. The table's memory grows with the samples and shrinks as they are
/// freed.
///
/// Takes effect whenever it is called (from the next grant of allowances),
/// and wins over `MEMPROF_MAX_SAMPLES`.
pub fn set_max_samples(max: usize) {
    crate::stack::limits::apply_env_once();
    crate::sample::LIVE.set_max_samples(max);
}

/// Caps how many distinct stacks are kept (default 65,536, or
/// `MEMPROF_MAX_STACKS`); stacks past the cap are counted under a
/// `[stack table full]` stack so totals stay right.
///
/// Takes effect only before the first sample, which sizes the table: returns
/// `false` and says so on stderr when called later. With `MEMPROF_RATE=1`
/// sampling starts before `main`, so set `MEMPROF_MAX_STACKS` instead.
pub fn set_max_stacks(max: usize) -> bool {
    crate::stack::limits::apply_env_once();
    let applied = crate::stack::STACKS.set_max_stacks(max);
    if !applied {
        eprintln!(
            "memprof: set_max_stacks({max}) came too late: the stack table is in use \
             (the first sample sized it), so its cap stays; set MEMPROF_MAX_STACKS \
             to size it before the first sample"
        );
    }
    applied
}

/// Sets (or with `None` clears) a sampling rate for the calling thread only,
/// effective from its next allocation; returns the previous override.
///
/// `Some(1)` records every allocation this thread makes, exactly, while the
/// rest of the process keeps sampling; `#[memprof::test]` uses it.
pub fn set_thread_rate(rate: Option<u64>) -> Option<u64> {
    crate::alloc::thread::set_thread_rate(rate)
}
