//! The tests `#[memprof::test]` expands to, their failure messages, and the
//! flamegraphs they leave in `target/memprof/`.

use std::io;
use std::path::PathBuf;

use super::retained::Retained;
use super::scope_filter::{Entries, ScopeFilter};
use super::{soak_in, track_in};
use crate::human::format_bytes;
use crate::thread_state::context::MAX_MEMBERS;

/// Where tests write their flamegraphs: `$CARGO_TARGET_DIR/memprof`, else
/// the `target/memprof` that holds the running test binary.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("memprof");
    }
    // A test binary lives at <target>/<profile>/deps/<name>-<hash>.
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|target| target.join("memprof")))
        .unwrap_or_else(|| PathBuf::from("target").join("memprof"))
}

/// Writes `<dir>/<name>.folded` and (with the `export` feature)
/// `<dir>/<name>.svg`, a flamegraph of what was retained (only in its scope
/// when [`Retained::scope`] limits it). Returns the paths.
///
/// # Errors
///
/// Returns the error of creating the artifacts directory or writing either
/// file, naming neither (the caller knows `name`).
pub fn write_report(retained: &Retained, name: &str) -> io::Result<Vec<PathBuf>> {
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir)?;
    let file_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    let mut folded = Vec::new();
    retained.write_folded(&mut folded)?;
    let folded_path = dir.join(format!("{file_name}.folded"));
    std::fs::write(&folded_path, &folded)?;
    #[allow(unused_mut)]
    let mut paths = vec![folded_path];
    #[cfg(feature = "export")]
    {
        let mut options =
            crate::export::flamegraph::FlamegraphOptions::for_kind(crate::Kind::InuseSpace);
        options.title = format!("memprof: retained by {name}{}", retained.in_scope());
        let svg_path = dir.join(format!("{file_name}.svg"));
        let file = std::fs::File::create(&svg_path)?;
        crate::export::flamegraph::write_folded_flamegraph(
            &folded,
            &options,
            io::BufWriter::new(file),
        )?;
        paths.insert(0, svg_path);
    }
    Ok(paths)
}

/// `up 1.0 KiB` or `down 1.0 KiB`.
fn signed_bytes(bytes: i64) -> String {
    let direction = if bytes < 0 { "down" } else { "up" };
    format!("{direction} {}", format_bytes(bytes.unsigned_abs()))
}

fn report_paths(retained: &Retained, name: &str) -> String {
    match write_report(retained, name) {
        Ok(paths) => paths
            .iter()
            .map(|p| format!("\n  wrote {}", p.display()))
            .collect(),
        Err(e) => format!("\n  (could not write the flamegraph: {e})"),
    }
}

/// A current-thread tokio runtime with I/O and time, for an `async fn`
/// under `#[memprof::test]` without `#[tokio::test]`.
#[doc(hidden)]
#[cfg(feature = "http")]
pub fn __current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("memprof: building a tokio runtime for the test")
}

/// Builds a runtime and runs an empty future on this thread, untracked,
/// before a test whose body `#[tokio::test]` already wrapped: what tokio
/// keeps per thread for any later runtime is then not charged to the test.
/// Without the `http` feature (no tokio here) it does nothing.
#[doc(hidden)]
pub fn __prime_tokio() {
    #[cfg(feature = "http")]
    __current_thread_runtime().block_on(async {});
}

/// The scope filter a test named `name` asked for: `None` for the whole
/// body; a malformed path fails the test.
fn scope_filter(name: &str, scope: Option<&str>) -> Option<(ScopeFilter, Entries)> {
    let filter = scope.map(|path| {
        ScopeFilter::new(path).unwrap_or_else(|error| panic!("memprof: {name}: {error}"))
    })?;
    Some((filter, Entries::now()))
}

