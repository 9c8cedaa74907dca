//! Returning unused dirty and muzzy pages to the OS (`arena.4096.purge`).

use serde::Serialize;

use super::ctl::advance_epoch;
use super::keys::PURGE_ALL;
use super::probe::require_global_allocator;
use super::totals::{difference, PageCounts};
use super::{keys, Unavailable};

/// What a purge did: jemalloc's resident bytes and unused pages before and
/// after, each read right after advancing the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Epoch of the reading before the purge.
    pub epoch_before: u64,
    /// Epoch of the reading after the purge.
    pub epoch_after: u64,
    /// `stats.resident` before.
    pub resident_before_bytes: u64,
    /// `stats.resident` after.
    pub resident_after_bytes: u64,
    /// `resident_before - resident_after` (negative if resident grew, e.g.
    /// other threads allocating meanwhile).
    pub released_bytes: i64,
    /// `stats.active` before. Purging cannot lower it: fragmentation inside
    /// slabs survives a purge.
    pub active_before_bytes: u64,
    /// `stats.active` after.
    pub active_after_bytes: u64,
    /// Dirty pages before.
    pub dirty_before_pages: u64,
    /// Dirty pages before, in bytes.
    pub dirty_before_bytes: u64,
    /// Dirty pages after.
    pub dirty_after_pages: u64,
    /// Dirty pages after, in bytes.
    pub dirty_after_bytes: u64,
    /// Muzzy pages before, in bytes.
    pub muzzy_before_bytes: u64,
    /// Muzzy pages after, in bytes.
    pub muzzy_after_bytes: u64,
}

/// Purges unused dirty (and muzzy) pages of all arenas now and reports
/// resident memory before and after.
///
/// Only whole free pages go back; pages holding even one live block stay
/// (see [`super::Ratios::allocator_fragmentation_ratio`]). Thread caches are
/// not flushed, so blocks they hold keep their pages.
///
/// # Errors
///
/// `Unavailable` when jemalloc is not the allocator linked in, or the purge
/// call fails.
pub fn purge() -> Result<PurgeReport, Unavailable> {
    require_global_allocator()?;
    let epoch_before = advance_epoch()?;
    let resident_before = keys::RESIDENT.read()? as u64;
    let active_before = keys::ACTIVE.read()? as u64;
    let pages_before = PageCounts::read()?;

    purge_all_arenas()?;

    let epoch_after = advance_epoch()?;
    let resident_after = keys::RESIDENT.read()? as u64;
    let active_after = keys::ACTIVE.read()? as u64;
    let pages_after = PageCounts::read()?;
    Ok(PurgeReport {
        epoch_before,
        epoch_after,
        resident_before_bytes: resident_before,
        resident_after_bytes: resident_after,
        released_bytes: difference(resident_before, resident_after),
        active_before_bytes: active_before,
        active_after_bytes: active_after,
        dirty_before_pages: pages_before.dirty_pages,
        dirty_before_bytes: pages_before.dirty_bytes,
        dirty_after_pages: pages_after.dirty_pages,
        dirty_after_bytes: pages_after.dirty_bytes,
        muzzy_before_bytes: pages_before.muzzy_bytes,
        muzzy_after_bytes: pages_after.muzzy_bytes,
    })
}

/// Calls the void mallctl `arena.4096.purge`.
///
/// `tikv_jemalloc_ctl::raw::write` cannot: it passes a non-null `newp`,
/// which a void mallctl refuses with `EPERM`.
fn purge_all_arenas() -> Result<(), Unavailable> {
    // SAFETY: `PURGE_ALL` is a NUL-terminated name of a void mallctl; with
    // all of oldp, oldlenp and newp null (and newlen 0) jemalloc reads and
    // writes no memory of ours.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Unavailable::Mallctl {
            name: PURGE_ALL.trim_end_matches('\0'),
            error: errno_name(rc).to_owned(),
        })
    }
}

/// A readable name for a mallctl return code.
fn errno_name(rc: i32) -> &'static str {
    match rc {
        libc::EINVAL => "EINVAL: invalid argument",
        libc::ENOENT => "ENOENT: unknown name",
        libc::EPERM => "EPERM: not permitted",
        libc::EAGAIN => "EAGAIN: allocation failure",
        libc::EFAULT => "EFAULT: the operation failed",
        _ => "unknown error code",
    }
}
