//! Folded stacks, `root;...;leaf value` one per line: the input of inferno
//! and Brendan Gregg's flamegraph.pl. How a stack's key is written, the
//! order renderers sort keys in, and which frames a flamegraph will draw.

use std::cmp::Ordering;
use std::io::{self, Write};
use std::sync::Arc;

use crate::stack::Frame;

/// The folded-stack key of leaf-first `frames` (see
/// [`StackProfile::folded_key`](super::StackProfile::folded_key)).
pub(crate) fn folded_key_of(frames: &[Arc<Frame>]) -> String {
    let mut key = Vec::with_capacity(frames.iter().map(|f| f.function.len() + 1).sum());
    // Writing to a Vec cannot fail, and only whole `str`s are written.
    let _ = write_folded_key(frames, &mut key);
    String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes the folded key of `frames` (root first, `;` between frames) to
/// `out`, straight from the frames' names: a `String` built and formatted
/// per stack is a visible share of a large flamegraph request (the figure
/// is in `benches/peers/RESULTS.md`, "Figures behind the code's choices").
fn write_folded_key<W: Write>(frames: &[Arc<Frame>], out: &mut W) -> io::Result<()> {
    if is_unknown(frames) {
        return out.write_all(b"[unknown]");
    }
    for (i, frame) in frames.iter().rev().enumerate() {
        if i > 0 {
            out.write_all(b";")?;
        }
        // `;` separates frames in the folded format; array types such
        // as `[u8; 4]` must not split a frame in two.
        if frame.function.contains(';') {
            out.write_all(frame.function.replace(';', ",").as_bytes())?;
        } else {
            out.write_all(frame.function.as_bytes())?;
        }
    }
    Ok(())
}

/// Compares two leaf-first stacks as their folded keys compare byte by
/// byte, a key ending in the space before its value: frame by frame from
/// the root, and a frame's name (as written, `;` as `,`) with the separator
/// after it. Shared frames are skipped by identity without reading names.
/// (A name containing a space can order differently from the written line,
/// whose value then takes part. inferno's check of sorted input catches
/// that, and the flamegraph view then lets inferno sort.)
pub(super) fn folded_order(a: &[Arc<Frame>], b: &[Arc<Frame>]) -> Ordering {
    /// A name's bytes as written, then the separator after it.
    fn written(name: &str, more: bool) -> impl Iterator<Item = u8> + '_ {
        let separator = if more { b';' } else { b' ' };
        name.bytes()
            .map(|c| if c == b';' { b',' } else { c })
            .chain(core::iter::once(separator))
    }
    /// The same order, by `memcmp`, for names without a `;`.
    fn plain(x: &[u8], more_x: bool, y: &[u8], more_y: bool) -> Ordering {
        let n = x.len().min(y.len());
        let after = |name: &[u8], more: bool| match name.get(n) {
            Some(&c) => c,
            None if more => b';',
            None => b' ',
        };
        x[..n]
            .cmp(&y[..n])
            .then_with(|| after(x, more_x).cmp(&after(y, more_y)))
    }
    if is_unknown(a) || is_unknown(b) {
        // Rare (a stack with no frames): compare what is written.
        return folded_key_of(a).cmp(&folded_key_of(b));
    }
    // The first frame, from the root, that the keys write differently.
    let depth = shared_depth(a, b) + 1;
    if depth > a.len().min(b.len()) {
        // One key is the other's start: it ends in a space where the other
        // goes on with a `;`.
        return a.len().cmp(&b.len());
    }
    let (x, y) = (&a[a.len() - depth], &b[b.len() - depth]);
    let (more_x, more_y) = (depth < a.len(), depth < b.len());
    if x.function.contains(';') || y.function.contains(';') {
        written(&x.function, more_x).cmp(written(&y.function, more_y))
    } else {
        plain(x.function.as_bytes(), more_x, y.function.as_bytes(), more_y)
    }
}

/// Whether `frames` are written as `[unknown]`.
fn is_unknown(frames: &[Arc<Frame>]) -> bool {
    frames.is_empty() || (frames.len() == 1 && frames[0].function.is_empty())
}

