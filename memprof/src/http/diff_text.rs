//! `/diff?format=text`: the stacks whose amount changed most between two
//! snapshots (`format=json` is the whole [`Diff`]).

use std::fmt::Write;

use serde::{Serialize, Serializer};

use super::respond::TextForm;
use crate::human::format_bytes_signed;
use crate::profile::{Diff, Kind};

/// A diff as `/diff` answers it: JSON is the [`Diff`] itself; the text form
/// lists the largest changes of `kind`, headed by `what` was compared.
pub(super) struct DiffView<'a> {
    pub(super) diff: &'a Diff,
    pub(super) kind: Kind,
    pub(super) what: &'a str,
}

impl Serialize for DiffView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.diff.serialize(serializer)
    }
}

/// The most stacks the text form lists; `format=json` has them all.
const DIFF_ROWS: usize = 100;

/// A value of `kind`: bytes in binary units, counts as numbers.
fn amount(kind: Kind, value: f64) -> String {
    match kind {
        Kind::InuseSpace | Kind::AllocSpace => format_bytes_signed(value.abs()),
        Kind::InuseObjects | Kind::AllocObjects => format!("{:.0}", value.abs()),
    }
}

/// A change of `kind`, with its sign.
fn change(kind: Kind, value: f64) -> String {
    let sign = if value < 0.0 { '-' } else { '+' };
    format!("{sign}{}", amount(kind, value))
}

impl TextForm for DiffView<'_> {
    /// The stacks whose `kind` changed, largest change first: the change,
    /// both sides, and where the stack enters the program.
    fn text(&self) -> String {
        let (diff, kind) = (self.diff, self.kind);
        let mut entries: Vec<_> = diff
            .entries
            .iter()
            .filter(|e| e.change(kind).abs() >= 0.5)
            .collect();
        entries.sort_by(|a, b| b.change(kind).abs().total_cmp(&a.change(kind).abs()));
        let mut out = String::new();
        let seconds = diff.after_unix_ms.saturating_sub(diff.before_unix_ms) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{}: {} {} ({} -> {}) over {seconds:.1} s; {} stacks changed",
            self.what,
            kind.name(),
            change(kind, diff.total_change(kind)),
            amount(kind, diff.before_totals.get(kind)),
            amount(kind, diff.after_totals.get(kind)),
            entries.len()
        );
        for e in entries.iter().take(DIFF_ROWS) {
            let _ = writeln!(
                out,
                "\n{} ({} -> {})\n  at {}",
                change(kind, e.change(kind)),
                amount(kind, e.before.get(kind)),
                amount(kind, e.after.get(kind)),
                crate::profile::program_site(&e.frames)
            );
        }
        if entries.len() > DIFF_ROWS {
            let _ = writeln!(
                out,
                "\n... and {} more (format=json lists them all)",
                entries.len() - DIFF_ROWS
            );
        }
        out
    }
}
