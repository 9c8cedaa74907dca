//! `memprof diff A B`: what changed from profile A to profile B, stack by
//! stack (stacks matched by their function names, as `/diff` matches
//! them): grown and new stacks first, largest growth first, then shrunk
//! and gone ones, largest shrink first.

use std::path::Path;
use std::process::ExitCode;

use memprof::export::profile_file::ReadLimits;
use memprof::profile::{program_site, DiffEntry};
use memprof::Kind;
use serde::Serialize;

use crate::report::amount;
use crate::source::load;
use crate::{print, print_json, Result};

/// What became of a stack.
#[derive(Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Change {
    Grown,
    New,
    Shrunk,
    Gone,
}

impl Change {
    fn of(entry: &DiffEntry, kind: Kind) -> Change {
        let (before, after) = (entry.before.get(kind), entry.after.get(kind));
        match (before.abs() < 0.5, after.abs() < 0.5, after > before) {
            (true, _, _) => Change::New,
            (_, true, _) => Change::Gone,
            (_, _, true) => Change::Grown,
            _ => Change::Shrunk,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Change::Grown => "grown",
            Change::New => "new",
            Change::Shrunk => "shrunk",
            Change::Gone => "gone",
        }
    }
}

#[derive(Serialize)]
struct Row {
    change: Change,
    /// `after - before`.
    delta: f64,
    before: f64,
    after: f64,
    site: String,
    /// The folded key (`root;...;leaf`) the two sides were matched by.
    key: String,
}

#[derive(Serialize)]
struct DiffOut<'a> {
    before: &'a Path,
    after: &'a Path,
    kind: Kind,
    before_total: f64,
    after_total: f64,
    stacks: Vec<Row>,
}

pub(crate) fn diff(
    a: &Path,
    b: &Path,
    top: usize,
    kind: Kind,
    limits: &ReadLimits,
    json: bool,
) -> Result<ExitCode> {
    let before = load(a, limits)?;
    let after = load(b, limits)?;
    let diff = after.profile.snapshot.diff(&before.profile.snapshot);
    let mut rows: Vec<Row> = diff
        .entries
        .iter()
        .filter(|e| e.change(kind).abs() >= 0.5)
        .map(|e| Row {
            change: Change::of(e, kind),
            delta: e.change(kind),
            before: e.before.get(kind),
            after: e.after.get(kind),
            site: program_site(&e.frames),
            key: e.key.clone(),
        })
        .collect();
    // Growth first, largest first; then shrinkage, largest first.
    rows.sort_by(|x, y| {
        (x.delta < 0.0)
            .cmp(&(y.delta < 0.0))
            .then_with(|| y.delta.abs().total_cmp(&x.delta.abs()))
            .then_with(|| x.key.cmp(&y.key))
    });
    let out = DiffOut {
        before: a,
        after: b,
        kind,
        before_total: diff.before_totals.get(kind),
        after_total: diff.after_totals.get(kind),
        stacks: rows,
    };
    if json {
        return print_json(&out);
    }
    print(&render(&out, top))
}

fn signed(kind: Kind, value: f64) -> String {
    let sign = if value < 0.0 { '-' } else { '+' };
    format!("{sign}{}", amount(kind, value))
}

fn render(out: &DiffOut<'_>, top: usize) -> String {
    let kind = out.kind;
    let mut text = format!(
        "{} -> {}: {} {} ({} -> {}); {} stacks changed\n",
        out.before.display(),
        out.after.display(),
        kind.name(),
        signed(kind, out.after_total - out.before_total),
        amount(kind, out.before_total),
        amount(kind, out.after_total),
        out.stacks.len()
    );
    for row in out.stacks.iter().take(top) {
        text.push_str(&format!(
            "\n{:<6} {} ({} -> {})\n  at {}\n",
            row.change.word(),
            signed(kind, row.delta),
            amount(kind, row.before),
            amount(kind, row.after),
            row.site
        ));
    }
    if out.stacks.len() > top {
        text.push_str(&format!(
            "\n... and {} more (--top raises the count; --json lists them all)\n",
            out.stacks.len() - top
        ));
    }
    text
}
