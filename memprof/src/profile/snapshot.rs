//! `Snapshot`: an owned, symbolized picture of the heap profile.
//!
//! A snapshot reads every interned stack's counters (lock-free), symbolizes
//! the stacks through the cache, trims the allocation machinery from the
//! leaf end (see [`crate::stack::role`]), and merges stacks that become identical once trimmed (the same
//! call site reached through `alloc` and `realloc`, say). It owns its data:
//! keep it, serialise it, diff it against a later one.

use std::collections::HashMap;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub(crate) use super::folded::folded_key_of;
use super::folded::{self, Line};
use super::merge::{Merged, Reader};
use super::scope_path::{ScopeFilter, ScopePath};
pub(crate) use super::site::program_site;
use super::uncertainty::Uncertainty;
use crate::hash::AddressHash;
use crate::sample::SamplerCounters;
use crate::stack::symbolize::{Frame, Symbolizer};
use crate::stack::table::StackCounters;
use crate::stack::{Trim, STACKS};

/// Which of the four estimates a view shows, named as in Go's pprof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Bytes allocated and not yet freed.
    #[default]
    InuseSpace,
    /// Objects allocated and not yet freed.
    InuseObjects,
    /// Bytes allocated since start.
    AllocSpace,
    /// Objects allocated since start.
    AllocObjects,
}

impl Kind {
    /// All four, in pprof's sample-type order.
    pub const ALL: [Kind; 4] = [
        Kind::AllocObjects,
        Kind::AllocSpace,
        Kind::InuseObjects,
        Kind::InuseSpace,
    ];

    /// The name used in URLs and pprof (`inuse_space`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::InuseSpace => "inuse_space",
            Kind::InuseObjects => "inuse_objects",
            Kind::AllocSpace => "alloc_space",
            Kind::AllocObjects => "alloc_objects",
        }
    }

    /// The unit of its values: `bytes` or `count`.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::InuseSpace | Kind::AllocSpace => "bytes",
            Kind::InuseObjects | Kind::AllocObjects => "count",
        }
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or(UnknownKind)
    }
}

/// The error for a string that names no [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownKind;

impl std::fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("expected one of inuse_space, inuse_objects, alloc_space, alloc_objects")
    }
}

impl std::error::Error for UnknownKind {}

/// The four estimates, for one stack or for the whole process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimates {
    /// Bytes allocated and not yet freed.
    pub inuse_bytes: f64,
    /// Objects allocated and not yet freed.
    pub inuse_objects: f64,
    /// Bytes allocated since start.
    pub alloc_bytes: f64,
    /// Objects allocated since start.
    pub alloc_objects: f64,
}

impl Estimates {
    /// The estimate a [`Kind`] names.
    pub fn get(&self, kind: Kind) -> f64 {
        match kind {
            Kind::InuseSpace => self.inuse_bytes,
            Kind::InuseObjects => self.inuse_objects,
            Kind::AllocSpace => self.alloc_bytes,
            Kind::AllocObjects => self.alloc_objects,
        }
    }
}

impl From<StackCounters> for Estimates {
    fn from(c: StackCounters) -> Estimates {
        Estimates {
            inuse_bytes: c.inuse_bytes,
            inuse_objects: c.inuse_objects,
            alloc_bytes: c.alloc_bytes,
            alloc_objects: c.alloc_objects,
        }
    }
}

impl std::ops::AddAssign for Estimates {
    fn add_assign(&mut self, other: Estimates) {
        self.inuse_bytes += other.inuse_bytes;
        self.inuse_objects += other.inuse_objects;
        self.alloc_bytes += other.alloc_bytes;
        self.alloc_objects += other.alloc_objects;
    }
}

impl std::ops::Sub for Estimates {
    type Output = Estimates;
    fn sub(self, other: Estimates) -> Estimates {
        Estimates {
            inuse_bytes: self.inuse_bytes - other.inuse_bytes,
            inuse_objects: self.inuse_objects - other.inuse_objects,
            alloc_bytes: self.alloc_bytes - other.alloc_bytes,
            alloc_objects: self.alloc_objects - other.alloc_objects,
        }
    }
}

impl std::iter::Sum for Estimates {
    fn sum<I: Iterator<Item = Estimates>>(iter: I) -> Estimates {
        let mut total = Estimates::default();
        for e in iter {
            total += e;
        }
        total
    }
}

/// One call stack and what was allocated from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StackProfile {
    /// Frames, leaf first (the allocating function), root last. Scopes appear
    /// as `[scope name]` frames at the root.
    pub frames: Vec<Arc<Frame>>,
    /// The scope its samples were allocated in (`None`: outside every
    /// scope), for views that filter or group by scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopePath>,
    /// The estimates for this stack.
    #[serde(flatten)]
    pub estimates: Estimates,
    /// How far `inuse_bytes` may be from the truth: the live samples it
    /// was estimated from and their variance.
    #[serde(default)]
    pub inuse_error: Uncertainty,
}

