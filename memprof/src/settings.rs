//! The settings code changes ([`Config`]) and the settings in effect
//! ([`Settings`], as `/stats` shows them). Each setting is kept by its
//! owner (the rate by `sample::rate`, the walker and depth by
//! `stack::capture`, the caps by the two tables) in its own atomic; this
//! module applies and gathers them. The environment is read in
//! `crate::config`, below every owner.
//!
//! The environment is read once, at each setting's first use (for most,
//! the first sample); a setting made in code wins over the environment
//! whenever it is made.

use std::collections::BTreeMap;

use crate::config::{env, DumpSettings, EnvState, Unwinder, MAX_FRAMES};

/// Settings to apply from code; each one left out keeps its current value
/// (the environment's, or the default).
///
/// # Examples
///
/// ```
/// let applied = memprof::Config::new()
///     .rate(64 * 1024)
///     .max_frames(128)
///     .max_samples(1 << 20)
///     .apply();
/// assert!(applied.is_ok());
/// assert_eq!(memprof::Config::current().max_frames, 128);
/// # memprof::Config::new().rate(memprof::DEFAULT_RATE).max_frames(memprof::config::DEFAULT_MAX_FRAMES).apply().unwrap();
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a Config does nothing until applied"]
pub struct Config {
    rate: Option<u64>,
    unwinder: Option<Unwinder>,
    max_frames: Option<usize>,
    max_stacks: Option<usize>,
    max_samples: Option<usize>,
    dumps: Option<DumpSettings>,
}

impl Config {
    /// No settings: applying it changes nothing.
    pub fn new() -> Config {
        Config::default()
    }

    /// The mean number of bytes between samples (`0` off, `1` every
    /// allocation); as [`crate::set_rate`].
    pub fn rate(mut self, bytes: u64) -> Config {
        self.rate = Some(bytes);
        self
    }

    /// Forces a stack walker, or with [`Unwinder::Verifying`] returns to the
    /// automatic choice (as `MEMPROF_UNWIND`). framehop stands for `dwarf`
    /// where it is not supported (it is on x86_64 Linux).
    pub fn unwinder(mut self, walker: Unwinder) -> Config {
        self.unwinder = Some(walker);
        self
    }

    /// The deepest stack kept, 1 to [`MAX_FRAMES`] frames, from the next
    /// sample on (as `MEMPROF_MAX_FRAMES`).
    pub fn max_frames(mut self, frames: usize) -> Config {
        self.max_frames = Some(frames);
        self
    }

    /// The distinct-stack cap; as [`set_max_stacks`], only before the first
    /// sample.
    pub fn max_stacks(mut self, stacks: usize) -> Config {
        self.max_stacks = Some(stacks);
        self
    }

    /// The live-sample cap; as [`set_max_samples`].
    pub fn max_samples(mut self, samples: usize) -> Config {
        self.max_samples = Some(samples);
        self
    }

    /// The flight recorder's settings (directory, triggers, retention),
    /// replacing the `MEMPROF_DUMP_*` variables' (start from
    /// [`DumpSettings::from_env`] to keep those). The dump watcher reads
    /// them at its next tick; `memprof::dump::start` starts it.
    pub fn dumps(mut self, settings: DumpSettings) -> Config {
        self.dumps = Some(settings);
        self
    }

    /// Applies the settings given.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MaxFramesOutOfRange`] applies nothing. With
    /// [`ConfigError::MaxStacksBelowKept`] the cap is set, the stacks kept
    /// already stay, and every other setting is applied.
    pub fn apply(self) -> Result<(), ConfigError> {
        if let Some(frames) = self.max_frames {
            if !(1..=MAX_FRAMES).contains(&frames) {
                return Err(ConfigError::MaxFramesOutOfRange(frames));
            }
        }
        let stacks = match self.max_stacks {
            Some(max) if !set_max_stacks(max) => Err(ConfigError::MaxStacksBelowKept {
                max,
                kept: crate::stack::STACKS.id_limit().saturating_sub(1) as usize,
            }),
            _ => Ok(()),
        };
        if let Some(max) = self.max_samples {
            set_max_samples(max);
        }
        if let Some(frames) = self.max_frames {
            crate::stack::capture::set_frame_limit(frames);
        }
        if let Some(walker) = self.unwinder {
            crate::stack::capture::force_unwinder(walker);
        }
        if let Some(rate) = self.rate {
            crate::sample::rate::set_rate(rate);
        }
        if let Some(dumps) = self.dumps {
            crate::config::dump::set(dumps);
        }
        stacks
    }

    /// The settings in effect now, and how each variable was read (what
    /// `/stats` shows under `config`).
    pub fn current() -> Settings {
        settings()
    }
}

