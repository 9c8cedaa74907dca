//! Leak candidates: stacks whose memory outlives its siblings and keeps
//! growing.
//!
//! Two signals, combined:
//!
//! * **Old survivors.** Live samples older than `min_age`, grouped by stack,
//!   with the stack's survival ratio (estimated objects still live / ever
//!   allocated). Request churn frees its blocks within moments and leaves no
//!   old survivors.
//! * **Growth.** A least-squares line through the stack's in-use bytes over
//!   the history window ("growing 60 MiB/min, r² 0.99"). A bounded pool holds
//!   old survivors too, but its in-use line is flat, so it is not listed.
//!   Without history, the survivors' own allocation times stand in: a leak
//!   leaves survivors spread evenly over time, a pool filled at start leaves
//!   them all at the start.
//!
//! A stack is a candidate when it has old survivors and grows; candidates
//! are ranked by growth rate, then by old-survivor bytes. Growth of the
//! process with a flat heap is reported separately: it points outside the
//! heap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::scope_path::ScopePath;
use super::snapshot::{symbolized_frames, unix_ms};
use super::trend::Trend;
use super::uncertainty::Uncertainty;
use super::usage::StackUsage;
use crate::human::format_bytes_signed;
use crate::sample::{LiveSample, LIVE};
use crate::stack::symbolize::Symbolizer;
use crate::stack::{Frame, Trim, STACKS};

/// What to look for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LeakOptions {
    /// Survivors younger than this are not suspects (default 10 s).
    pub min_age: Duration,
    /// The most candidates returned (default 20).
    pub limit: usize,
    /// Slower growth than this, in bytes per second, is not listed
    /// (default 1 KiB/min).
    pub min_growth_bytes_per_second: f64,
    /// The least fit quality (r²) for growth to count (default 0.6).
    pub min_r_squared: f64,
    /// The least growth over the fitted span, as a fraction of the stack's
    /// mean in-use bytes over it (default 0.1). Sampling noise makes a flat
    /// stack wobble by a few percent; a leak grows by far more.
    pub min_relative_growth: f64,
    /// How much of each stack's leaf end is left out (default: the
    /// allocation machinery, so a candidate leads with the program's code).
    pub trim: Trim,
}

impl Default for LeakOptions {
    fn default() -> Self {
        LeakOptions {
            min_age: Duration::from_secs(10),
            limit: 20,
            min_growth_bytes_per_second: 1024.0 / 60.0,
            min_r_squared: 0.6,
            min_relative_growth: 0.1,
            trim: Trim::default(),
        }
    }
}

impl LeakOptions {
    /// Sets `min_age`.
    pub fn min_age(mut self, min_age: Duration) -> Self {
        self.min_age = min_age;
        self
    }

    /// Sets `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Sets `trim`.
    pub fn trim(mut self, trim: Trim) -> Self {
        self.trim = trim;
        self
    }
}

/// Process-level memory at one moment, to tell heap growth from the rest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessPoint {
    /// When, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Resident set size of the process.
    pub rss_bytes: f64,
    /// Heap in use (allocator "allocated", or the profiler's estimate).
    pub heap_bytes: f64,
}

/// Where a candidate's growth figure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthSource {
    /// The stack's in-use bytes over the history window.
    History,
    /// The allocation times of its surviving samples (no history yet).
    Survivors,
}

/// One suspected leak.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeakCandidate {
    /// 1 for the most suspicious.
    pub rank: usize,
    /// Folded key, `root;...;leaf`.
    pub key: String,
    /// Where the stack enters the program's code: `function (file:line) <- caller <- caller`.
    pub site: String,
    /// Frames, leaf first.
    pub frames: Vec<Arc<Frame>>,
    /// The scope the stack allocated in (`null`: outside every scope).
    #[serde(default)]
    pub scope: Option<ScopePath>,
    /// Estimated bytes from this stack still live.
    pub inuse_bytes: f64,
    /// Estimated objects from this stack still live.
    pub inuse_objects: f64,
    /// Estimated live bytes older than `min_age`.
    pub old_bytes: f64,
    /// Estimated live objects older than `min_age`.
    pub old_objects: f64,
    /// Live objects / objects ever allocated from this stack.
    pub survival_ratio: f64,
    /// Age of the oldest live sample, seconds.
    pub oldest_age_seconds: f64,
    /// Median age of the live samples, seconds.
    pub median_age_seconds: f64,
    /// How far `inuse_bytes` may be from the truth (samples, variance).
    #[serde(default)]
    pub inuse_error: Uncertainty,
    /// Growth in bytes per second.
    pub growth_bytes_per_second: f64,
    /// Half the width of the growth's 95% confidence interval, bytes per
    /// second.
    #[serde(default)]
    pub growth_bytes_per_second_ci95: f64,
    /// Fit quality of the growth line.
    pub growth_r_squared: f64,
    /// Seconds of data the growth line covers.
    pub growth_span_seconds: f64,
    /// Which signal gave the growth figure.
    pub growth_source: GrowthSource,
    /// The evidence in one sentence.
    pub summary: String,
}

