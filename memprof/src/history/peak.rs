//! The heap at its peak: the profile of the highest heap estimate the
//! history sampler has seen, for the question an OOM kill asks ("what was
//! live when memory was highest?") after the heap has fallen again.
//!
//! The sampler already reads the heap estimate at every tick; when that
//! reading passes the kept peak by the [`PeakRule`]'s step, the same tick
//! takes a full snapshot ([`crate::profile::snapshot`]) and it replaces the
//! kept one. Nothing happens on the allocation path. One snapshot is kept,
//! so the memory is one profile's (a few hundred bytes per stack, see the
//! README), replaced, never accumulated.

use std::sync::Arc;

use crate::profile::Snapshot;

/// The default share of the kept peak a new high must pass it by.
pub const PEAK_MARGIN: f64 = 0.10;
/// The default smallest step, in bytes, a new high must pass the kept peak
/// by: 8 MiB.
pub const PEAK_FLOOR_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

/// When a new high is worth a new peak snapshot.
///
/// A reading replaces the kept peak when it passes it by
/// `max(margin × kept, floor)`; with no peak kept yet, the first reading
/// above zero is taken. The margin (10%) bounds the re-takes of a steadily
/// growing heap to about seven per doubling, so a service growing to its
/// OOM pays for a handful of snapshots, each a symbolization of the live
/// stacks; a peak 10% short of the truth holds the same stacks in nearly
/// the same shares. The floor (8 MiB) stops start-up, where the heap grows
/// from nothing in small steps and 10% of it is a few kilobytes, from
/// re-taking at nearly every tick: below 80 MiB the kept peak is at most
/// 8 MiB short, and reaching 80 MiB costs at most ten snapshots. The
/// highest reading itself is kept exactly beside it
/// ([`Peak::highest_heap_bytes`]), so how far the profile is from the true
/// high is always shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakRule {
    /// Share of the kept peak a new high must pass it by.
    pub margin: f64,
    /// Smallest step in bytes a new high must pass the kept peak by.
    pub floor_bytes: f64,
}

impl Default for PeakRule {
    fn default() -> PeakRule {
        PeakRule {
            margin: PEAK_MARGIN,
            floor_bytes: PEAK_FLOOR_BYTES,
        }
    }
}

impl PeakRule {
    /// Whether a heap reading of `now` bytes should replace a kept peak of
    /// `kept` bytes (`None`: none kept yet).
    pub fn should_take(&self, kept: Option<f64>, now: f64) -> bool {
        match kept {
            None => now > 0.0,
            Some(kept) => now > kept + (kept * self.margin).max(self.floor_bytes),
        }
    }
}

/// The kept profile of the heap at its peak.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Peak {
    /// The profile taken at the peak.
    pub snapshot: Arc<Snapshot>,
    /// When it was taken, milliseconds since the Unix epoch (the
    /// snapshot's own time).
    pub taken_at_unix_ms: u64,
    /// The heap estimate of the profile: its in-use bytes.
    pub heap_bytes: f64,
    /// The highest heap estimate any tick read, at or above `heap_bytes`
    /// (within the rule's step of it).
    pub highest_heap_bytes: f64,
}

impl Peak {
    /// A peak from a snapshot just taken.
    pub(super) fn of(snapshot: Snapshot) -> Peak {
        Peak {
            taken_at_unix_ms: snapshot.taken_at_unix_ms,
            heap_bytes: snapshot.totals.inuse_bytes,
            highest_heap_bytes: snapshot.totals.inuse_bytes,
            snapshot: Arc::new(snapshot),
        }
    }
}

/// What the sampler keeps between ticks: the peak profile and the highest
/// reading.
#[derive(Debug, Default)]
pub(super) struct Kept {
    peak: Option<Peak>,
    highest_heap_bytes: f64,
}

impl Kept {
    /// The kept profile's heap, for the rule.
    pub(super) fn heap_bytes(&self) -> Option<f64> {
        self.peak.as_ref().map(|p| p.heap_bytes)
    }

