//! Reading folded stacks (`root;...;leaf count` lines, as memprof's
//! `heap.folded`, inferno and flamegraph.pl write them) into a snapshot.
//!
//! A folded file has one number per stack and does not say what it counts;
//! memprof writes in-use bytes there, so that is what the count is read as.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use super::{input_error, Capped, ProfileError, ReadLimits};
use crate::profile::{Estimates, Kind, Snapshot, StackProfile};
use crate::stack::Frame;

/// Reads folded stacks, each count as in-use bytes; lines naming the same
/// stack are summed. Blank lines are skipped.
///
/// # Errors
///
/// [`ProfileError::FoldedLine`] for a line that is not `frames count` (a
/// differential file's two counts included), [`ProfileError::TooLarge`]
/// past [`ReadLimits::max_input_bytes`], [`ProfileError::Io`] when reading
/// fails.
pub fn read_folded<R: BufRead>(input: R, limits: &ReadLimits) -> Result<Snapshot, ProfileError> {
    let mut capped = std::io::BufReader::new(Capped::new(input, limits.max_input_bytes));
    let mut frames_by_name: HashMap<String, Arc<Frame>> = HashMap::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut stacks: Vec<StackProfile> = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = capped
            .read_until(b'\n', &mut line)
            .map_err(|e| input_error(e, limits.max_input_bytes, false))?;
        if read == 0 {
            break;
        }
        number += 1;
        let bad = |what: &str| ProfileError::FoldedLine {
            line: number,
            what: what.to_string(),
        };
        let text = std::str::from_utf8(&line).map_err(|_| bad("not UTF-8 text"))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let (key, count) = text
            .rsplit_once(' ')
            .ok_or_else(|| bad("no count after the stack"))?;
        let count: f64 = count
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c >= 0.0)
            .ok_or_else(|| bad(&format!("{count:?} is not a count")))?;
        if key
            .rsplit_once(' ')
            .is_some_and(|(_, c)| c.parse::<f64>().is_ok())
        {
            return Err(bad(
                "two counts: a differential file; give its two profiles to diff instead",
            ));
        }
        if key.is_empty() {
            return Err(bad("a count without a stack"));
        }
        if let Some(&i) = by_key.get(key) {
            stacks[i].estimates.inuse_bytes += count;
            continue;
        }
        let frames = key
            .split(';')
            .rev()
            .map(|name| {
                Arc::clone(
                    frames_by_name
                        .entry(name.to_string())
                        .or_insert_with(|| Frame::named(name)),
                )
            })
            .collect();
        by_key.insert(key.to_string(), stacks.len());
        stacks.push(StackProfile {
            frames,
            estimates: Estimates {
                inuse_bytes: count,
                ..Estimates::default()
            },
            inuse_error: Default::default(),
            scope: None,
        });
    }
    stacks.sort_by(|a, b| {
        b.value(Kind::InuseSpace)
            .total_cmp(&a.value(Kind::InuseSpace))
    });
    Ok(Snapshot {
        taken_at_unix_ms: 0,
        rate: 0,
        totals: stacks.iter().map(|s| s.estimates).sum(),
        counters: Default::default(),
        stacks,
    })
}