/// Growth of the process while the heap stays flat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutsideHeap {
    /// Process RSS growth, bytes per second.
    pub rss_bytes_per_second: f64,
    /// Heap growth over the same points, bytes per second.
    pub heap_bytes_per_second: f64,
    /// What it means.
    pub note: String,
}

/// The answer to "what is leaking?".
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeakReport {
    /// When it was made, milliseconds since the Unix epoch.
    pub generated_at_unix_ms: u64,
    /// The `min_age` used, seconds.
    pub min_age_seconds: f64,
    /// History points available for growth fits.
    pub history_points: usize,
    /// Live samples examined.
    pub live_samples: usize,
    /// Candidates, most suspicious first.
    pub candidates: Vec<LeakCandidate>,
    /// Set when the process grows and the heap does not.
    pub outside_heap: Option<OutsideHeap>,
}

/// Per raw stack id: what the live samples say.
#[derive(Default)]
struct Survivors {
    live_bytes: f64,
    live_objects: f64,
    old_bytes: f64,
    old_objects: f64,
    /// The innermost scope the samples were allocated in (0: none); one
    /// stack's samples share it, as the scope is the stack's root frame.
    scope: u32,
    error: Uncertainty,
    /// (allocation time in seconds before now, weighted bytes) of old survivors.
    old: Vec<(f64, f64)>,
    ages: Vec<f64>,
}

/// Finds leak candidates from the live samples, the per-stack history and
/// the process history (either may be empty).
pub fn find_leaks(
    options: &LeakOptions,
    history: &[StackUsage],
    process: &[ProcessPoint],
) -> LeakReport {
    crate::thread_state::unsampled(|| find(options, history, process))
}