/// Fails the test named `name` when its scope was never entered (its
/// verdict would say nothing), else notes how often it was in `retained`.
fn require_entered(name: &str, scope: Option<(ScopeFilter, Entries)>, retained: &mut Retained) {
    if let Some((filter, entries)) = scope {
        if let Err(error) = entries.note_entered(&filter, retained) {
            panic!("memprof: {name}: {error}");
        }
    }
}

/// The leak test behind `#[memprof::test]`: `setup` (a runtime for an
/// `async fn`, else nothing) is made and dropped inside the tracked body,
/// so its threads and what they leave count. `prime` runs first, untracked:
/// for an `async fn` it builds a runtime and runs an empty future on it,
/// so what the thread keeps for any later runtime (tokio's thread-local
/// parker) is not charged to the test. With `scope`, only the blocks in
/// that scope count (see [`track_scope`](super::track_scope)).
#[doc(hidden)]
pub fn __run_leak_test<S>(
    name: &str,
    max_leak_bytes: u64,
    scope: Option<&str>,
    prime: impl FnOnce(),
    setup: impl FnOnce() -> S,
    body: impl FnOnce(&S),
) {
    prime();
    let scope = scope_filter(name, scope);
    let ((), mut retained) = track_in(scope.as_ref().map(|(filter, _)| filter), || {
        let setting = setup();
        body(&setting);
        drop(setting);
    });
    require_entered(name, scope, &mut retained);
    if retained.threads_not_followed > 0 {
        panic!(
            "memprof: {name} started more threads than memprof can follow ({MAX_MEMBERS}): {} were not followed, \
             so what it leaves live is not known; {} counted so far{}:{}{}",
            retained.threads_not_followed,
            format_bytes(retained.bytes),
            retained.in_scope(),
            retained.describe(5),
            report_paths(&retained, name),
        );
    }
    if retained.bytes > max_leak_bytes {
        panic!(
            "memprof: {name} leaked {} in {} blocks{} (limit {}) {}; still live at the end of the test:{}{}{}",
            format_bytes(retained.bytes),
            retained.blocks,
            retained.in_scope(),
            format_bytes(max_leak_bytes),
            retained.threads_counted(),
            retained.describe(5),
            retained.outside("still live at the end"),
            report_paths(&retained, name),
        );
    }
}

/// The soak test behind `#[memprof::test]`: one `setup` (a runtime for an
/// `async fn`) serves every iteration; `prime` and `scope` as for
/// [`__run_leak_test`].
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn __run_soak_test<S>(
    name: &str,
    iterations: u64,
    warmup: u64,
    max_growth_per_iter: u64,
    scope: Option<&str>,
    prime: impl FnOnce(),
    setup: impl FnOnce() -> S,
    body: impl FnMut(&S),
) {
    prime();
    let scope = scope_filter(name, scope);
    let mut report = soak_in(
        iterations,
        warmup,
        scope.as_ref().map(|(filter, _)| filter),
        setup,
        body,
    );
    require_entered(name, scope, &mut report.growth);
    let growth = &report.growth;
    if growth.threads_not_followed > 0 {
        panic!(
            "memprof: {name} started more threads than memprof can follow ({MAX_MEMBERS}): {} were not followed, \
             so how much it retains is not known{}",
            growth.threads_not_followed,
            report_paths(growth, name),
        );
    }
    if report.growth_per_iteration > max_growth_per_iter as f64 {
        panic!(
            "memprof: {name} retains {:.1} B more per iteration{} (limit {max_growth_per_iter} B; r² {:.2} over {} iterations after {} warmup, {}); \
             its live bytes{} went {} from the end of warmup; where they grew:{}{}{}",
            report.growth_per_iteration,
            growth.in_scope(),
            report.r_squared,
            report.iterations,
            report.warmup,
            growth.threads_counted(),
            growth.scope.as_ref().map_or("", |_| " in the scope"),
            signed_bytes(report.checkpoints.last().map_or(0, |&(_, net)| net)),
            growth.describe(5),
            growth.outside("grown since the end of warmup"),
            report_paths(growth, name),
        );
    }
}