impl StackProfile {
    /// The estimate a [`Kind`] names.
    pub fn value(&self, kind: Kind) -> f64 {
        self.estimates.get(kind)
    }

    /// Function names root first, joined by `;`: the folded-stack key, which
    /// also identifies the stack across processes (addresses do not).
    pub fn folded_key(&self) -> String {
        folded_key_of(&self.frames)
    }

    /// Where the stack enters the program's own code (see [`program_site`]).
    pub fn site(&self) -> String {
        program_site(&self.frames)
    }

    /// Whether any frame's function contains `pattern`.
    pub fn mentions(&self, pattern: &str) -> bool {
        self.frames.iter().any(|f| f.function.contains(pattern))
    }
}

/// An owned picture of the heap profile at one moment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// The global sampling rate then (bytes; 0 off, 1 every allocation).
    pub rate: u64,
    /// Sums over all stacks.
    pub totals: Estimates,
    /// The sampler's counters then, drops included.
    pub counters: SamplerCounters,
    /// Per-stack estimates, largest in-use bytes first.
    pub stacks: Vec<StackProfile>,
}

/// Takes a snapshot of the heap profile, its stacks led by the program's
/// code ([`Trim::Allocation`]).
///
/// Symbolizes stacks not seen before (slow the first time, cached after).
/// Allocations made while taking it are not sampled.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();
///
/// #[inline(never)]
/// fn make_buffer() -> Vec<u8> {
///     vec![0; 1 << 20]
/// }
///
/// fn main() {
///     let previous = memprof::set_thread_rate(Some(1)); // record exactly
///     let buffer = make_buffer();
///     memprof::set_thread_rate(previous);
///
///     let snapshot = memprof::snapshot();
///     let top = snapshot.top(1, memprof::Kind::InuseSpace)[0];
///     assert!(top.estimates.inuse_bytes >= (1 << 20) as f64);
///     println!("{} bytes at {}", top.estimates.inuse_bytes, top.site());
///     drop(buffer);
/// }
/// ```
pub fn snapshot() -> Snapshot {
    snapshot_with(Trim::default())
}

/// Takes a snapshot of the heap profile with `trim` deciding how much of
/// each stack's leaf end is left out: [`Trim::None`] keeps the allocator
/// shim and the standard library's allocation frames.
pub fn snapshot_with(trim: Trim) -> Snapshot {
    crate::thread_state::unsampled(|| take(trim))
}

fn take(trim: Trim) -> Snapshot {
    let ids = STACKS.id_limit();
    let errors = inuse_errors();
    let mut merged = Merged::with_capacity(ids as usize);
    let mut reader = Reader::default();
    let mut symbolizer = Symbolizer::lock();
    for id in 0..ids {
        let (Some(counters), Some(addresses)) = (STACKS.counters(id), STACKS.frames(id)) else {
            continue;
        };
        if counters.alloc_objects <= 0.0 {
            continue;
        }
        reader.read(&mut symbolizer, id, addresses, trim);
        let stack = merged.entry(&reader);
        stack.estimates += Estimates::from(counters);
        if let Some(&error) = errors.get(&id) {
            stack.inuse_error += error;
        }
    }
    drop(symbolizer);
    let mut stacks = merged.into_stacks();
    sort_by(&mut stacks, Kind::InuseSpace);
    let totals = stacks.iter().map(|s| s.estimates).sum();
    Snapshot {
        taken_at_unix_ms: unix_ms(),
        rate: crate::sample::rate::rate(),
        totals,
        counters: super::counters(),
        stacks,
    }
}

/// The uncertainty of each stack's in-use bytes, from the live samples.
/// Empty in exact mode, where every weight is 1 and nothing is estimated
/// (and the live table may hold millions of samples).
fn inuse_errors() -> HashMap<u32, Uncertainty, AddressHash> {
    let mut errors: HashMap<u32, Uncertainty, AddressHash> = HashMap::default();
    if crate::sample::rate::rate() <= 1 {
        return errors;
    }
    let mut live = Vec::new();
    crate::sample::LIVE.copy_into(&mut live);
    for sample in &live {
        errors
            .entry(sample.stack)
            .or_default()
            .add_sample(sample.size, sample.weight);
    }
    errors
}

/// The frames of stack `id` (its return `addresses`) as a snapshot shows
/// them: symbolized, trimmed as `trim` says, markers turned into frames
/// (see [`Reader::read`]).
pub(crate) fn symbolized_frames(
    symbolizer: &mut Symbolizer,
    id: u32,
    addresses: &[usize],
    trim: Trim,
) -> Vec<Arc<Frame>> {
    let mut reader = Reader::default();
    reader.read(symbolizer, id, addresses, trim);
    reader.frames()
}

