//! The incident views: `/history`, `/host`, `/allocator` (and its purge),
//! `/doctor`, `/leaks` and `/top`. Each file holds one view: the body it
//! answers, that body's text form for a terminal (`format=text`, through
//! [`super::respond::TextForm`]), and its handler, which reads through
//! [`crate::history`], [`crate::host`], [`crate::jemalloc`],
//! [`crate::doctor`] or [`crate::profile`] on the blocking pool.

mod allocator;
mod doctor;
mod dumps;
mod history;
mod host;
mod leaks;
mod top;

pub(super) use self::allocator::{allocator_purge, allocator_view};
pub(super) use self::doctor::doctor_view;
pub(super) use self::dumps::{create_dump, dump_file, dumps_view};
pub(super) use self::history::history_view;
pub(super) use self::host::host_view;
pub(super) use self::leaks::leaks_view;
pub(super) use self::top::top_view;

use super::error::ApiError;
use crate::history::History;

/// The running history, started with the defaults if it is not yet.
fn history() -> Result<History, ApiError> {
    crate::history::ensure_started()
        .map_err(|e| ApiError::Internal(format!("history sampler: {e}")))
}

/// `hh:mm:ss` (UTC) of a Unix time in milliseconds.
fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// An amount that may be missing, `-` when it is.
fn bytes_or_dash(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), crate::human::format_bytes)
}