/// One folded line before it is written: a stack, its value and, in a
/// differential profile, its value before.
#[derive(Clone, Copy, Debug)]
pub(super) struct Line<'a> {
    /// The frames written, leaf first.
    pub(super) frames: &'a [Arc<Frame>],
    /// The value before, written first, for inferno's differential
    /// flamegraph (`key before after`).
    pub(super) before: Option<u64>,
    pub(super) value: u64,
    /// Whether frames below `frames` were cut (written as one [`CUT`]
    /// frame; see [`cut_narrow`]).
    pub(super) cut: bool,
}

impl<'a> Line<'a> {
    pub(super) fn new(frames: &'a [Arc<Frame>], value: u64) -> Line<'a> {
        Line {
            frames,
            before: None,
            value,
            cut: false,
        }
    }

    /// Writes the line: its key, and its value (after the value before).
    pub(super) fn write<W: Write>(&self, out: &mut W) -> io::Result<()> {
        write_folded_key(self.frames, out)?;
        if self.cut {
            write!(out, ";{CUT}")?;
        }
        if let Some(before) = self.before {
            write!(out, " {before}")?;
        }
        writeln!(out, " {}", self.value)
    }

    /// How far the value moved, as inferno's differential colouring reads it.
    #[cfg(feature = "export")]
    fn delta(&self) -> u64 {
        self.before.map_or(0, |before| before.abs_diff(self.value))
    }
}

/// Sorts one profile's `lines` in [`folded_order`] and merges lines with
/// equal keys, summing their values: distinct stacks can be written the
/// same (two call sites in one function), and inferno, told its input is
/// sorted, checks that each whole line, value included, sorts after the one
/// before, which equal keys with their values in the wrong order would fail.
pub(super) fn sort_and_merge(lines: &mut Vec<Line<'_>>) {
    // Stable and adaptive: already sorted runs cost one comparison a line.
    lines.sort_by(|a, b| folded_order(a.frames, b.frames));
    lines.dedup_by(|later, earlier| {
        let same = folded_order(earlier.frames, later.frames) == Ordering::Equal;
        if same {
            earlier.value += later.value;
        }
        same
    });
}

/// Pairs two profiles' lines (each as [`sort_and_merge`] leaves them) by
/// key into differential lines, `before` from the first and the value from
/// the second (0 where a key is missing), as inferno's `differential`
/// module pairs folded text, without writing and hashing the text.
#[cfg(feature = "export")]
pub(super) fn pair<'a>(before: &[Line<'a>], after: &[Line<'a>]) -> Vec<Line<'a>> {
    let mut paired = Vec::with_capacity(before.len().max(after.len()));
    let (mut b, mut a) = (before.iter().peekable(), after.iter().peekable());
    loop {
        let order = match (b.peek(), a.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => folded_order(x.frames, y.frames),
        };
        let next = match order {
            Ordering::Less => b.next().map(|x| (x.frames, x.value, 0)),
            Ordering::Greater => a.next().map(|y| (y.frames, 0, y.value)),
            Ordering::Equal => b
                .next()
                .zip(a.next())
                .map(|(x, y)| (y.frames, x.value, y.value)),
        };
        let Some((frames, was, now)) = next else {
            break;
        };
        paired.push(Line {
            frames,
            before: Some(was),
            value: now,
            cut: false,
        });
    }
    paired
}

/// The name written in place of the frames below a cut (see
/// [`cut_narrow`]); it is never drawn.
const CUT: &str = "[narrow]";

/// A root frame named [`CUT`], for the zero-width line that carries a
/// differential profile's largest change (see [`cut_narrow`]).
#[cfg(feature = "export")]
fn cut_root() -> &'static [Arc<Frame>] {
    static ROOT: std::sync::OnceLock<Arc<Frame>> = std::sync::OnceLock::new();
    core::slice::from_ref(ROOT.get_or_init(|| Frame::named(CUT)))
}

