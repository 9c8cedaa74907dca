//! jemalloc's own statistics: totals, ratios, size-class bins, large
//! extents, dirty pages, decay settings, and purge.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! match memprof::jemalloc::stats() {
//!     Ok(stats) => println!(
//!         "fragmentation {:?}, {} bytes in free small slots",
//!         stats.ratios.allocator_fragmentation_ratio,
//!         stats.ratios.small_bin_waste_bytes,
//!     ),
//!     Err(why) => println!("{why}"),
//! }
//! ```
//!
//! # Not available
//!
//! These statistics are optional. Every reading returns
//! `Result<_, `[`Unavailable`]`>`: when jemalloc does not serve the global
//! allocator (checked each time with [`serves_global_allocator`]), reports
//! nothing allocated, or a mallctl fails, the error says which, and nothing
//! panics.
//!
//! # Epochs
//!
//! jemalloc caches its statistics and refreshes them when the `epoch` is
//! advanced. Each reading advances it once, then reads everything, so the
//! figures of one [`JemallocStats`] belong together; the reading carries the
//! epoch and the wall-clock time of the refresh.
//!
//! # Why MIBs
//!
//! Per-size-class statistics are read in loops (`arenas.bin.<j>.size` for
//! every bin `j`). Looking a name up costs a string walk through jemalloc's
//! mallctl tree each time; resolving it once to a MIB (an array of integers)
//! and replacing the index component makes each read a few array lookups.
//! Names that tikv-jemalloc-ctl does not type are declared once, with their
//! C type, in the private `keys` module.
//!
//! All bin, extent and page statistics are of the merged arena
//! `stats.arenas.4096` (`MALLCTL_ARENAS_ALL`).

mod bins;
mod ctl;
mod keys;
mod probe;
mod purge;
mod reading;
mod settings;
mod totals;
mod unavailable;

pub use self::bins::{small_bin_waste_bytes, BinStats, LargeStats};
pub use self::probe::serves_global_allocator;
pub(crate) use self::probe::thread_net_allocated;
pub use self::purge::{purge, PurgeReport};
pub use self::reading::{stats, stats_with_rss, JemallocStats};
pub use self::settings::Settings;
pub use self::totals::{PageCounts, Ratios, Totals};
pub use self::unavailable::Unavailable;