/// Why [`Config::apply`] did not apply a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A depth outside 1 to [`MAX_FRAMES`].
    MaxFramesOutOfRange(usize),
    /// The cap asked for is below the stacks kept already: they stay, and
    /// new stacks go to `[stack table full]`.
    MaxStacksBelowKept {
        /// The cap asked for.
        max: usize,
        /// Stacks the table holds.
        kept: usize,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::MaxFramesOutOfRange(frames) => write!(
                f,
                "max_frames({frames}): a stack depth is from 1 to {MAX_FRAMES} frames"
            ),
            ConfigError::MaxStacksBelowKept { max, kept } => write!(
                f,
                "set_max_stacks({max}) is below the {kept} stacks kept already: they stay, \
                 and new stacks go to [stack table full] (MEMPROF_MAX_STACKS sets the cap \
                 before the first sample)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Caps how many live samples are kept (default 4,194,304, enough for exact
/// mode over a few million live blocks). Samples past the cap are dropped and
/// counted in [`crate::counters`]. The cap is kept without a shared
/// count (each shard of the table holds an allowance it asks for now and
/// then), so a thread inserting while an allowance is granted may pass it by
/// a sample or two. The table's memory grows with the samples and shrinks as
/// they are freed.
///
/// Takes effect whenever it is called (from the next grant of allowances),
/// and wins over `MEMPROF_MAX_SAMPLES`.
pub fn set_max_samples(max: usize) {
    crate::stack::limits::apply_env_once();
    crate::sample::LIVE.set_max_samples(max);
}

/// Caps how many distinct stacks are kept (default 4,194,304, or
/// `MEMPROF_MAX_STACKS`); stacks past the cap are counted under a
/// `[stack table full]` stack so totals stay right. The table's memory
/// follows the stacks it holds (about 320 bytes of counters and 8 bytes a
/// frame per stack), not the cap.
///
/// Takes effect whenever it is called, from the next new stack. Returns
/// `false`, and says so on stderr, when more stacks than `max` are kept
/// already: they stay, and new stacks go to `[stack table full]`.
pub fn set_max_stacks(max: usize) -> bool {
    crate::stack::limits::apply_env_once();
    let fits = crate::stack::STACKS.set_max_stacks(max);
    if !fits {
        let kept = crate::stack::STACKS.id_limit().saturating_sub(1) as usize;
        eprintln!("memprof: {}", ConfigError::MaxStacksBelowKept { max, kept });
    }
    fits
}

/// The settings in effect and how each variable was read, as `/stats`
/// shows them under `config`.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Settings {
    /// The global sampling rate in bytes (0: off, 1: every allocation).
    pub rate: u64,
    /// The walker forced by `MEMPROF_UNWIND` or code; `None` for the
    /// automatic choice.
    pub forced_unwinder: Option<Unwinder>,
    /// The deepest stack kept, in frames.
    pub max_frames: usize,
    /// The distinct-stack cap.
    pub max_stacks: usize,
    /// The live-sample cap.
    pub max_samples: usize,
    /// The flight recorder's settings (`dir` `None`: no dumps).
    pub dumps: DumpSettings,
    /// Each variable by name: how it was taken, its value (the first 64
    /// bytes, anything but printable ASCII as `?`; never a token's), and
    /// why it was refused.
    pub env: BTreeMap<&'static str, EnvReading>,
}

/// How one variable was read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EnvReading {
    /// Unread, unset, applied or invalid.
    pub state: EnvState,
    /// The value as read (the first 64 bytes, anything but printable ASCII
    /// as `?`); never a token's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why the value was refused, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// How `var` was read.
pub(crate) fn env_reading(var: env::Var) -> EnvReading {
    let record = env::reading(var);
    EnvReading {
        state: record.state,
        value: record
            .value()
            .map(|v| v.iter().copied().map(char::from).collect()),
        error: record.error,
    }
}

/// The settings in effect now. Reads the variables the allocator path
/// reads if no sample has yet, so that each shows how it was taken; the
/// endpoint's show `unread` until the endpoint is configured from the
/// environment.
pub(crate) fn settings() -> Settings {
    crate::stack::limits::apply_env_once();
    Settings {
        rate: crate::sample::rate::rate(),
        forced_unwinder: crate::stack::capture::forced_unwinder(),
        max_frames: crate::stack::frame_limit(),
        max_stacks: crate::stack::STACKS.max_stacks(),
        max_samples: crate::sample::LIVE.max_samples(),
        dumps: crate::config::dump::current(),
        env: env::Var::ALL
            .iter()
            .map(|&var| (var.name(), env_reading(var)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_depth_out_of_range_applies_nothing() {
        let before = Config::current().max_frames;
        for frames in [0, MAX_FRAMES + 1, usize::MAX] {
            let refused = Config::new().max_frames(frames).apply();
            assert_eq!(refused, Err(ConfigError::MaxFramesOutOfRange(frames)));
            assert!(refused.unwrap_err().to_string().contains("from 1 to 256"));
        }
        assert_eq!(Config::current().max_frames, before);
    }

    #[test]
    fn an_empty_config_changes_nothing() {
        let before = Config::current();
        assert_eq!(Config::new().apply(), Ok(()));
        let after = Config::current();
        assert_eq!(
            (before.max_frames, before.max_stacks, before.forced_unwinder),
            (after.max_frames, after.max_stacks, after.forced_unwinder)
        );
    }

    #[test]
    fn settings_report_every_variable_by_name() {
        let settings = Config::current();
        let names: Vec<&str> = settings.env.keys().copied().collect();
        let mut expected: Vec<&str> = env::Var::ALL.iter().map(|v| v.name()).collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
        // The allocator path's variables are read by the time they are
        // reported.
        for name in ["MEMPROF_RATE", "MEMPROF_UNWIND", "MEMPROF_MAX_FRAMES"] {
            assert_ne!(settings.env[name].state, EnvState::Unread, "{name}");
        }
    }

    #[test]
    fn the_stacks_below_kept_error_names_the_setter_the_count_and_the_variable() {
        let text = ConfigError::MaxStacksBelowKept { max: 7, kept: 9 }.to_string();
        assert!(text.contains("set_max_stacks(7)") && text.contains("below the 9 stacks"));
        assert!(text.contains("MEMPROF_MAX_STACKS"));
    }
}