fn find(options: &LeakOptions, history: &[StackUsage], process: &[ProcessPoint]) -> LeakReport {
    let mut live: Vec<LiveSample> = Vec::new();
    LIVE.copy_into(&mut live);
    let now = crate::os::monotonic_nanos();
    let min_age = options.min_age.as_secs_f64();

    let mut by_stack: HashMap<u32, Survivors> = HashMap::new();
    for s in &live {
        let age = now.saturating_sub(s.allocated_at_nanos) as f64 / 1e9;
        let bytes = s.weight * s.size as f64;
        let entry = by_stack.entry(s.stack).or_default();
        entry.live_bytes += bytes;
        entry.live_objects += s.weight;
        entry.scope = s.scope;
        entry.error.add_sample(s.size, s.weight);
        entry.ages.push(age);
        if age >= min_age {
            entry.old_bytes += bytes;
            entry.old_objects += s.weight;
            entry.old.push((age, bytes));
        }
    }

    let series = history_series(history);
    let mut merged: HashMap<String, LeakCandidate> = HashMap::new();
    let mut symbolizer = Symbolizer::lock();
    for (id, mut survivors) in by_stack {
        if survivors.old_objects <= 0.0 {
            continue;
        }
        let from_history = series.get(&id).and_then(|points| {
            let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
            Trend::fit(points).map(|t| (t, mean))
        });
        let growth = match from_history {
            Some((trend, mean)) => Some((trend, mean, GrowthSource::History)),
            None => survivor_trend(&survivors.old, min_age)
                .map(|t| (t, survivors.old_bytes / 2.0, GrowthSource::Survivors)),
        };
        let Some((trend, mean, source)) = growth else {
            continue;
        };
        let relative = trend.per_second * trend.span_seconds / mean.max(1.0);
        if !trend.is_growing(options.min_growth_bytes_per_second, options.min_r_squared)
            || relative < options.min_relative_growth
        {
            continue;
        }
        let Some(addresses) = STACKS.frames(id) else {
            continue;
        };
        let frames = symbolized_frames(&mut symbolizer, id, addresses, options.trim);
        let key = super::snapshot::folded_key_of(&frames);
        let alloc_objects = STACKS.counters(id).map_or(0.0, |c| c.alloc_objects);
        survivors.ages.sort_by(f64::total_cmp);
        let candidate = merged.entry(key.clone()).or_insert_with(|| LeakCandidate {
            rank: 0,
            key,
            site: super::snapshot::program_site(&frames),
            frames,
            scope: ScopePath::of_scope(survivors.scope),
            inuse_bytes: 0.0,
            inuse_objects: 0.0,
            old_bytes: 0.0,
            old_objects: 0.0,
            survival_ratio: 0.0,
            oldest_age_seconds: 0.0,
            median_age_seconds: 0.0,
            inuse_error: Uncertainty::default(),
            growth_bytes_per_second: 0.0,
            growth_bytes_per_second_ci95: 0.0,
            growth_r_squared: trend.r_squared,
            growth_span_seconds: trend.span_seconds,
            growth_source: source,
            summary: String::new(),
        });
        candidate.inuse_bytes += survivors.live_bytes;
        candidate.inuse_objects += survivors.live_objects;
        candidate.old_bytes += survivors.old_bytes;
        candidate.old_objects += survivors.old_objects;
        // Stored as "ever allocated" until the ratio is computed below.
        candidate.survival_ratio += alloc_objects;
        candidate.oldest_age_seconds = candidate
            .oldest_age_seconds
            .max(survivors.ages.last().copied().unwrap_or(0.0));
        candidate.median_age_seconds = candidate.median_age_seconds.max(
            survivors
                .ages
                .get(survivors.ages.len() / 2)
                .copied()
                .unwrap_or(0.0),
        );
        candidate.inuse_error += survivors.error;
        candidate.growth_bytes_per_second += trend.per_second;
        // Independent fits: their intervals add in quadrature.
        candidate.growth_bytes_per_second_ci95 = candidate
            .growth_bytes_per_second_ci95
            .hypot(trend.per_second_ci95);
        candidate.growth_r_squared = candidate.growth_r_squared.min(trend.r_squared);
    }
    drop(symbolizer);

    let mut candidates: Vec<LeakCandidate> = merged.into_values().collect();
    for c in &mut candidates {
        c.survival_ratio = if c.survival_ratio > 0.0 {
            (c.inuse_objects / c.survival_ratio).min(1.0)
        } else {
            0.0
        };
        c.summary = format!(
            "growing {}/min ± {} (95%; r² {:.2} over {:.0} s, from {}); {} in use ({}); {} in {:.0} objects older than {:.0} s; {:.0}% of its allocations survive",
            format_bytes_signed(c.growth_bytes_per_second * 60.0),
            format_bytes_signed(c.growth_bytes_per_second_ci95 * 60.0),
            c.growth_r_squared,
            c.growth_span_seconds,
            match c.growth_source {
                GrowthSource::History => "history",
                GrowthSource::Survivors => "survivor ages",
            },
            format_bytes_signed(c.inuse_bytes),
            c.inuse_error.describe(),
            format_bytes_signed(c.old_bytes),
            c.old_objects,
            min_age,
            100.0 * c.survival_ratio,
        );
    }
    candidates.sort_by(|a, b| {
        b.growth_bytes_per_second
            .total_cmp(&a.growth_bytes_per_second)
            .then(b.old_bytes.total_cmp(&a.old_bytes))
    });
    candidates.truncate(options.limit);
    for (i, c) in candidates.iter_mut().enumerate() {
        c.rank = i + 1;
    }

    LeakReport {
        generated_at_unix_ms: unix_ms(),
        min_age_seconds: min_age,
        history_points: history.len(),
        live_samples: live.len(),
        candidates,
        outside_heap: outside_heap(process),
    }
}

/// Per stack id, `(seconds, in-use bytes)` points from the history.
fn history_series(history: &[StackUsage]) -> HashMap<u32, Vec<(f64, f64)>> {
    let mut series: HashMap<u32, Vec<(f64, f64)>> = HashMap::new();
    let Some(first) = history.first() else {
        return series;
    };
    for point in history {
        let t = point.unix_ms.saturating_sub(first.unix_ms) as f64 / 1e3;
        for &(id, bytes) in &point.stacks {
            series.entry(id).or_default().push((t, bytes));
        }
    }
    series
}

