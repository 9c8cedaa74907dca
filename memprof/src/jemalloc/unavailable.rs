//! Why a jemalloc reading could not be made.

use core::fmt;

use serde::Serialize;

/// Why a jemalloc reading is "not available".
///
/// Every public reading in [`crate::jemalloc`] returns `Result<_, Unavailable>`:
/// jemalloc statistics are optional, so a process running memprof over
/// another allocator gets this value (with the reason), never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unavailable {
    /// jemalloc is linked into the binary but does not serve the process's
    /// global allocator (for example `MemProf::new(std::alloc::System)`):
    /// an allocation made through the global allocator did not show up in
    /// jemalloc's `thread.allocated` counter.
    NotGlobalAllocator,
    /// jemalloc answered, but reports nothing allocated (`stats.allocated`
    /// is 0), so it is not the allocator serving this program.
    NotInUse,
    /// A `mallctl` call failed; the reading would be wrong or empty.
    Mallctl {
        /// The mallctl name, e.g. `stats.arenas.4096.pdirty`.
        name: &'static str,
        /// jemalloc-ctl's description of the error.
        error: String,
    },
}

impl Unavailable {
    pub(crate) fn mallctl(name: &'static str, error: tikv_jemalloc_ctl::Error) -> Self {
        Unavailable::Mallctl {
            name,
            error: error.to_string(),
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotGlobalAllocator => f.write_str(
                "jemalloc statistics not available: jemalloc is not the global allocator",
            ),
            Unavailable::NotInUse => {
                f.write_str("jemalloc statistics not available: jemalloc reports nothing allocated")
            }
            Unavailable::Mallctl { name, error } => write!(
                f,
                "jemalloc statistics not available: mallctl {name} failed: {error}"
            ),
        }
    }
}

impl std::error::Error for Unavailable {}
