//! Turning interned stacks into a snapshot's stacks: symbolized, trimmed at
//! the leaf end, and merged where they become the same once trimmed.
//!
//! A snapshot may read hundreds of thousands of stacks (every distinct
//! stack of a program in exact mode), so the memory it takes is what it
//! keeps: each kept stack's frame pointers (the frames themselves shared by
//! every stack through an address) and its estimates. A [`Reader`] resolves
//! each return address once per snapshot into its own table of frames and
//! reads each stack as indices into it, so reading a stack allocates
//! nothing and touches no reference count; a stack already seen is found
//! by a hash of those indices, and only a new one copies its frames out.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::snapshot::{Estimates, StackProfile};
use super::uncertainty::Uncertainty;
use crate::hash::AddressHash;
use crate::stack::role::trimmed_leaf_frames;
use crate::stack::symbolize::{Frame, Symbolizer};
use crate::stack::{scope_of_marker, FrameRole, Trim};

/// Reads stacks as a snapshot shows them. Holds every frame met so far,
/// each once: one frame stands for one (return address, depth among the
/// frames inlined there), or one marker, so two stacks read the same
/// exactly when they hold the same indices.
#[derive(Default)]
pub(crate) struct Reader {
    frames: Vec<Arc<Frame>>,
    roles: Vec<FrameRole>,
    /// Where the frames of each return address or marker start in
    /// `frames`, and how many there are.
    spans: HashMap<usize, (u32, u32), AddressHash>,
    /// The index of `[unknown]` and of `[stack table full]`, once made.
    unknown: Option<u32>,
    table_full: Option<u32>,
    /// The stack last read, as indices into `frames`, leaf first.
    stack: Vec<u32>,
    /// Frames of `stack` left out at the leaf end.
    trimmed: usize,
}

impl Reader {
    /// Reads stack `id` (its return `addresses`, leaf first): symbolizes
    /// it, trims its leaf end as `trim` says and turns scope and truncation
    /// markers into frames (`[scope name]`, `[truncated]`); a stack left
    /// with no frames is `[unknown]` (`[stack table full]` for the overflow
    /// stack).
    pub(crate) fn read(
        &mut self,
        symbolizer: &mut Symbolizer,
        id: u32,
        addresses: &[usize],
        trim: Trim,
    ) {
        self.stack.clear();
        for &address in addresses {
            let (start, len) = match self.spans.get(&address) {
                Some(&span) => span,
                None => self.resolve(symbolizer, address),
            };
            self.stack.extend(start..start + len);
        }
        let roles = self.stack.iter().map(|&i| self.roles[i as usize]);
        self.trimmed = trimmed_leaf_frames(trim, roles);
        if self.trimmed >= self.stack.len() {
            self.trimmed = self.stack.len();
            let placeholder = if id == crate::stack::OVERFLOW_STACK {
                self.placeholder(true)
            } else {
                self.placeholder(false)
            };
            self.stack.push(placeholder);
        }
    }

    /// Adds the frames of a return address or marker met for the first time.
    fn resolve(&mut self, symbolizer: &mut Symbolizer, address: usize) -> (u32, u32) {
        let start = self.frames.len();
        if address == crate::stack::TRUNCATED_MARKER {
            self.push(Frame::named("[truncated]"), FrameRole::Program);
        } else if let Some(scope) = scope_of_marker(address) {
            // Innermost scope first, so the outermost ends up at the root.
            // Names, not the joined path: a name may contain `/`.
            match crate::scope::scope_names(scope) {
                Some(names) => {
                    for name in names.iter().rev() {
                        self.push(Frame::named(format!("[scope {name}]")), FrameRole::Program);
                    }
                }
                None => self.push(
                    Frame::named(format!("[scope scope {scope}]")),
                    FrameRole::Program,
                ),
            }
        } else {
            let resolved = symbolizer.resolve(address);
            for (depth, frame) in resolved.frames.iter().enumerate() {
                self.push(Arc::clone(frame), resolved.role(depth));
            }
        }
        let span = (index(start), index(self.frames.len() - start));
        self.spans.insert(address, span);
        span
    }

    /// The index of `[stack table full]` or `[unknown]`.
    fn placeholder(&mut self, table_full: bool) -> u32 {
        let (slot, name) = if table_full {
            (self.table_full, "[stack table full]")
        } else {
            (self.unknown, "[unknown]")
        };
        if let Some(i) = slot {
            return i;
        }
        let i = index(self.frames.len());
        self.push(Frame::named(name), FrameRole::Program);
        if table_full {
            self.table_full = Some(i);
        } else {
            self.unknown = Some(i);
        }
        i
    }

    fn push(&mut self, frame: Arc<Frame>, role: FrameRole) {
        self.frames.push(frame);
        self.roles.push(role);
    }

    /// The kept frames of the stack last read, as indices, leaf first.
    fn kept(&self) -> &[u32] {
        &self.stack[self.trimmed..]
    }

    /// The kept frames of the stack last read, leaf first.
    pub(crate) fn frames(&self) -> Vec<Arc<Frame>> {
        self.kept()
            .iter()
            .map(|&i| Arc::clone(&self.frames[i as usize]))
            .collect()
    }

    /// A hash of the kept frames: equal for stacks that merge.
    fn hash(&self) -> u64 {
        let mut hasher = AddressHash::default().build_hasher();
        for pair in self.kept().chunks(2) {
            let low = u64::from(pair[0]);
            let high = pair.get(1).map_or(u64::from(u32::MAX), |&i| u64::from(i));
            hasher.write_u64(high << 32 | low);
        }
        hasher.finish()
    }

