//! Delta profiles: what happened between two snapshots, as a snapshot.
//!
//! Go's `/debug/pprof/heap?seconds=N` answers with the difference between two
//! profiles taken N seconds apart; [`delta_snapshot`] builds the same thing
//! from a [`Diff`] so that every writer (pprof, folded, flamegraph, JSON)
//! can show it.

use crate::profile::{Diff, Kind, Snapshot, StackProfile};

/// Per-stack `after - before` for all four estimates, as a snapshot taken at
/// the newer moment, with the newer snapshot's `rate` and `counters`.
///
/// In-use values may be negative (memory freed during the interval); stacks
/// whose four changes are all zero are left out. Stacks are sorted by the
/// change in in-use bytes, largest first.
pub fn delta_snapshot(diff: &Diff, newer: &Snapshot) -> Snapshot {
    let mut stacks: Vec<StackProfile> = diff
        .entries
        .iter()
        .map(|e| StackProfile {
            frames: e.frames.clone(),
            scope: e.scope.clone(),
            estimates: e.after - e.before,
            inuse_error: Default::default(),
        })
        .filter(|s| Kind::ALL.iter().any(|&k| s.value(k) != 0.0))
        .collect();
    stacks.sort_by(|a, b| {
        b.value(Kind::InuseSpace)
            .total_cmp(&a.value(Kind::InuseSpace))
    });
    Snapshot {
        taken_at_unix_ms: diff.after_unix_ms,
        rate: newer.rate,
        totals: diff.after_totals - diff.before_totals,
        counters: newer.counters,
        stacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Estimates;
    use crate::stack::Frame;

    pub(crate) fn snap(at: u64, stacks: &[(&str, f64, f64)]) -> Snapshot {
        let stacks: Vec<StackProfile> = stacks
            .iter()
            .map(|&(name, inuse, alloc)| StackProfile {
                frames: vec![Frame::named(name)],
                scope: None,
                estimates: Estimates {
                    inuse_bytes: inuse,
                    inuse_objects: inuse / 8.0,
                    alloc_bytes: alloc,
                    alloc_objects: alloc / 8.0,
                },
                inuse_error: Default::default(),
            })
            .collect();
        Snapshot {
            taken_at_unix_ms: at,
            rate: 1,
            totals: stacks.iter().map(|s| s.estimates).sum(),
            counters: Default::default(),
            stacks,
        }
    }

    #[test]
    fn delta_subtracts_per_stack_and_drops_unchanged() {
        let before = snap(
            1,
            &[("a", 80.0, 80.0), ("same", 8.0, 8.0), ("gone", 16.0, 16.0)],
        );
        let after = snap(
            2,
            &[("a", 160.0, 240.0), ("same", 8.0, 8.0), ("new", 8.0, 8.0)],
        );
        let delta = delta_snapshot(&after.diff(&before), &after);
        let got: Vec<(String, f64, f64)> = delta
            .stacks
            .iter()
            .map(|s| {
                (
                    s.folded_key(),
                    s.estimates.inuse_bytes,
                    s.estimates.alloc_bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), 80.0, 160.0),
                ("new".to_string(), 8.0, 8.0),
                ("gone".to_string(), -16.0, -16.0),
            ]
        );
        assert_eq!(delta.totals.inuse_bytes, 72.0);
        assert_eq!(delta.taken_at_unix_ms, 2);
    }
}
