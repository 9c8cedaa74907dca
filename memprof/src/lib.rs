//! memprof: a sampling heap profiler and leak finder that a Rust service can
//! leave switched on in production.
//!
//! Set it as the global allocator; it wraps jemalloc by default:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
//!
//! fn main() {
//!     let data: Vec<u8> = vec![0; 1 << 20];
//!     let snapshot = memprof::snapshot();
//!     for stack in snapshot.top(5, memprof::Kind::InuseSpace) {
//!         println!("{} bytes at {}", stack.estimates.inuse_bytes, stack.folded_key());
//!     }
//!     drop(data);
//! }
//! ```
//!
//! Allocations are sampled as a Poisson process on bytes (one sample per
//! 512 KiB on average, as Go and jemalloc do), each with its stack, and every
//! figure memprof reports is an unbiased estimate; `set_rate(1)` records every
//! allocation exactly.
//!
//! # What is where
//!
//! * At the root: the allocator ([`MemProf`]); the profile now
//!   ([`snapshot`], [`Snapshot`], [`Kind`], [`StackProfile`],
//!   [`Estimates`]) and the sampler's own figures ([`counters`]); settings
//!   ([`Config`], [`set_rate`], [`set_thread_rate`], [`set_max_stacks`],
//!   [`set_max_samples`], [`Settings`]); scopes ([`scope()`],
//!   `#[memprof::scope]`, [`enter_scope`], [`scopes`]; by a name made at
//!   run time, [`enter_scope_named`], and labels `key=value` with a cap on
//!   each key's values, [`enter_label`]; the registry's own figures,
//!   [`registry_stats`]) and scopes that
//!   follow a future ([`instrument`], [`InScope`]); the endpoint
//!   ([`serve`] and `router`, feature `http`); `#[memprof::test]`.
//! * [`profile`]: diffs, leak candidates, growth trends, per-stack usage.
//! * [`export`]: folded stacks, SVG flamegraphs, pprof, Prometheus text and
//!   the `/stats` body.
//! * [`testing`]: [`testing::track`] and [`testing::soak`], behind
//!   `#[memprof::test]`.
//! * [`host`], [`doctor`], [`history`] (and `jemalloc`, feature
//!   `jemalloc`): the process, machine and cgroup readings, findings over
//!   them, and their history.
//! * `http` (feature `http`): the endpoint's settings
//!   (`http::EndpointConfig`), errors and handle.
//! * `tower` (feature `tower`): a layer giving each HTTP route its scope.
//! * [`config`]: every `MEMPROF_*` variable and each setting's default and
//!   bounds.
//! * `dump` (feature `export`): the flight recorder, dumps of the profile
//!   and the readings around it to `MEMPROF_DUMP_DIR` that outlive an OOM
//!   kill, and the previous run's.
//!
//! # Environment
//!
//! Every variable memprof reads (the [`config`] module reads them all):
//!
//! | variable | default | accepts | a bad value |
//! | --- | --- | --- | --- |
//! | `MEMPROF_RATE` | `524288` (512 KiB) | mean bytes between samples, with or without a unit (`524288`, `512KiB`, `1 MiB`; KB, MB, GB are powers of 1000, KiB, MiB, GiB of 1024), up to 9223372036854775807; `0` turns sampling off, `1` samples every allocation | keeps the default |
//! | `MEMPROF_UNWIND` | `auto` | the stack walker: `auto` (the first samples verify frame pointers, then framehop, against a full unwind; the cheapest that agrees is kept), `fp` or `frame_pointers`, `framehop` (x86_64 Linux; elsewhere `dwarf`), `dwarf` (the `backtrace` crate) | keeps `auto` |
//! | `MEMPROF_MAX_FRAMES` | `64` | the deepest stack kept, a whole number from 1 to 256; a deeper stack keeps its leaf-most frames and ends in a `[truncated]` root frame | keeps the default |
//! | `MEMPROF_MAX_STACKS` | `4194304` | the distinct-stack cap, a whole number from 1 up (see [`set_max_stacks`]) | keeps the default |
//! | `MEMPROF_MAX_SAMPLES` | `4194304` | the live-sample cap, a whole number from 1 up (see [`set_max_samples`]) | keeps the default |
//! | `MEMPROF_ADDR` | unset or blank: no endpoint | `host:port` to serve on, for `http::serve_from_env()` (feature `http`) | no endpoint: `serve_from_env()` returns `ServeError::InvalidAddress` |
//! | `MEMPROF_TOKEN` | unset: no token (so loopback only) | the bearer token requests must carry: printable ASCII, no whitespace at either end; read by `http::EndpointConfig::from_env()`, `serve()` and `router()` | `serve()` refuses to start and a router answers every request 401: a bad token never means no token |
//! | `MEMPROF_DUMP_DIR` | unset: no dumps | the flight recorder's directory (created if missing); `memprof::serve`/`router()` start the dump watcher when it is set, `memprof::dump::start()` from code | — (any path is taken; one that cannot be created or written is an `error` line in `/stats` and `/dumps`) |
//! | `MEMPROF_DUMP_PEAK_MARGIN` | `10%` | how far a reading must pass the previous high for a `peak` dump: a percentage from 0 to 1000 (`10%` or `10`) | keeps the default |
//! | `MEMPROF_DUMP_PEAK_FLOOR` | `64MiB` | the smallest step over the previous high for a `peak` dump (a size, with or without a unit) | keeps the default |
//! | `MEMPROF_DUMP_MIN_INTERVAL` | `60` | the shortest time between two `peak` dumps, whole seconds (`60` or `60s`) | keeps the default |
//! | `MEMPROF_DUMP_LIMIT_THRESHOLDS` | `80,90,95` | shares of the memory limit (the cgroup's, else the host's memory) at which a `limit` dump is written, once per climb: up to 8 percentages from 1 to 100, comma-separated | keeps the default |
//! | `MEMPROF_DUMP_KEEP` | `20` | the most dumps kept in the directory (oldest removed first), a whole number from 1 up | keeps the default |
//! | `MEMPROF_DUMP_MAX_BYTES` | `256MiB` | the most bytes the dumps take together (a size) | keeps the default |
//! | `MEMPROF_DUMP_ON_EXIT` | `0` | `1`/`yes`/`true`/`on`: write an `exit` dump when the process exits normally (an `atexit` hook) | keeps the default |
//! | `MEMPROF_DUMP_SIGNAL` | unset: none | `SIGUSR1` or `SIGUSR2` (also `USR2`): a dump when the process receives it (the handler only sets a flag; the watcher writes within a second) | no signal is handled |
//!
//! A bad value is said once on stderr, with the value echoed (its first 64
//! bytes, anything but printable ASCII as `?`; a token's value never) and
//! what was wrong, and shows in `/stats` under `config.env`, e.g.
//! `"MEMPROF_MAX_FRAMES": {"state": "invalid", "value": "300", "error":
//! "not from 1 to 256 frames"}`; it never fails the program. `/stats` also
//! shows each variable's state when it was `unset` or `applied` (or is
//! still `unread`), and the settings in effect.
//!
//! The first five are read at the first sample, which may come before
//! `main` (with `MEMPROF_RATE=1`, or under a program's static initialisers):
//! inside the global allocator, with libc's `getenv` on C strings, so
//! reading them allocates nothing and takes no lock (std's `env::var`
//! allocates and takes the environment's lock). `MEMPROF_ADDR` and
//! `MEMPROF_TOKEN` are read when the endpoint is configured from the
//! environment, each time it is; the `MEMPROF_DUMP_*` ones once, when the
//! dump settings are first needed (the endpoint, `/stats`, the watcher). Settings made in code ([`Config`], or
//! [`set_rate`], [`set_max_stacks`], [`set_max_samples`]) win over the
//! environment.
//!
//! # Configuration in code
//!
//! ```
//! // Sample one allocation per 64 KiB on average instead of 512 KiB, and
//! // keep stacks up to 128 frames deep.
//! memprof::Config::new()
//!     .rate(64 * 1024)
//!     .max_frames(128)
//!     .apply()
//!     .expect("settings in range");
//! assert_eq!(memprof::rate(), 64 * 1024);
//! // One setting alone has its own function too.
//! memprof::set_rate(64 * 1024);
//! // Record every allocation of this thread, exactly (tests do this).
//! let previous = memprof::set_thread_rate(Some(1));
//! memprof::set_thread_rate(previous);
//! memprof::set_rate(memprof::DEFAULT_RATE);
//! ```
//!
//! # Feature flags
//!
//! * `jemalloc` (default): `MemProf::jemalloc()` and jemalloc statistics.
//! * `http` (default): the embedded endpoint, [`serve`] and
//!   `http::router()`; turns on `export`.
//! * `export`: SVG flamegraphs (inferno), gzipped pprof, and reading pprof
//!   and folded files back; folded stacks and Prometheus text need no
//!   feature.
//! * `tracing`: `memprof::tracing::MemprofLayer`, a
//!   `tracing_subscriber::Layer` that makes chosen spans scopes (the path
//!   from the span tree, chosen fields as capped labels), so allocations
//!   follow `Instrument`ed futures across threads. Adds `tracing-core` and
//!   `tracing-subscriber` (its `std` feature only).
//! * `tower`: `tower::RouteScopeLayer`, memory by HTTP route (a scope
//!   per axum route, `route=GET /users/{id}`); needs no runtime.
//! * `cli`: the `memprof` command-line tool (`host`, `oom`, `top`, `watch`,
//!   `doctor` for any process; `dumps`, `report`, `flamegraph`, `diff` over
//!   profiles and dump directories); turns on `export`, and brings clap.

