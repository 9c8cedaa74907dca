//! Memory by scope: each scope's allocated, freed, in-use and peak
//! figures (from the scope counters), with the uncertainty of its in-use
//! bytes and its survivors (from the live samples).
//!
//! A scope's figures include everything nested in it, as
//! [`crate::scopes`] counts them: `request` holds `request/parser`.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::scope_path::{ScopeFilter, ScopePath};
use super::snapshot::unix_ms;
use super::uncertainty::Uncertainty;
use crate::sample::{LiveSample, LIVE};
use crate::scope::ScopeStats;

/// One scope's figures (estimates; exact at rate 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScopeFigures {
    /// The scope's id (stable for the process).
    pub id: u32,
    /// The enclosing scope's id (0: at the top).
    pub parent: u32,
    /// Its path and names.
    pub scope: ScopePath,
    /// Times it was entered.
    pub entered: u64,
    /// Bytes allocated inside it.
    pub alloc_bytes: f64,
    /// Objects allocated inside it.
    pub alloc_objects: f64,
    /// Of those, bytes freed since (anywhere).
    pub freed_bytes: f64,
    /// Of those, objects freed since.
    pub freed_objects: f64,
    /// Bytes allocated inside it and still live.
    pub inuse_bytes: f64,
    /// Objects allocated inside it and still live.
    pub inuse_objects: f64,
    /// How far `inuse_bytes` may be from the truth, from the live samples.
    pub inuse_error: Uncertainty,
    /// Half the width of the 95% confidence interval of `inuse_bytes`
    /// (0 when exact), from `inuse_error`.
    pub inuse_bytes_margin_95: f64,
    /// The highest `inuse_bytes` seen.
    pub peak_bytes: f64,
    /// Estimated live bytes allocated inside it longer ago than the
    /// report's `min_age` (what `/leaks` calls old survivors).
    pub survivor_bytes: f64,
    /// Estimated live objects older than `min_age`.
    pub survivor_objects: f64,
}

/// Every scope's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScopeReport {
    /// When it was made, milliseconds since the Unix epoch.
    pub generated_at_unix_ms: u64,
    /// The global sampling rate (bytes; 1: exact).
    pub rate: u64,
    /// The age past which a live sample is a survivor, seconds.
    pub min_age_seconds: f64,
    /// The scopes, largest in-use bytes first.
    pub scopes: Vec<ScopeFigures>,
}

/// The figures of every scope entered so far that `filter` keeps (all
/// when `None`), survivors being live samples older than `min_age`.
pub fn scope_report(min_age: Duration, filter: Option<&ScopeFilter>) -> ScopeReport {
    crate::thread_state::unsampled(|| {
        let mut live: Vec<LiveSample> = Vec::new();
        LIVE.copy_into(&mut live);
        report(
            &crate::scope::scopes(),
            &live,
            crate::os::monotonic_nanos(),
            min_age,
            filter,
        )
    })
}

/// What the live samples say about one scope.
#[derive(Default)]
struct FromSamples {
    error: Uncertainty,
    survivor_bytes: f64,
    survivor_objects: f64,
}

fn report(
    scopes: &[ScopeStats],
    live: &[LiveSample],
    now_nanos: u64,
    min_age: Duration,
    filter: Option<&ScopeFilter>,
) -> ScopeReport {
    let parents: HashMap<u32, u32> = scopes.iter().map(|s| (s.id, s.parent)).collect();
    let min_age_nanos = u64::try_from(min_age.as_nanos()).unwrap_or(u64::MAX);
    let mut samples: HashMap<u32, FromSamples> = HashMap::new();
    for sample in live.iter().filter(|s| s.scope != 0) {
        let old = now_nanos.saturating_sub(sample.allocated_at_nanos) >= min_age_nanos;
        // The scope and every enclosing one (bounded, as scope paths are).
        let mut id = sample.scope;
        for _ in 0..64 {
            let entry = samples.entry(id).or_default();
            entry.error.add_sample(sample.size, sample.weight);
            if old {
                entry.survivor_bytes += sample.weight * sample.size as f64;
                entry.survivor_objects += sample.weight;
            }
            match parents.get(&id) {
                Some(&parent) if parent != 0 => id = parent,
                _ => break,
            }
        }
    }
    let mut figures: Vec<ScopeFigures> = scopes
        .iter()
        .filter_map(|s| {
            let scope = ScopePath::of_scope(s.id)?;
            if filter.is_some_and(|f| !f.matches(Some(&scope))) {
                return None;
            }
            let from_samples = samples.remove(&s.id).unwrap_or_default();
            Some(ScopeFigures {
                id: s.id,
                parent: s.parent,
                scope,
                entered: s.entered,
                alloc_bytes: s.alloc_bytes,
                alloc_objects: s.alloc_objects,
                freed_bytes: s.freed_bytes,
                freed_objects: s.freed_objects,
                inuse_bytes: s.net_bytes,
                inuse_objects: (s.alloc_objects - s.freed_objects).max(0.0),
                inuse_error: from_samples.error,
                inuse_bytes_margin_95: from_samples.error.margin_95(),
                peak_bytes: s.peak_bytes,
                survivor_bytes: from_samples.survivor_bytes,
                survivor_objects: from_samples.survivor_objects,
            })
        })
        .collect();
    figures.sort_by(|a, b| {
        b.inuse_bytes
            .total_cmp(&a.inuse_bytes)
            .then_with(|| a.scope.path().cmp(&b.scope.path()))
    });
    ScopeReport {
        generated_at_unix_ms: unix_ms(),
        rate: crate::sample::rate::rate(),
        min_age_seconds: min_age.as_secs_f64(),
        scopes: figures,
    }
}