    /// Notes a tick's reading and, if one was taken for it, a new peak.
    pub(super) fn update(&mut self, reading: f64, taken: Option<Peak>) {
        if let Some(peak) = taken {
            self.highest_heap_bytes = self.highest_heap_bytes.max(peak.heap_bytes);
            self.peak = Some(peak);
        }
        self.highest_heap_bytes = self.highest_heap_bytes.max(reading);
    }

    /// The kept peak with the highest reading so far.
    pub(super) fn get(&self) -> Option<Peak> {
        let mut peak = self.peak.clone()?;
        peak.highest_heap_bytes = self.highest_heap_bytes.max(peak.heap_bytes);
        Some(peak)
    }
}

/// Takes the peak snapshot if `reading` passes `kept` by the rule's step.
/// Runs on the sampler's thread, off the allocation path.
pub(super) fn take_if_higher(rule: &PeakRule, kept: Option<f64>, reading: f64) -> Option<Peak> {
    rule.should_take(kept, reading)
        .then(|| Peak::of(crate::profile::snapshot()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn first_reading_is_taken() {
        let rule = PeakRule::default();
        assert!(rule.should_take(None, 1.0));
        assert!(!rule.should_take(None, 0.0));
    }

    #[test]
    fn the_floor_rules_small_heaps() {
        let rule = PeakRule::default();
        // 10% of 2 MiB is 0.2 MiB; the floor asks for 8 MiB more.
        assert!(!rule.should_take(Some(2.0 * MIB), 2.5 * MIB));
        assert!(!rule.should_take(Some(2.0 * MIB), 10.0 * MIB));
        assert!(rule.should_take(Some(2.0 * MIB), 10.0 * MIB + 1.0));
    }

    #[test]
    fn the_margin_rules_large_heaps() {
        let rule = PeakRule::default();
        // 10% of 1 GiB (102.4 MiB) is above the floor.
        let kept = 1024.0 * MIB;
        assert!(!rule.should_take(Some(kept), kept + 100.0 * MIB));
        assert!(!rule.should_take(Some(kept), kept * 1.1));
        assert!(rule.should_take(Some(kept), kept * 1.1 + 1.0));
        // The two meet at 80 MiB.
        let kept = 80.0 * MIB;
        assert!(!rule.should_take(Some(kept), 88.0 * MIB));
        assert!(rule.should_take(Some(kept), 88.0 * MIB + 1.0));
    }

    #[test]
    fn lower_readings_never_replace() {
        let rule = PeakRule::default();
        assert!(!rule.should_take(Some(64.0 * MIB), 1.0 * MIB));
        assert!(!rule.should_take(Some(64.0 * MIB), 64.0 * MIB));
    }

    #[test]
    fn growth_to_a_gibibyte_takes_a_bounded_number() {
        let rule = PeakRule::default();
        let mut kept = None;
        let mut taken = 0;
        // A heap growing 64 KiB per tick from 0 to 1 GiB.
        let mut heap = 0.0;
        while heap < 1024.0 * MIB {
            heap += 64.0 * 1024.0;
            if rule.should_take(kept, heap) {
                kept = Some(heap);
                taken += 1;
            }
        }
        // 1 first, 10 floor steps to 80 MiB, ln(12.8)/ln(1.1) ≈ 27 after.
        assert!((30..=40).contains(&taken), "{taken}");
    }

    #[test]
    fn highest_reading_is_kept_beside_the_profile() {
        let mut kept = Kept::default();
        assert!(kept.get().is_none());
        kept.update(5.0, None);
        assert!(kept.get().is_none(), "a reading alone is no peak");
        let mut snapshot = Snapshot::of_stacks(10, Vec::new());
        snapshot.totals.inuse_bytes = 100.0;
        kept.update(100.0, Some(Peak::of(snapshot)));
        kept.update(104.0, None);
        kept.update(3.0, None);
        let peak = kept.get().unwrap();
        assert_eq!(peak.heap_bytes, 100.0);
        assert_eq!(peak.highest_heap_bytes, 104.0);
        assert_eq!(peak.taken_at_unix_ms, 10);
        assert_eq!(kept.heap_bytes(), Some(100.0));
    }
}
