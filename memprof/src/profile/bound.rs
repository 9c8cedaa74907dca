//! Bounding a view of a large profile: the stacks that matter most by one
//! [`Kind`], and one remainder stack carrying the rest.
//!
//! In exact mode a program may have hundreds of thousands of distinct
//! stacks; written whole, its folded stacks run to gigabytes. A bounded
//! view keeps the `limit` stacks largest by the kind shown (and only those
//! holding at least `min_share` of it) and sums every other stack into one
//! stack named `[other N stacks]`, so each of the four totals stays exact
//! and a reader sees how much was left out.

use std::borrow::Cow;
use std::sync::Arc;

use super::snapshot::{Estimates, Kind, Snapshot, StackProfile};
use super::uncertainty::Uncertainty;
use crate::stack::Frame;

/// How many of a profile's stacks a view shows.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Bound {
    /// The most stacks shown besides the remainder; `None` shows them all.
    pub limit: Option<usize>,
    /// The least share of the kind's total a stack must hold to be shown
    /// (a fraction, `0.01` for 1%), against the sum of every stack's value
    /// taken without its sign (a delta's gains and losses both count).
    pub min_share: f64,
}

impl Bound {
    /// The stacks a view of a profile shows unless asked for more.
    pub const DEFAULT_LIMIT: usize = 1000;

    /// Every stack.
    pub const ALL: Bound = Bound {
        limit: None,
        min_share: 0.0,
    };

    /// At most `limit` stacks (`None`: all) holding at least `min_share`.
    pub fn new(limit: Option<usize>, min_share: f64) -> Bound {
        Bound { limit, min_share }
    }

    /// Whether every stack is shown.
    pub fn is_all(&self) -> bool {
        self.limit.is_none() && self.min_share <= 0.0
    }
}

impl Default for Bound {
    /// [`Bound::DEFAULT_LIMIT`] stacks, whatever their share.
    fn default() -> Bound {
        Bound::new(Some(Bound::DEFAULT_LIMIT), 0.0)
    }
}

/// The name of the remainder stack's one frame.
pub(crate) fn remainder_name(stacks: usize) -> String {
    format!("[other {stacks} stacks]")
}

impl Snapshot {
    /// The snapshot as a view bounded by `bound` shows it, for `kind`: the
    /// stacks with the largest values of `kind` (in size, whatever their
    /// sign), largest first, then one stack named `[other N stacks]` whose
    /// estimates are the sums of the `N` others'. The totals are the
    /// snapshot's. Borrowed when every stack is shown.
    pub fn bounded(&self, kind: Kind, bound: Bound) -> Cow<'_, Snapshot> {
        if bound.is_all() {
            return Cow::Borrowed(self);
        }
        let size = |s: &StackProfile| s.value(kind).abs();
        let whole: f64 = self.stacks.iter().map(size).sum();
        let least = bound.min_share * whole;
        let mut shown: Vec<usize> = (0..self.stacks.len())
            .filter(|&i| bound.min_share <= 0.0 || size(&self.stacks[i]) >= least)
            .collect();
        let larger_first = |a: &usize, b: &usize| {
            size(&self.stacks[*b])
                .total_cmp(&size(&self.stacks[*a]))
                .then(a.cmp(b))
        };
        if let Some(limit) = bound.limit {
            if shown.len() > limit {
                if limit > 0 {
                    shown.select_nth_unstable_by(limit - 1, larger_first);
                }
                shown.truncate(limit);
            }
        }
        if shown.len() == self.stacks.len() {
            return Cow::Borrowed(self);
        }
        shown.sort_unstable_by(larger_first);
        let mut is_shown = vec![false; self.stacks.len()];
        for &i in &shown {
            is_shown[i] = true;
        }
        let mut rest = StackProfile {
            frames: Vec::new(),
            scope: None,
            estimates: Estimates::default(),
            inuse_error: Uncertainty::default(),
        };
        let mut others = 0;
        for (stack, _) in self.stacks.iter().zip(&is_shown).filter(|(_, &s)| !s) {
            rest.estimates += stack.estimates;
            rest.inuse_error += stack.inuse_error;
            others += 1;
        }
        rest.frames = vec![Arc::new(Frame {
            function: remainder_name(others),
            file: None,
            line: None,
            address: 0,
        })];
        let mut stacks: Vec<StackProfile> = shown.iter().map(|&i| self.stacks[i].clone()).collect();
        stacks.push(rest);
        Cow::Owned(Snapshot {
            taken_at_unix_ms: self.taken_at_unix_ms,
            rate: self.rate,
            totals: self.totals,
            counters: self.counters,
            stacks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(values: &[f64]) -> Snapshot {
        let stacks = values
            .iter()
            .enumerate()
            .map(|(i, &v)| StackProfile {
                frames: vec![Frame::named(format!("f{i}"))],
                scope: None,
                estimates: Estimates {
                    inuse_bytes: v,
                    alloc_bytes: v.abs() * 2.0,
                    ..Estimates::default()
                },
                inuse_error: Uncertainty {
                    samples: 1,
                    variance: 1.0,
                },
            })
            .collect();
        Snapshot::of_stacks(0, stacks)
    }

    fn names(s: &Snapshot) -> Vec<&str> {
        s.stacks
            .iter()
            .map(|s| s.frames[0].function.as_str())
            .collect()
    }

    #[test]
    fn the_largest_stacks_are_kept_and_the_rest_summed() {
        let full = snapshot(&[5.0, 40.0, -30.0, 1.0, 0.0, 20.0]);
        let view = full.bounded(Kind::InuseSpace, Bound::new(Some(3), 0.0));
        assert_eq!(names(&view), ["f1", "f2", "f5", "[other 3 stacks]"]);
        let rest = &view.stacks[3];
        assert_eq!(rest.estimates.inuse_bytes, 6.0);
        assert_eq!(rest.estimates.alloc_bytes, 12.0);
        assert_eq!(rest.inuse_error.samples, 3);
        let sum: Estimates = view.stacks.iter().map(|s| s.estimates).sum();
        assert_eq!(sum, full.totals);
        assert_eq!(view.totals, full.totals);
    }

    #[test]
    fn a_share_too_small_goes_to_the_remainder() {
        // Sizes sum to 100: 5% is 5, so f0 (5) stays and f3 (1) goes.
        let full = snapshot(&[5.0, 40.0, -30.0, 1.0, 0.0, 24.0]);
        let view = full.bounded(Kind::InuseSpace, Bound::new(None, 0.05));
        assert_eq!(names(&view), ["f1", "f2", "f5", "f0", "[other 2 stacks]"]);
        let view = full.bounded(Kind::InuseSpace, Bound::new(Some(0), 0.0));
        assert_eq!(names(&view), ["[other 6 stacks]"]);
    }

    #[test]
    fn a_view_with_room_for_every_stack_is_the_snapshot() {
        let full = snapshot(&[1.0, 2.0]);
        assert!(matches!(
            full.bounded(Kind::InuseSpace, Bound::default()),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            full.bounded(Kind::InuseSpace, Bound::ALL),
            Cow::Borrowed(_)
        ));
    }
}