/// Cuts the frames a flamegraph would leave out from `lines` (as
/// [`sort_and_merge`] or [`pair`] leave them). inferno drops every frame
/// narrower than `min_width` (its option, compared with the frame's share
/// of the total in percent), and so every frame above it. Each line under
/// such a frame is cut after it, the frames below written as one [`CUT`]
/// frame, keeping the line's value: the dropped frame keeps its place and
/// width, so the frames that are drawn keep theirs, the lines stay in the
/// order inferno checks (the cut frame is still followed by a `;`), and
/// the lines under it become one. Most of a large profile is such frames:
/// at 10,000 stacks, rendering spent most of its time on inferno reading
/// 12.9 MB of frames it then dropped.
///
/// In a differential profile inferno colours a frame by the change of the
/// line that ends in it, against the largest change of any line. Lines
/// that end in a frame that is drawn are never cut; a cut line is written
/// with no change, and if the largest change was under a cut, a line of
/// zero width (a `[narrow]` root, never drawn) carries it, so every colour
/// stays as it was.
#[cfg(feature = "export")]
pub(super) fn cut_narrow<'a>(lines: &[Line<'a>], min_width: f64) -> Vec<Line<'a>> {
    let total: u64 = lines.iter().map(|l| l.value).sum();
    // inferno's test, as it computes it (`minwidth_time` in its
    // `flamegraph::from_lines`), so both draw the line in the same place.
    let min_time = min_width / (100.0 / total as f64);
    // How many frames of each line are on the path the previous one took.
    let shared: Vec<usize> = (0..lines.len())
        .map(|i| {
            i.checked_sub(1)
                .map_or(0, |p| shared_depth(lines[p].frames, lines[i].frames))
        })
        .collect();
    // How many frames of each line to keep, root first.
    let mut keep: Vec<usize> = lines.iter().map(|l| written_len(l.frames)).collect();
    // The frames open at the current line, root first: (first line, width).
    let mut open: Vec<(usize, u64)> = Vec::new();
    for i in 0..=lines.len() {
        while open.len() > shared.get(i).copied().unwrap_or(0) {
            let Some((first, width)) = open.pop() else {
                break;
            };
            if (width as f64) < min_time {
                let depth = open.len() + 1;
                for k in &mut keep[first..i] {
                    *k = (*k).min(depth);
                }
            }
        }
        let Some(line) = lines.get(i) else {
            break;
        };
        while open.len() < written_len(line.frames) {
            open.push((i, 0));
        }
        for (_, width) in &mut open {
            *width += line.value;
        }
    }
    let mut cut: Vec<Line<'a>> = Vec::with_capacity(lines.len());
    for (i, (line, k)) in lines.iter().zip(keep).enumerate() {
        if is_unknown(line.frames) || k >= line.frames.len() {
            cut.push(*line);
            continue;
        }
        // Lines under one cut frame are next to each other, and equal.
        match cut.last_mut() {
            Some(last) if last.cut && last.frames.len() == k && shared[i] >= k => {
                last.value += line.value;
            }
            _ => cut.push(Line {
                frames: &line.frames[line.frames.len() - k..],
                cut: true,
                ..*line
            }),
        }
        if let Some(last) = cut.last_mut() {
            last.before = last.before.map(|_| last.value);
        }
    }
    let largest = |lines: &[Line<'_>]| lines.iter().map(Line::delta).max().unwrap_or(0);
    let (was, is) = (largest(lines), largest(&cut));
    if was > is {
        let carrier = Line {
            frames: cut_root(),
            before: Some(was),
            value: 0,
            cut: false,
        };
        let at = cut.partition_point(|l| folded_order(l.frames, carrier.frames) == Ordering::Less);
        cut.insert(at, carrier);
    }
    cut
}

/// How many frames a stack's key is written with.
#[cfg(feature = "export")]
fn written_len(frames: &[Arc<Frame>]) -> usize {
    if is_unknown(frames) {
        1
    } else {
        frames.len()
    }
}