    /// Whether `frames` are the kept frames of the stack last read: the
    /// same frames, by identity (each frame of this reader stands for one
    /// address and depth, or one marker).
    fn is(&self, frames: &[Arc<Frame>]) -> bool {
        let kept = self.kept();
        frames.len() == kept.len()
            && frames
                .iter()
                .zip(kept)
                .all(|(f, &i)| Arc::ptr_eq(f, &self.frames[i as usize]))
    }
}

/// A count of frames as a `u32` (a snapshot holds far fewer than 2^32).
fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The stacks of a snapshot being taken, merged by their frames.
pub(super) struct Merged {
    stacks: Vec<StackProfile>,
    /// The first stack with each hash of frame identities.
    first: HashMap<u64, u32, AddressHash>,
    /// The next stack with the same hash, by index (`u32::MAX`: none).
    /// Distinct stacks share a hash only by a 64-bit collision.
    next: Vec<u32>,
}

impl Merged {
    /// Room for `stacks` stacks, so nothing is rehashed or moved as it fills.
    pub(super) fn with_capacity(stacks: usize) -> Merged {
        Merged {
            stacks: Vec::with_capacity(stacks),
            first: HashMap::with_capacity_and_hasher(stacks, AddressHash::default()),
            next: Vec::with_capacity(stacks),
        }
    }

    /// The stack `reader` read last: the one merged so far, or a new one
    /// with no estimates yet (its frame pointers copied, exactly as many
    /// as it keeps).
    pub(super) fn entry(&mut self, reader: &Reader) -> &mut StackProfile {
        self.entry_with_hash(reader.hash(), reader)
    }

    fn entry_with_hash(&mut self, hash: u64, reader: &Reader) -> &mut StackProfile {
        let mut at = self.first.get(&hash).copied();
        let mut last = None;
        while let Some(i) = at {
            if reader.is(&self.stacks[i as usize].frames) {
                return &mut self.stacks[i as usize];
            }
            last = Some(i);
            at = Some(self.next[i as usize]).filter(|&n| n != u32::MAX);
        }
        let index = index(self.stacks.len());
        match last {
            Some(i) => self.next[i as usize] = index,
            None => {
                self.first.insert(hash, index);
            }
        }
        self.next.push(u32::MAX);
        self.stacks.push(StackProfile {
            frames: reader.frames(),
            estimates: Estimates::default(),
            inuse_error: Uncertainty::default(),
        });
        let last = self.stacks.len() - 1;
        &mut self.stacks[last]
    }

    /// The merged stacks, in the order first seen.
    pub(super) fn into_stacks(self) -> Vec<StackProfile> {
        self.stacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that has met frames `a`, `b` and `main` and last read the
    /// stack of indices `stack`.
    fn reader(frames: &[Arc<Frame>], stack: &[u32]) -> Reader {
        Reader {
            frames: frames.to_vec(),
            roles: vec![FrameRole::Program; frames.len()],
            stack: stack.to_vec(),
            ..Reader::default()
        }
    }

    #[test]
    fn stacks_merge_by_their_frames_and_hash_collisions_stay_apart() {
        let frames = [Frame::named("a"), Frame::named("b"), Frame::named("main")];
        let mut merged = Merged::with_capacity(4);
        let a_main = reader(&frames, &[0, 2]);
        merged.entry(&a_main).estimates.alloc_objects += 1.0;
        merged.entry(&a_main).estimates.alloc_objects += 2.0;
        // Another stack, given the same hash: apart, and found again.
        let b_main = reader(&frames, &[1, 2]);
        let hash = a_main.hash();
        merged
            .entry_with_hash(hash, &b_main)
            .estimates
            .alloc_objects += 4.0;
        merged
            .entry_with_hash(hash, &b_main)
            .estimates
            .alloc_objects += 8.0;
        merged.entry(&a_main).estimates.alloc_objects += 16.0;
        // Equal names are not the same frame: `a` met again elsewhere.
        let other_a = reader(&[Frame::named("a"), Frame::named("main")], &[0, 1]);
        merged.entry(&other_a).estimates.alloc_objects += 32.0;
        let stacks = merged.into_stacks();
        let counts: Vec<f64> = stacks.iter().map(|s| s.estimates.alloc_objects).collect();
        assert_eq!(counts, [19.0, 12.0, 32.0]);
        assert!(Arc::ptr_eq(&stacks[1].frames[0], &frames[1]));
        assert_eq!(stacks[0].frames.capacity(), 2);
    }

    #[test]
    fn the_trimmed_leaf_is_left_out_and_an_empty_stack_is_unknown() {
        let frames = [Frame::named("shim"), Frame::named("main")];
        let mut r = reader(&frames, &[0, 1]);
        r.trimmed = 1;
        assert_eq!(r.frames().len(), 1);
        assert!(Arc::ptr_eq(&r.frames()[0], &frames[1]));
        let mut symbolizer = Symbolizer::lock();
        let mut r = Reader::default();
        r.read(&mut symbolizer, 7, &[], Trim::default());
        let unknown = r.frames();
        r.read(&mut symbolizer, 8, &[], Trim::default());
        assert_eq!(unknown[0].function, "[unknown]");
        assert!(
            Arc::ptr_eq(&unknown[0], &r.frames()[0]),
            "one [unknown] frame"
        );
    }
}
