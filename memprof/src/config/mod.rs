//! The one place that reads every `MEMPROF_*` variable (`env`), with the
//! defaults and bounds of each setting. The variables, their defaults, what
//! they accept and what a bad value does are listed in the crate docs'
//! [Environment](crate#environment) table.
//!
//! A leaf: it imports only `crate::os` and `memprof-size`, so the
//! allocator path reads its variables through it. Code changes settings
//! through [`crate::Config`] (`settings.rs`, above `sample` and `stack`,
//! which applies each through its owner).
//!
//! The environment is read once, at each setting's first use (for most,
//! the first sample); a setting made in code wins over the environment
//! whenever it is made.

pub(crate) mod dump;
pub(crate) mod env;
mod slot;
mod unwinder;
mod values;

pub use dump::DumpSettings;
pub use slot::EnvState;
pub use unwinder::Unwinder;
pub use values::{
    DumpSignal, DEFAULT_DUMP_KEEP, DEFAULT_DUMP_LIMIT_THRESHOLDS, DEFAULT_DUMP_MAX_BYTES,
    DEFAULT_DUMP_MIN_INTERVAL_SECONDS, DEFAULT_DUMP_PEAK_FLOOR_BYTES, DEFAULT_DUMP_PEAK_MARGIN,
    DEFAULT_MAX_FRAMES, DEFAULT_MAX_SAMPLES, DEFAULT_MAX_STACKS, DEFAULT_RATE, MAX_FRAMES,
};
