//! `Diff`: what changed between two snapshots, stack by stack.
//!
//! As in Python's tracemalloc, stacks are matched by their symbolized frames
//! (the folded key), not by addresses, so snapshots saved by different runs
//! of a program compare too. Entries are sorted by the absolute change in
//! in-use bytes, largest first.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::scope_path::ScopePath;
use super::snapshot::{Estimates, Kind, Snapshot};
use crate::stack::Frame;

/// One stack's figures in both snapshots.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiffEntry {
    /// The stack's frames, leaf first.
    pub frames: Vec<Arc<Frame>>,
    /// Folded key (`root;...;leaf`) that matched the two sides.
    pub key: String,
    /// The scope the stack's samples were allocated in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopePath>,
    /// Estimates in the older snapshot (zero if the stack is new).
    pub before: Estimates,
    /// Estimates in the newer snapshot (zero if the stack is gone).
    pub after: Estimates,
}

impl DiffEntry {
    /// `after - before` for `kind`.
    pub fn change(&self, kind: Kind) -> f64 {
        self.after.get(kind) - self.before.get(kind)
    }
}

/// The difference between an older and a newer snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Diff {
    /// When the older snapshot was taken (Unix ms).
    pub before_unix_ms: u64,
    /// When the newer snapshot was taken (Unix ms).
    pub after_unix_ms: u64,
    /// Totals, older and newer.
    pub before_totals: Estimates,
    /// Totals of the newer snapshot.
    pub after_totals: Estimates,
    /// Per-stack changes, largest absolute in-use bytes change first.
    pub entries: Vec<DiffEntry>,
}

impl Snapshot {
    /// Compares this (newer) snapshot with `older`.
    pub fn diff(&self, older: &Snapshot) -> Diff {
        let mut by_key: HashMap<String, DiffEntry> = HashMap::new();
        for (side, snapshot) in [(0, older), (1, self)] {
            for stack in &snapshot.stacks {
                let key = stack.folded_key();
                let entry = by_key.entry(key.clone()).or_insert_with(|| DiffEntry {
                    frames: stack.frames.clone(),
                    key,
                    scope: stack.scope.clone(),
                    before: Estimates::default(),
                    after: Estimates::default(),
                });
                let target = if side == 0 {
                    &mut entry.before
                } else {
                    &mut entry.after
                };
                target.inuse_bytes += stack.estimates.inuse_bytes;
                target.inuse_objects += stack.estimates.inuse_objects;
                target.alloc_bytes += stack.estimates.alloc_bytes;
                target.alloc_objects += stack.estimates.alloc_objects;
            }
        }
        let mut entries: Vec<DiffEntry> = by_key.into_values().collect();
        entries.sort_by(|a, b| {
            b.change(Kind::InuseSpace)
                .abs()
                .total_cmp(&a.change(Kind::InuseSpace).abs())
                .then_with(|| a.key.cmp(&b.key))
        });
        Diff {
            before_unix_ms: older.taken_at_unix_ms,
            after_unix_ms: self.taken_at_unix_ms,
            before_totals: older.totals,
            after_totals: self.totals,
            entries,
        }
    }
}

impl Diff {
    /// The change in total of `kind`.
    pub fn total_change(&self, kind: Kind) -> f64 {
        self.after_totals.get(kind) - self.before_totals.get(kind)
    }

    /// Writes `key before after` lines: the input inferno's differential
    /// flamegraph (`inferno-diff-folded`'s output format) expects.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
    pub fn write_folded_pair<W: Write>(&self, mut out: W, kind: Kind) -> io::Result<()> {
        for e in &self.entries {
            let (before, after) = (e.before.get(kind).round(), e.after.get(kind).round());
            if before >= 1.0 || after >= 1.0 {
                writeln!(out, "{} {} {}", e.key, before as u64, after as u64)?;
            }
        }
        Ok(())
    }

    /// Writes folded stacks of the positive changes of `kind` (what grew),
    /// for an ordinary flamegraph of the growth.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
    pub fn write_folded_growth<W: Write>(&self, mut out: W, kind: Kind) -> io::Result<()> {
        for e in &self.entries {
            let change = e.change(kind).round();
            if change >= 1.0 {
                writeln!(out, "{} {}", e.key, change as u64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::StackProfile;
    use super::*;

    fn stack(names: &[&str], inuse: f64, alloc: f64) -> StackProfile {
        StackProfile {
            frames: names.iter().map(|&n| Frame::named(n)).collect(),
            scope: None,
            estimates: Estimates {
                inuse_bytes: inuse,
                inuse_objects: inuse / 8.0,
                alloc_bytes: alloc,
                alloc_objects: alloc / 8.0,
            },
            inuse_error: Default::default(),
        }
    }

    #[test]
    fn diff_matches_by_frames_and_sorts_by_change() {
        let older = Snapshot::of_stacks(
            1,
            vec![
                stack(&["leak", "main"], 100.0, 100.0),
                stack(&["steady", "main"], 50.0, 500.0),
                stack(&["gone", "main"], 30.0, 30.0),
            ],
        );
        let newer = Snapshot::of_stacks(
            2,
            vec![
                stack(&["leak", "main"], 1100.0, 1100.0),
                stack(&["steady", "main"], 50.0, 900.0),
                stack(&["new", "main"], 200.0, 200.0),
            ],
        );
        let diff = newer.diff(&older);
        let keys: Vec<&str> = diff.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["main;leak", "main;new", "main;gone", "main;steady"]);
        assert_eq!(diff.entries[0].change(Kind::InuseSpace), 1000.0);
        assert_eq!(diff.entries[2].change(Kind::InuseSpace), -30.0);
        assert_eq!(diff.entries[3].change(Kind::AllocSpace), 400.0);
        assert_eq!(diff.total_change(Kind::InuseSpace), 1350.0 - 180.0);

        let mut growth = Vec::new();
        diff.write_folded_growth(&mut growth, Kind::InuseSpace)
            .unwrap();
        assert_eq!(
            String::from_utf8(growth).unwrap(),
            "main;leak 1000\nmain;new 200\n"
        );
        let mut pair = Vec::new();
        diff.write_folded_pair(&mut pair, Kind::InuseSpace).unwrap();
        assert!(String::from_utf8(pair)
            .unwrap()
            .contains("main;gone 30 0\n"));
    }

    #[test]
    fn filter_and_save_round_trip() {
        let snap = Snapshot::of_stacks(
            5,
            vec![
                stack(&["parse", "main"], 10.0, 10.0),
                stack(&["render", "main"], 20.0, 20.0),
            ],
        );
        let only_parse = snap.filter(&["parse"], &[]);
        assert_eq!(only_parse.stacks.len(), 1);
        assert_eq!(only_parse.totals.inuse_bytes, 10.0);
        let without_parse = snap.filter(&[], &["parse"]);
        assert_eq!(without_parse.totals.inuse_bytes, 20.0);

        let mut file = Vec::new();
        snap.save(&mut file).unwrap();
        let back = Snapshot::load(&file[..]).unwrap();
        assert_eq!(back.stacks.len(), 2);
        assert_eq!(back.diff(&snap).total_change(Kind::InuseSpace), 0.0);
        assert!(Snapshot::load(&b"{not json"[..]).is_err());
    }
}