#![deny(missing_docs)]
#![warn(unreachable_pub, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod alloc;
mod allocator_reading;
pub mod config;
pub mod doctor;
#[cfg(feature = "export")]
pub mod dump;
pub mod export;
mod fixed;
mod fork;
mod hash;
pub mod history;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
mod human;
#[cfg(feature = "jemalloc")]
pub mod jemalloc;
mod os;
pub mod profile;
mod sample;
mod scope;
mod settings;
mod stack;
mod stripe;
mod sync;
pub mod testing;
mod thread_state;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;

pub use crate::alloc::{DefaultAllocator, MemProf};
pub use crate::config::{Unwinder, DEFAULT_RATE};
pub use crate::history::peak;
#[cfg(feature = "http")]
pub use crate::http::{router, serve};
pub use crate::profile::{counters, snapshot, Estimates, Kind, Snapshot, StackProfile};
pub use crate::sample::rate::{rate, set_rate};
pub use crate::sample::{is_active, SamplerCounters};
pub use crate::scope::{
    enter_label, enter_scope, enter_scope_named, instrument, registry_stats, scope, scope_named,
    scopes, InScope, LabelKeyStats, ScopeGuard, ScopeRegistryStats, ScopeStats, ScopedFuture,
    DEFAULT_LABEL_CAP, OTHER_LABEL_VALUE,
};
pub use crate::settings::{
    set_max_samples, set_max_stacks, Config, ConfigError, EnvReading, Settings,
};
pub use crate::stack::unwinder;
pub use crate::thread_state::{set_thread_rate, unsampled};
pub use memprof_macros::{scope, test};

/// The sampler's own parts, for memprof's tests, benches and `memprof-dev`,
/// which drive stack capture and the live-sample table directly. Not part
/// of the API: anything here may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::sample::{live_samples, LiveSample, SAMPLED_BLOCK_ALIGN};
    pub use crate::scope::scope_path;
    pub use crate::stack::capture::{capture_with, framehop_counters, FramehopCounters};
    pub use crate::stack::symbolize::{cache_bytes, resolve};
}