/// How many frames, from the root, two stacks' keys have in common.
fn shared_depth(a: &[Arc<Frame>], b: &[Arc<Frame>]) -> usize {
    if is_unknown(a) || is_unknown(b) {
        return usize::from(is_unknown(a) && is_unknown(b));
    }
    (1..=a.len().min(b.len()))
        .take_while(|&depth| {
            let (x, y) = (&a[a.len() - depth], &b[b.len() - depth]);
            Arc::ptr_eq(x, y) || written_equal(&x.function, &y.function)
        })
        .count()
}

/// Whether two names are written the same (`;` as `,`).
fn written_equal(x: &str, y: &str) -> bool {
    let written = |c: u8| if c == b';' { b',' } else { c };
    x == y
        || (x.len() == y.len()
            && x.bytes()
                .zip(y.bytes())
                .all(|(p, q)| written(p) == written(q)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> Arc<Frame> {
        Frame::named(function)
    }

    #[test]
    fn folded_keys_run_root_first_and_keep_array_types_whole() {
        let frames = [frame("leaf"), frame("<[u8; 4] as Foo>::bar"), frame("main")];
        assert_eq!(folded_key_of(&frames), "main;<[u8, 4] as Foo>::bar;leaf");
        assert_eq!(folded_key_of(&[]), "[unknown]");
        assert_eq!(folded_key_of(&[frame("")]), "[unknown]");
        assert_eq!(folded_key_of(&[frame(""), frame("")]), ";");
    }

    fn cut(stacks: &[Vec<Arc<Frame>>], values: &[u64], min_width: f64) -> String {
        let mut lines: Vec<Line<'_>> = stacks
            .iter()
            .zip(values)
            .map(|(frames, &value)| Line::new(frames, value))
            .collect();
        sort_and_merge(&mut lines);
        let mut out = Vec::new();
        for line in cut_narrow(&lines, min_width) {
            line.write(&mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn narrow_frames_are_cut_below_and_their_values_kept() {
        let (main, wide, leaf) = (frame("main"), frame("wide"), frame("leaf"));
        let stacks: Vec<Vec<Arc<Frame>>> = vec![
            vec![frame("deeper"), frame("x"), frame("a;1"), main.clone()],
            // Written as the one above but for its leaf: shares `a,1`.
            vec![frame("y"), frame("a,1"), main.clone()],
            vec![leaf.clone(), wide.clone(), main.clone()],
            // Equal keys, from distinct frames: merged, values summed.
            vec![frame("leaf"), frame("wide"), frame("main")],
            vec![frame("z"), main.clone()],
            vec![frame("more"), frame("narrow root"), frame("r")],
            vec![frame("other"), frame("narrow root"), frame("r")],
            vec![],
        ];
        let values = [1, 1, 998, 2, 1, 1, 1, 1];
        // Total 1006; 0.1% of it is 1.006: frames of width 1 are cut below
        // (`x`, `z`; `r`, of width 2, stays whole), `a,1` stays whole, and
        // so does `[unknown]`; the lines under `narrow root` become one.
        assert_eq!(
            cut(&stacks, &values, 0.1),
            "[unknown] 1\nmain;a,1;x;[narrow] 1\nmain;a,1;y 1\nmain;wide;leaf 1000\nmain;z 1\nr;narrow root;more 1\nr;narrow root;other 1\n"
        );
        // Nothing is narrow at 0: every line as written, equal keys merged.
        assert_eq!(
            cut(&stacks, &values, 0.0),
            "[unknown] 1\nmain;a,1;x;deeper 1\nmain;a,1;y 1\nmain;wide;leaf 1000\nmain;z 1\nr;narrow root;more 1\nr;narrow root;other 1\n"
        );
        // A wider cut: `narrow root` (width 2 of 1006 is under 0.5%).
        assert_eq!(
            cut(&stacks, &values, 0.5),
            "[unknown] 1\nmain;a,1;[narrow] 2\nmain;wide;leaf 1000\nmain;z 1\nr;[narrow] 2\n"
        );
    }
}
