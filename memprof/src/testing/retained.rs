//! What a tracked body left live: per stack, symbolized, for reports and
//! failure messages.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use crate::human::format_bytes;
use crate::profile::snapshot::{folded_key_of, program_site, symbolized_frames};
use crate::sample::LiveSample;
use crate::stack::symbolize::Symbolizer;
use crate::stack::{Frame, Trim, STACKS};

/// One stack's share of what a body retained.
#[derive(Clone, Debug)]
pub struct RetainedStack {
    /// Folded key, `root;...;leaf`.
    pub key: String,
    /// Frames, leaf first.
    pub frames: Vec<Arc<Frame>>,
    /// Bytes still live.
    pub bytes: u64,
    /// Blocks still live.
    pub blocks: u64,
}

/// What a tracked body allocated and left live (for [`soak`](super::soak):
/// what its live blocks grew by).
#[derive(Clone, Debug, Default)]
pub struct Retained {
    /// Bytes still live.
    pub bytes: u64,
    /// Blocks still live.
    pub blocks: u64,
    /// By stack, most bytes first.
    pub stacks: Vec<RetainedStack>,
    /// Threads whose blocks were counted: the body's own and those it
    /// started that allocated.
    pub threads: u64,
    /// Threads the body started past the 1,048,576 one body can follow:
    /// their blocks are not counted, so the figures may be short.
    pub threads_not_followed: u64,
    /// Whether the threads the body started were followed at all (see
    /// [`testing`](super)): false where the mark cannot be set.
    pub followed_new_threads: bool,
    /// Threads the body started that were still running at its end (after
    /// a short wait for those finishing): what they allocate later is not
    /// counted.
    pub threads_running: u64,
    /// Set when the figures are limited to one scope
    /// ([`track_scope`](super::track_scope), [`soak_scope`](super::soak_scope)):
    /// the scope, and what the body left outside it.
    pub scope: Option<ScopeLimit>,
}

/// The scope a [`Retained`] is limited to, and what it leaves out: the
/// body's blocks in other scopes or in none (caches warming, a runtime),
/// which do not count towards the figures or a test's verdict.
#[derive(Clone, Debug, Default)]
pub struct ScopeLimit {
    /// The scope path as given (see [`track_scope`](super::track_scope)
    /// for which scopes it keeps).
    pub path: String,
    /// Times a scope it keeps was entered while the body ran, by any thread
    /// of the process.
    pub entered: u64,
    /// Bytes outside the scope still live (for a soak: what they grew by,
    /// over the stacks that grew).
    pub outside_bytes: u64,
    /// Blocks outside the scope still live (for a soak: what they grew by).
    pub outside_blocks: u64,
    /// Outside the scope, by stack, most bytes first.
    pub outside_stacks: Vec<RetainedStack>,
}

impl Retained {
    /// Writes folded stacks of the retained bytes.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
    pub fn write_folded<W: Write>(&self, mut out: W) -> io::Result<()> {
        for s in &self.stacks {
            writeln!(out, "{} {}", s.key, s.bytes)?;
        }
        Ok(())
    }

    pub(super) fn describe(&self, top: usize) -> String {
        describe_stacks(&self.stacks, top)
    }

    /// Where the scope's figures are limited to, for a message: ` in scope
    /// `ingest``, or nothing.
    pub(super) fn in_scope(&self) -> String {
        self.scope
            .as_ref()
            .map_or_else(String::new, |scope| format!(" in scope `{}`", scope.path))
    }

    /// What a scoped test left out of its verdict, for a failure message.
    pub(super) fn outside(&self, what: &str) -> String {
        let Some(scope) = &self.scope else {
            return String::new();
        };
        if scope.outside_stacks.is_empty() {
            return format!("\n  outside the scope (not part of the verdict): nothing {what}");
        }
        format!(
            "\n  outside the scope (not part of the verdict): {} in {} blocks {what}, largest:{}",
            format_bytes(scope.outside_bytes),
            scope.outside_blocks,
            describe_stacks(&scope.outside_stacks, 3)
        )
    }

    /// Whose blocks were counted, and what could not be followed.
    pub(super) fn threads_counted(&self) -> String {
        let mut text = match self.threads.saturating_sub(1) {
            0 => "on the test's thread".to_string(),
            started => format!("on the test's thread and {started} it started"),
        };
        if self.threads_running > 0 {
            text.push_str(&format!(
                ", {} of them still running at the end",
                self.threads_running
            ));
        }
        if !self.followed_new_threads {
            text.push_str(
                " (threads the test starts are not followed here: their timer slack \
                 cannot carry the mark, so what they keep is not counted)",
            );
        }
        if self.threads_not_followed > 0 {
            text.push_str(&format!(
                " ({} more threads it started were not followed: what they keep is not counted)",
                self.threads_not_followed
            ));
        }
        text
    }
}

/// The `top` stacks with their bytes and the program's site, a line each.
fn describe_stacks(stacks: &[RetainedStack], top: usize) -> String {
    let mut text = String::new();
    for s in stacks.iter().take(top) {
        text.push_str(&format!(
            "\n    {:>10} in {:>6} blocks at {}",
            format_bytes(s.bytes),
            s.blocks,
            program_site(&s.frames)
        ));
    }
    text
}

/// Live bytes and blocks of one stack.
#[derive(Clone, Copy, Default)]
pub(super) struct StackLive {
    pub(super) bytes: i64,
    pub(super) blocks: i64,
}

pub(super) fn by_stack(samples: &[LiveSample]) -> HashMap<u32, StackLive> {
    crate::thread_state::unsampled(|| {
        let mut stacks: HashMap<u32, StackLive> = HashMap::new();
        for s in samples {
            let entry = stacks.entry(s.stack).or_default();
            entry.bytes += s.size as i64;
            entry.blocks += 1;
        }
        stacks
    })
}

/// Symbolizes stacks with positive bytes and merges those that read the
/// same; blocks below zero count as none.
pub(super) fn summarize(stacks: &HashMap<u32, StackLive>) -> Retained {
    crate::thread_state::unsampled(|| {
        let mut by_key: HashMap<String, RetainedStack> = HashMap::new();
        let mut symbolizer = Symbolizer::lock();
        for (&stack, live) in stacks {
            if live.bytes <= 0 {
                continue;
            }
            let addresses = STACKS.frames(stack).unwrap_or(&[]);
            let frames = symbolized_frames(&mut symbolizer, stack, addresses, Trim::default());
            let key = folded_key_of(&frames);
            let entry = by_key.entry(key.clone()).or_insert(RetainedStack {
                key,
                frames,
                bytes: 0,
                blocks: 0,
            });
            entry.bytes += live.bytes as u64;
            entry.blocks += live.blocks.max(0) as u64;
        }
        let mut stacks: Vec<RetainedStack> = by_key.into_values().collect();
        stacks.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
        Retained {
            bytes: stacks.iter().map(|s| s.bytes).sum(),
            blocks: stacks.iter().map(|s| s.blocks).sum(),
            stacks,
            ..Retained::default()
        }
    })
}