fn sort_by(stacks: &mut [StackProfile], kind: Kind) {
    stacks.sort_by(|a, b| b.value(kind).total_cmp(&a.value(kind)));
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Snapshot {
    /// The `n` stacks with the largest value of `kind`, largest first.
    pub fn top(&self, n: usize, kind: Kind) -> Vec<&StackProfile> {
        let mut all: Vec<&StackProfile> =
            self.stacks.iter().filter(|s| s.value(kind) > 0.0).collect();
        all.sort_by(|a, b| b.value(kind).total_cmp(&a.value(kind)));
        all.truncate(n);
        all
    }

    /// The stacks `filter` keeps (see [`ScopeFilter`] for the rule), with
    /// totals summed over them: one scope's profile.
    pub fn scoped(&self, filter: &ScopeFilter) -> Snapshot {
        let stacks: Vec<StackProfile> = self
            .stacks
            .iter()
            .filter(|s| filter.matches(s.scope.as_ref()))
            .cloned()
            .collect();
        Snapshot {
            taken_at_unix_ms: self.taken_at_unix_ms,
            rate: self.rate,
            totals: stacks.iter().map(|s| s.estimates).sum(),
            counters: self.counters,
            stacks,
        }
    }

    /// Writes folded stacks (`root;...;leaf value`, one per line), the input
    /// of inferno and Brendan Gregg's flamegraph.pl. Values are rounded;
    /// stacks that round to zero are left out.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
    pub fn write_folded<W: Write>(&self, mut out: W, kind: Kind) -> io::Result<()> {
        for line in self.lines(kind) {
            line.write(&mut out)?;
        }
        Ok(())
    }

    /// Writes the stacks of [`Snapshot::write_folded`] sorted as inferno
    /// and flamegraph.pl sort folded lines before merging them (by their
    /// bytes), stacks written the same merged into one line with the sum
    /// of their values, so a renderer told the input is sorted can skip
    /// its own sort. Comparing frames root first, and by identity before
    /// by name, costs far less than sorting the written lines, whose long
    /// shared prefixes made that sort a fifth of a flamegraph request.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
    pub fn write_folded_sorted<W: Write>(&self, mut out: W, kind: Kind) -> io::Result<()> {
        for line in self.sorted_lines(kind) {
            line.write(&mut out)?;
        }
        Ok(())
    }

    /// Writes the lines of [`Snapshot::write_folded_sorted`] cut below the
    /// frames a flamegraph drops (narrower than inferno's `min_width`), so
    /// the renderer need not read what it would not draw (see
    /// `folded::cut_narrow`).
    #[cfg(feature = "export")]
    pub(crate) fn write_folded_visible<W: Write>(
        &self,
        mut out: W,
        kind: Kind,
        min_width: f64,
    ) -> io::Result<()> {
        for line in folded::cut_narrow(&self.sorted_lines(kind), min_width) {
            line.write(&mut out)?;
        }
        Ok(())
    }

    /// Writes `key before after` lines from `before` to this snapshot, the
    /// input of inferno's differential flamegraph, sorted and cut as
    /// [`Snapshot::write_folded_visible`] cuts them (by this snapshot's
    /// values, which size the picture).
    #[cfg(feature = "export")]
    pub(crate) fn write_differential_visible<W: Write>(
        &self,
        before: &Snapshot,
        mut out: W,
        kind: Kind,
        min_width: f64,
    ) -> io::Result<()> {
        let paired = folded::pair(&before.sorted_lines(kind), &self.sorted_lines(kind));
        for line in folded::cut_narrow(&paired, min_width) {
            line.write(&mut out)?;
        }
        Ok(())
    }

    /// The stacks with a rounded value of `kind` of at least 1, with that
    /// value, in snapshot order.
    fn lines(&self, kind: Kind) -> impl Iterator<Item = Line<'_>> {
        self.stacks
            .iter()
            .map(move |s| (s, s.value(kind).round()))
            .filter(|&(_, value)| value >= 1.0)
            .map(|(s, value)| Line::new(&s.frames, value as u64))
    }

    /// [`Snapshot::lines`], sorted and merged by `folded::sort_and_merge`.
    fn sorted_lines(&self, kind: Kind) -> Vec<Line<'_>> {
        let mut lines: Vec<Line<'_>> = self.lines(kind).collect();
        folded::sort_and_merge(&mut lines);
        lines
    }

    /// Keeps only stacks some frame of which contains one of `include` (all
    /// stacks when empty) and none of `exclude`, and recomputes the totals.
    pub fn filter(&self, include: &[&str], exclude: &[&str]) -> Snapshot {
        let stacks: Vec<StackProfile> = self
            .stacks
            .iter()
            .filter(|s| include.is_empty() || include.iter().any(|p| s.mentions(p)))
            .filter(|s| !exclude.iter().any(|p| s.mentions(p)))
            .cloned()
            .collect();
        let totals = stacks.iter().map(|s| s.estimates).sum();
        Snapshot {
            stacks,
            totals,
            ..self.clone_header()
        }
    }

    fn clone_header(&self) -> Snapshot {
        Snapshot {
            taken_at_unix_ms: self.taken_at_unix_ms,
            rate: self.rate,
            totals: self.totals,
            counters: self.counters,
            stacks: Vec::new(),
        }
    }

    /// Writes the snapshot as JSON, to compare runs later.
    ///
    /// # Errors
    ///
    /// Returns the error `out` returns when a write fails.
    pub fn save<W: Write>(&self, out: W) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::other)
    }

    /// Reads a snapshot written by [`Snapshot::save`].
    ///
    /// # Errors
    ///
    /// Returns the error `input` returns when a read fails, and an
    /// `InvalidData` error when the text is not a snapshot written by `save`.
    pub fn load<R: io::Read>(input: R) -> io::Result<Snapshot> {
        serde_json::from_reader(input).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Fixtures for tests across the crate.
#[cfg(test)]
impl Snapshot {
    /// A snapshot of `stacks` taken at `taken_at_unix_ms`, rate 1, with
    /// totals summed from the stacks.
    pub(crate) fn of_stacks(taken_at_unix_ms: u64, stacks: Vec<StackProfile>) -> Snapshot {
        Snapshot {
            taken_at_unix_ms,
            rate: 1,
            totals: stacks.iter().map(|s| s.estimates).sum(),
            counters: Default::default(),
            stacks,
        }
    }
}

#[cfg(test)]
impl StackProfile {
    /// A stack of `frames` (leaf first) with only `alloc_objects` set.
    pub(crate) fn allocated(frames: Vec<Arc<Frame>>, alloc_objects: f64) -> StackProfile {
        StackProfile {
            frames,
            scope: None,
            estimates: Estimates {
                alloc_objects,
                ..Estimates::default()
            },
            inuse_error: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> Arc<Frame> {
        Frame::named(function)
    }

    #[test]
    fn folded_lines_are_the_key_and_the_rounded_value() {
        let stack = StackProfile::allocated;
        let snapshot = Snapshot::of_stacks(
            0,
            vec![
                stack(vec![frame("a;b"), frame("main")], 2.6),
                stack(vec![frame("gone")], 0.4),
                stack(vec![], 7.0),
            ],
        );
        let mut out = Vec::new();
        snapshot.write_folded(&mut out, Kind::AllocObjects).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "main;a,b 3\n[unknown] 7\n");
    }

    /// Stacks whose order turns on the hard cases: one name the start of
    /// another (`foo` before `foo::bar` or after `foo:x`), a stack the start
    /// of another, a `;` written as `,`, shared frames by identity and equal
    /// names in distinct frames, and a stack with no frames.
    fn awkward_stacks() -> Snapshot {
        let main = frame("main");
        let stack = |frames: Vec<Arc<Frame>>, n: f64| StackProfile::allocated(frames, n);
        Snapshot::of_stacks(
            0,
            vec![
                stack(vec![frame("foo"), main.clone()], 1.0),
                stack(vec![frame("x"), frame("foo::bar"), main.clone()], 2.0),
                stack(vec![frame("x"), frame("foo"), main.clone()], 3.0),
                stack(vec![frame("foo:x"), main.clone()], 4.0),
                stack(vec![frame("f<[u8; 2]>"), frame("main")], 5.0),
                stack(vec![frame("f<[u8, 2]>"), frame("a"), main.clone()], 6.0),
                stack(vec![main.clone()], 8.0),
                stack(vec![frame("zed")], 9.0),
                stack(vec![], 10.0),
                stack(vec![frame("A"), main], 11.0),
            ],
        )
    }

    #[test]
    fn sorted_folded_lines_are_in_byte_order_of_their_keys() {
        let snapshot = awkward_stacks();
        let mut sorted = Vec::new();
        snapshot
            .write_folded_sorted(&mut sorted, Kind::AllocObjects)
            .unwrap();
        let sorted = String::from_utf8(sorted).unwrap();
        let mut plain = Vec::new();
        snapshot
            .write_folded(&mut plain, Kind::AllocObjects)
            .unwrap();
        let plain = String::from_utf8(plain).unwrap();
        let mut expected: Vec<&str> = plain.lines().collect();
        // What inferno does before merging: sort the lines by their bytes.
        // No two keys here are equal, so the values never decide.
        expected.sort_unstable();
        assert_eq!(sorted.lines().collect::<Vec<_>>(), expected);
        assert!(expected.len() == 10 && expected[0].starts_with("[unknown] "));
    }
}
