//! `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES` applied to the tables:
//! once, before the stack table is first used, so they hold even when
//! sampling starts before `main` (`MEMPROF_RATE=1`).
//!
//! A cap set in code wins over the environment: the setters apply the
//! environment first, then their own value.

use core::sync::atomic::{AtomicBool, Ordering};

/// Whether the environment has been applied (or is being applied).
static APPLIED: AtomicBool = AtomicBool::new(false);

/// Applies `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES` the first time it
/// is called; later calls do nothing. Never allocates (it runs on the
/// allocator's slow path, before the stack table's first use).
pub(crate) fn apply_env_once() {
    if APPLIED.load(Ordering::Relaxed) || APPLIED.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Some(max) = crate::config::env::max_stacks() {
        super::STACKS.store_max_stacks(max);
    }
    if let Some(max) = crate::config::env::max_samples() {
        crate::sample::LIVE.set_max_samples(max);
    }
}