/// Growth implied by when the old survivors were allocated.
///
/// A stack that leaks at a steady rate leaves, in every stretch of time,
/// survivors worth the rate times the stretch; their cumulative bytes
/// against allocation time is a line with that slope. A pool filled at
/// start leaves them all at one moment (no spread in time: no trend), and
/// blocks allocated in the first tenth of the window are left out so a
/// startup burst does not pass for growth.
fn survivor_trend(old: &[(f64, f64)], min_age: f64) -> Option<Trend> {
    let oldest = old.iter().map(|s| s.0).fold(0.0, f64::max);
    let window = oldest - min_age;
    if window <= 0.0 {
        return None;
    }
    // Seconds since the oldest survivor, and bytes, in allocation order.
    let mut points: Vec<(f64, f64)> = old
        .iter()
        .map(|&(age, bytes)| (oldest - age, bytes))
        .filter(|&(t, _)| t > window * 0.1)
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut cumulative = 0.0;
    let mut line: Vec<(f64, f64)> = Vec::with_capacity(points.len() + 1);
    for (t, bytes) in points {
        cumulative += bytes;
        line.push((t, cumulative));
    }
    let mut trend = Trend::fit(&line)?;
    // The survivors must cover most of the window, not one burst within it.
    if trend.span_seconds < 0.5 * window {
        trend.per_second = 0.0;
    }
    Some(trend)
}

fn outside_heap(process: &[ProcessPoint]) -> Option<OutsideHeap> {
    let first = process.first()?;
    let t = |p: &ProcessPoint| p.unix_ms.saturating_sub(first.unix_ms) as f64 / 1e3;
    let rss = Trend::fit(
        &process
            .iter()
            .map(|p| (t(p), p.rss_bytes))
            .collect::<Vec<_>>(),
    )?;
    let heap = Trend::fit(
        &process
            .iter()
            .map(|p| (t(p), p.heap_bytes))
            .collect::<Vec<_>>(),
    )?;
    let one_mib_per_minute = 1024.0 * 1024.0 / 60.0;
    if rss.is_growing(one_mib_per_minute, 0.7) && heap.per_second < 0.2 * rss.per_second {
        Some(OutsideHeap {
            rss_bytes_per_second: rss.per_second,
            heap_bytes_per_second: heap.per_second,
            note: format!(
                "the process grows {}/min while the heap grows {}/min: look outside the heap \
                 (mmap, thread stacks, another allocator, allocator fragmentation; see /allocator and /doctor)",
                format_bytes_signed(rss.per_second * 60.0),
                format_bytes_signed(heap.per_second * 60.0),
            ),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survivors_spread_over_time_are_growth_a_burst_is_not() {
        // A leak: one 1 KiB survivor every second for 60 s, min_age 10 s.
        let leak: Vec<(f64, f64)> = (10..70).map(|age| (age as f64, 1024.0)).collect();
        let t = survivor_trend(&leak, 10.0).unwrap();
        assert!((t.per_second - 1024.0).abs() < 50.0, "{t:?}");
        // A pool filled at start: every survivor 60 s old.
        let pool: Vec<(f64, f64)> = (0..100)
            .map(|i| (60.0 + i as f64 * 0.001, 1024.0))
            .collect();
        assert!(survivor_trend(&pool, 10.0).is_none_or(|t| t.per_second == 0.0));
    }

    #[test]
    fn process_growth_with_flat_heap_points_outside() {
        let points: Vec<ProcessPoint> = (0..10)
            .map(|i| ProcessPoint {
                unix_ms: i * 5_000,
                rss_bytes: 100e6 + i as f64 * 10e6,
                heap_bytes: 50e6,
            })
            .collect();
        let note = outside_heap(&points).expect("flagged");
        assert!(note.note.contains("outside the heap"));
        let both: Vec<ProcessPoint> = points
            .iter()
            .map(|p| ProcessPoint {
                heap_bytes: p.rss_bytes - 50e6,
                ..*p
            })
            .collect();
        assert!(
            outside_heap(&both).is_none(),
            "the heap explains the growth"
        );
    }

    #[test]
    fn the_note_writes_amounts_as_everywhere_else() {
        let points: Vec<ProcessPoint> = (0..10)
            .map(|i| ProcessPoint {
                unix_ms: i * 60_000,
                rss_bytes: 100e6 + i as f64 * 3.0 * 1024.0 * 1024.0,
                heap_bytes: 50e6,
            })
            .collect();
        let note = outside_heap(&points).expect("flagged").note;
        assert!(
            note.starts_with("the process grows 3.00 MiB/min while the heap grows 0 B/min"),
            "{note}"
        );
    }
}
