//! jemalloc's own statistics: totals, arenas, size-class bins, decay, purge.
