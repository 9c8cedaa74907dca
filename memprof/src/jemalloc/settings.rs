//! Decay, background-thread and arena settings.

use serde::Serialize;

use super::keys;
use super::Unavailable;

/// jemalloc's settings that decide how fast unused pages go back to the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct Settings {
    /// `opt.dirty_decay_ms`: how long a dirty page stays before it is made
    /// muzzy or purged; `-1` never, `0` at once.
    pub opt_dirty_decay_ms: i64,
    /// `opt.muzzy_decay_ms`: the same for muzzy pages.
    pub opt_muzzy_decay_ms: i64,
    /// `opt.background_thread`: whether background threads were asked for
    /// at start-up.
    pub opt_background_thread: bool,
    /// `background_thread`: whether background threads run now. Without
    /// them, decay happens only when the program calls into jemalloc.
    pub background_thread: bool,
    /// `opt.narenas`: the arena limit set at start-up.
    pub opt_narenas: u32,
    /// `arenas.narenas`: arenas now.
    pub narenas: u32,
}

impl Settings {
    /// Reads the settings.
    pub(crate) fn read() -> Result<Self, Unavailable> {
        Ok(Settings {
            opt_dirty_decay_ms: keys::OPT_DIRTY_DECAY_MS.read()? as i64,
            opt_muzzy_decay_ms: keys::OPT_MUZZY_DECAY_MS.read()? as i64,
            opt_background_thread: keys::OPT_BACKGROUND_THREAD.read()?,
            background_thread: keys::BACKGROUND_THREAD.read()?,
            opt_narenas: keys::OPT_NARENAS.read()?,
            narenas: keys::NARENAS.read()?,
        })
    }
}
