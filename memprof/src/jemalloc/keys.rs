//! Every mallctl name memprof reads, with its C type.
//!
//! Types are from jemalloc 5.3's manual (`man jemalloc`, MALLCTL NAMESPACE):
//! size_t = `usize`, ssize_t = `isize`, unsigned and uint32_t = `u32`,
//! uint64_t = `u64`, bool = `bool`. Names with `4096` read the merged view
//! of all arenas (`MALLCTL_ARENAS_ALL`); a `0` in a bin or extent position is
//! a placeholder replaced through the MIB.

use super::ctl::Key;

macro_rules! keys {
    ($($(#[$doc:meta])* $id:ident: $t:ty = $name:literal;)*) => {$(
        $(#[$doc])*
        // SAFETY: the type was checked against the jemalloc manual for this
        // name (see the module docs), and the name literal ends in NUL.
        pub(crate) static $id: Key<$t> = unsafe { Key::new(concat!($name, "\0")) };
    )*};
}

keys! {
    /// size_t, r-.
    ALLOCATED: usize = "stats.allocated";
    /// size_t, r-.
    ACTIVE: usize = "stats.active";
    /// size_t, r-.
    METADATA: usize = "stats.metadata";
    /// size_t, r-.
    RESIDENT: usize = "stats.resident";
    /// size_t, r-.
    MAPPED: usize = "stats.mapped";
    /// size_t, r-.
    RETAINED: usize = "stats.retained";

    /// size_t, r-: the page size.
    PAGE: usize = "arenas.page";
    /// unsigned, r-.
    NBINS: u32 = "arenas.nbins";
    /// unsigned, r-.
    NLEXTENTS: u32 = "arenas.nlextents";
    /// unsigned, r-: current arena count.
    NARENAS: u32 = "arenas.narenas";
    /// size_t, r-; bin index at MIB position 2.
    BIN_SIZE: usize = "arenas.bin.0.size";
    /// uint32_t, r-; bin index at MIB position 2.
    BIN_NREGS: u32 = "arenas.bin.0.nregs";
    /// size_t, r-; bin index at MIB position 2.
    BIN_SLAB_SIZE: usize = "arenas.bin.0.slab_size";
    /// size_t, r-; extent index at MIB position 2.
    LEXTENT_SIZE: usize = "arenas.lextent.0.size";

    /// size_t, r-; bin index at MIB position 4.
    BIN_CURREGS: usize = "stats.arenas.4096.bins.0.curregs";
    /// size_t, r-; bin index at MIB position 4.
    BIN_CURSLABS: usize = "stats.arenas.4096.bins.0.curslabs";
    /// size_t, r-; bin index at MIB position 4.
    BIN_NONFULL_SLABS: usize = "stats.arenas.4096.bins.0.nonfull_slabs";
    /// uint64_t, r-; bin index at MIB position 4.
    BIN_NMALLOC: u64 = "stats.arenas.4096.bins.0.nmalloc";
    /// uint64_t, r-; bin index at MIB position 4.
    BIN_NDALLOC: u64 = "stats.arenas.4096.bins.0.ndalloc";
    /// size_t, r-; extent index at MIB position 4.
    LEXTENT_CURLEXTENTS: usize = "stats.arenas.4096.lextents.0.curlextents";
    /// size_t, r-: dirty pages of all arenas.
    PDIRTY: usize = "stats.arenas.4096.pdirty";
    /// size_t, r-: muzzy pages of all arenas.
    PMUZZY: usize = "stats.arenas.4096.pmuzzy";

    /// ssize_t, r-.
    OPT_DIRTY_DECAY_MS: isize = "opt.dirty_decay_ms";
    /// ssize_t, r-.
    OPT_MUZZY_DECAY_MS: isize = "opt.muzzy_decay_ms";
    /// bool, r-.
    OPT_BACKGROUND_THREAD: bool = "opt.background_thread";
    /// unsigned, r-.
    OPT_NARENAS: u32 = "opt.narenas";
    /// bool, rw: whether background threads run now.
    BACKGROUND_THREAD: bool = "background_thread";

    /// uint64_t, r-: bytes this thread has allocated through jemalloc.
    THREAD_ALLOCATED: u64 = "thread.allocated";
    /// uint64_t, r-: bytes this thread has freed through jemalloc.
    THREAD_DEALLOCATED: u64 = "thread.deallocated";
}

/// `arena.<i>.purge` (void) for all arenas; called through
/// `tikv_jemalloc_sys::mallctl` because it takes no value.
pub(crate) const PURGE_ALL: &str = "arena.4096.purge\0";

/// MIB position of the bin or extent index in `arenas.bin.<j>.*` and
/// `arenas.lextent.<j>.*`.
pub(crate) const ARENAS_INDEX_POS: usize = 2;
/// MIB position of the bin or extent index in `stats.arenas.<i>.bins.<j>.*`
/// and `stats.arenas.<i>.lextents.<j>.*`.
pub(crate) const STATS_INDEX_POS: usize = 4;
