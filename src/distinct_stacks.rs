//! Distinct real call stacks on demand, for tests and benchmarks that need
//! a profiler to see many different stacks (a stack table at scale, a
//! snapshot of hundreds of thousands of stacks).
//!
//! A path is a whole number read bit by bit: each bit picks which of two
//! frames ([`zero`] or [`one`]) the next level of a recursion goes through.
//! The return address a frame leaves on the stack is the call site in its
//! caller, and each frame has a different call site for each kind of callee,
//! so the return addresses spell out the bits: `depth` levels give
//! `2^depth` distinct stacks, each `depth` frames deeper than the caller's
//! (plus the closure's own frames), all real frames any unwinder walks.
//!
//! Keep the deepest stack inside the profiler's depth limit
//! (`MEMPROF_MAX_FRAMES`, 64 by default) or the stacks cut at the limit stop
//! being distinct: `depth` 19 from a test's body is about 35 frames deep.

use std::hint::black_box;

/// The most levels a path can have: one bit of a `u32` per level.
pub const MAX_DEPTH: u32 = u32::BITS;

/// Calls `leaf` from the call stack that `path`'s low `depth` bits spell:
/// the same stack every time for the same `path` and `depth`, a different
/// one for every other `path` below `2^depth`.
///
/// # Panics
///
/// If `depth` is above [`MAX_DEPTH`].
pub fn call_from(path: u32, depth: u32, leaf: &mut dyn FnMut()) {
    assert!(depth <= MAX_DEPTH, "depth {depth} is above {MAX_DEPTH}");
    step(path, depth, leaf);
}

/// Calls `leaf(path)` once from each of the `2^depth` distinct stacks that
/// `depth` levels give, `path` counting up from 0.
///
/// # Panics
///
/// If `depth` is above 31 (the paths would not fit a `u32` count).
pub fn for_each(depth: u32, leaf: &mut dyn FnMut(u32)) {
    assert!(
        depth < MAX_DEPTH,
        "depth {depth} is above {}",
        MAX_DEPTH - 1
    );
    for path in 0..1u32 << depth {
        call_from(path, depth, &mut || leaf(path));
    }
}

/// One level: goes through [`zero`] or [`one`] by the low bit of `bits`,
/// or calls `leaf` when no levels are left. Inlined into both frames, so
/// each has its own call site per kind of callee.
#[inline(always)]
fn step(bits: u32, levels: u32, leaf: &mut dyn FnMut()) {
    if levels == 0 {
        leaf();
    } else if bits & 1 == 0 {
        zero(bits >> 1, levels - 1, leaf);
    } else {
        one(bits >> 1, levels - 1, leaf);
    }
}

/// The frame a 0 bit goes through. Never inlined, and it does work after
/// the call (so the call is not a tail call that would leave no frame);
/// the work differs from [`one`]'s so the two are never merged into one.
#[inline(never)]
fn zero(bits: u32, levels: u32, leaf: &mut dyn FnMut()) {
    step(bits, levels, leaf);
    black_box(levels + 1);
}

/// The frame a 1 bit goes through; see [`zero`].
#[inline(never)]
fn one(bits: u32, levels: u32, leaf: &mut dyn FnMut()) {
    step(bits, levels, leaf);
    black_box(levels + 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The return addresses above the leaf, leaf first, up to `for_each`.
    fn stack_of(path: u32, depth: u32) -> Vec<usize> {
        let mut buf = [0; memprof::config::MAX_FRAMES];
        let mut n = 0;
        call_from(path, depth, &mut || {
            n = memprof::internals::capture_with(memprof::Unwinder::Dwarf, &mut buf)
        });
        buf[..n].to_vec()
    }

    #[test]
    fn every_path_has_its_own_stack_and_keeps_it() {
        let depth = 6;
        // Twice round the same call site: the second round must repeat the first.
        let stacks: Vec<Vec<usize>> = (0..2 << depth)
            .map(|i| stack_of(i & ((1 << depth) - 1), depth))
            .collect();
        let (first, second) = stacks.split_at(1 << depth);
        assert_eq!(first, second);
        let distinct: std::collections::HashSet<&Vec<usize>> = first.iter().collect();
        assert_eq!(distinct.len(), 1 << depth);
    }

    #[test]
    fn for_each_visits_every_path_once() {
        let mut seen = Vec::new();
        for_each(4, &mut |path| seen.push(path));
        assert_eq!(seen, (0..16).collect::<Vec<u32>>());
    }
}
