//! SVG flamegraphs, rendered by inferno, with its built-in search and
//! click-to-zoom script.
//!
//! Boxes show names with short generic arguments and titles the full
//! names (see `export/short_names.rs`).
//!
//! Frames are coloured by a hash of their function name (the same function
//! keeps its colour across reloads), in flamegraph.pl's `mem` palette. A
//! differential flamegraph is sized by the newer profile and coloured red
//! where a stack grew and blue where it shrank, as in Brendan Gregg's
//! `difffolded.pl`.

use std::borrow::Cow;
use std::io::{self, Write};

use inferno::flamegraph::color::{BasicPalette, Palette};

use super::short_names::show_short_names;
use crate::profile::{Kind, Snapshot};

/// How a flamegraph looks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FlamegraphOptions {
    /// The title at the top.
    pub title: String,
    /// A line under the title, if any.
    pub subtitle: Option<String>,
    /// What the values count (`bytes`, `objects`), shown on hover.
    pub count_name: String,
    /// Image width in pixels (inferno's default, 1200, if `None`).
    pub width: Option<usize>,
    /// Frames narrower than this, in percent of the image's width (the
    /// frame's share of the total), are left out: inferno's `min_width`
    /// (its command line's `--minwidth`). The default, 0.1, is about 1.2
    /// pixels of a 1200-pixel image.
    pub min_width: f64,
}

impl FlamegraphOptions {
    /// Defaults for a view of `kind`: its name as the title, its unit.
    pub fn for_kind(kind: Kind) -> FlamegraphOptions {
        FlamegraphOptions {
            title: format!("memprof {}", kind.name()),
            subtitle: None,
            count_name: match kind.unit() {
                "bytes" => "bytes".to_string(),
                _ => "objects".to_string(),
            },
            width: None,
            min_width: 0.1,
        }
    }

    fn inferno(&self) -> inferno::flamegraph::Options<'static> {
        let mut o = inferno::flamegraph::Options::default();
        o.title.clone_from(&self.title);
        o.subtitle.clone_from(&self.subtitle);
        o.count_name.clone_from(&self.count_name);
        o.image_width = self.width;
        o.min_width = self.min_width;
        o.colors = Palette::Basic(BasicPalette::Mem);
        o.hash = true;
        o.deterministic = true;
        o
    }
}

/// Writes a flamegraph of `kind` over the snapshot's stacks. A snapshot
/// with nothing to show gives a small SVG saying so.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails, or inferno's error
/// when it rejects the folded stacks.
pub fn write_flamegraph<W: Write>(
    snapshot: &Snapshot,
    kind: Kind,
    options: &FlamegraphOptions,
    out: W,
) -> io::Result<()> {
    let mut folded = Vec::new();
    snapshot.write_folded_visible(&mut folded, kind, options.min_width)?;
    render(&folded, Order::Sorted, options, out)
}

/// Writes a differential flamegraph of `kind` from `before` to `after`:
/// stacks are paired by their folded keys (`key before after` lines, as
/// inferno's `differential` module pairs folded text), cut below the frames
/// too narrow to draw, and rendered sized by `after`.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails, or inferno's error
/// when it rejects the folded stacks.
pub fn write_differential_flamegraph<W: Write>(
    before: &Snapshot,
    after: &Snapshot,
    kind: Kind,
    options: &FlamegraphOptions,
    out: W,
) -> io::Result<()> {
    let mut paired = Vec::new();
    after.write_differential_visible(before, &mut paired, kind, options.min_width)?;
    render(&paired, Order::Sorted, options, out)
}

/// Renders folded stacks (`root;...;leaf count` lines, or the two-count
/// lines of a differential profile) as an SVG flamegraph.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails, or inferno's error
/// when it rejects the folded stacks.
pub fn write_folded_flamegraph<W: Write>(
    folded: &[u8],
    options: &FlamegraphOptions,
    out: W,
) -> io::Result<()> {
    render(folded, Order::Any, options, out)
}

/// Whether folded lines come sorted already (see
/// [`Snapshot::write_folded_sorted`]).
#[derive(Clone, Copy, PartialEq)]
enum Order {
    Sorted,
    Any,
}

fn render<W: Write>(
    folded: &[u8],
    order: Order,
    options: &FlamegraphOptions,
    mut out: W,
) -> io::Result<()> {
    // Checked, not converted: folded stacks are UTF-8 unless a caller's
    // input is not, and only then is a lossy copy worth making.
    let text = match std::str::from_utf8(folded) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(folded),
    };
    // inferno refuses input whose last column (the count that sizes the
    // picture; a differential's "after") is nowhere positive: say "empty"
    // instead. A differential to a profile where everything was freed is
    // such input.
    let has_counts = text.lines().any(|line| {
        line.rsplit(' ')
            .next()
            .is_some_and(|count| count.parse::<u64>().is_ok_and(|c| c > 0))
    });
    if !has_counts {
        return write_empty(options, out);
    }
    let mut opts = options.inferno();
    opts.no_sort = order == Order::Sorted;
    let mut svg = Vec::new();
    match inferno::flamegraph::from_lines(&mut opts, text.lines(), &mut svg) {
        // Told the lines are sorted, inferno checks that they are before it
        // writes anything. A name containing a space can sort differently
        // frame by frame than in its line (see `folded_order`): let inferno
        // sort them after all.
        Err(e) if opts.no_sort && e.kind() == io::ErrorKind::InvalidData => {
            opts.no_sort = false;
            svg.clear();
            inferno::flamegraph::from_lines(&mut opts, text.lines(), &mut svg)?;
        }
        rendered => rendered?,
    }
    match std::str::from_utf8(&svg) {
        Ok(svg) => out.write_all(show_short_names(svg).as_bytes())?,
        Err(_) => out.write_all(&svg)?,
    }
    out.flush()
}

/// Text escaped for an SVG element or attribute.
fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A valid SVG with the title, "no allocations sampled" and the subtitle
/// (which may say why).
fn write_empty<W: Write>(options: &FlamegraphOptions, mut out: W) -> io::Result<()> {
    let width = options.width.unwrap_or(1200);
    let title = escape_xml(&options.title);
    let (height, subtitle) = match &options.subtitle {
        Some(subtitle) => (
            100,
            format!(
                "<text x=\"{x}\" y=\"84\" text-anchor=\"middle\" font-family=\"Verdana\" \
                 font-size=\"12\">{}</text>\n",
                escape_xml(subtitle),
                x = width / 2
            ),
        ),
        None => (80, String::new()),
    };
    write!(
        out,
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n\
         <text x=\"{x}\" y=\"24\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{title}</text>\n\
         <text x=\"{x}\" y=\"56\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"12\">\
         No allocations sampled for this view.</text>\n{subtitle}</svg>\n",
        x = width / 2
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(folded: &str) -> String {
        let mut svg = Vec::new();
        let options = FlamegraphOptions::for_kind(Kind::InuseSpace);
        write_folded_flamegraph(folded.as_bytes(), &options, &mut svg).unwrap();
        String::from_utf8(svg).unwrap()
    }

    #[test]
    fn renders_frames_with_search_and_zoom() {
        let svg = render("main;alloc_big 1000\nmain;<impl Foo for [u8, 4]>::grow 10\n");
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("alloc_big"));
        assert!(svg.contains("&lt;impl Foo for [u8, 4]&gt;::grow"));
        assert!(svg.contains("memprof inuse_space"));
        assert!(
            svg.contains("function search("),
            "search script is built in"
        );
        assert!(svg.contains("function zoom("), "zoom script is built in");
    }

    /// The SVG inferno draws from the snapshot's plain folded lines (in
    /// snapshot order), sorting and dropping narrow frames by itself.
    fn drawn_by_inferno_alone(snapshot: &Snapshot, options: &FlamegraphOptions) -> String {
        let mut folded = Vec::new();
        snapshot
            .write_folded(&mut folded, Kind::AllocObjects)
            .unwrap();
        let mut svg = Vec::new();
        write_folded_flamegraph(&folded, options, &mut svg).unwrap();
        String::from_utf8(svg).unwrap()
    }

    /// The snapshot path hands inferno lines it sorted itself and tells it
    /// not to sort; the picture must be the one inferno draws from the same
    /// lines in any order.
    #[test]
    fn snapshot_flamegraph_is_the_one_inferno_sorts_itself() {
        let frame = |name: &str| crate::stack::Frame::named(name);
        let main = frame("main");
        let stacks = [
            vec![frame("b"), frame("x"), main.clone()],
            vec![frame("a"), frame("x"), main.clone()],
            vec![frame("c"), frame("foo::bar"), main.clone()],
            vec![frame("c"), frame("foo"), main.clone()],
            vec![frame("a"), frame("x"), frame("main")],
            vec![main],
        ];
        // The two `main;x;a` stacks, 9 then 10, would be out of order as
        // text (`a 9` sorts after `a 10`) if they were not merged.
        let values = [10.0, 9.0, 12.0, 13.0, 10.0, 15.0];
        let snapshot = Snapshot::of_stacks(
            0,
            stacks
                .into_iter()
                .zip(values)
                .map(|(frames, n)| crate::profile::StackProfile::allocated(frames, n))
                .collect(),
        );
        let mut sorted = Vec::new();
        snapshot
            .write_folded_sorted(&mut sorted, Kind::AllocObjects)
            .unwrap();
        assert_eq!(
            String::from_utf8(sorted).unwrap(),
            "main 15\nmain;foo::bar;c 12\nmain;foo;c 13\nmain;x;a 19\nmain;x;b 10\n"
        );
        let options = FlamegraphOptions::for_kind(Kind::AllocObjects);
        let mut fast = Vec::new();
        write_flamegraph(&snapshot, Kind::AllocObjects, &options, &mut fast).unwrap();
        let fast = String::from_utf8(fast).unwrap();
        assert_eq!(fast, drawn_by_inferno_alone(&snapshot, &options));
        // Merged: one `x` under `main`, holding both `a` stacks.
        assert_eq!(fast.matches("<title>x (").count(), 1);
        assert!(fast.contains("<title>a (19 objects"), "{fast}");
    }

    /// Frames inferno would drop are cut before it reads them; what it
    /// draws must not change. A wide stack, and 400 narrow ones under
    /// shared and unshared roots, a few deep.
    #[test]
    fn cutting_narrow_frames_leaves_the_picture_as_it_was() {
        let frame = |name: String| crate::stack::Frame::named(name);
        let main = frame("main".into());
        let mut stacks = vec![crate::profile::StackProfile::allocated(
            vec![frame("big".into()), main.clone()],
            100_000.0,
        )];
        for i in 0..400 {
            let mut frames: Vec<_> = (0..i % 7).map(|d| frame(format!("f{d}"))).collect();
            frames.push(frame(format!("leaf{}", i % 13)));
            frames.push(frame(format!("mid{}", i % 3)));
            frames.push(if i % 5 == 0 {
                frame(format!("root{i}"))
            } else {
                main.clone()
            });
            stacks.push(crate::profile::StackProfile::allocated(
                frames,
                (1 + i % 40) as f64,
            ));
        }
        let snapshot = Snapshot::of_stacks(0, stacks);
        let options = FlamegraphOptions::for_kind(Kind::AllocObjects);
        let mut cut = Vec::new();
        write_flamegraph(&snapshot, Kind::AllocObjects, &options, &mut cut).unwrap();
        let cut = String::from_utf8(cut).unwrap();
        assert!(cut == drawn_by_inferno_alone(&snapshot, &options));
        let mut folded = Vec::new();
        snapshot
            .write_folded(&mut folded, Kind::AllocObjects)
            .unwrap();
        // Some frames were narrow enough to cut, some narrow ones stayed.
        let mut visible = Vec::new();
        snapshot
            .write_folded_visible(&mut visible, Kind::AllocObjects, options.min_width)
            .unwrap();
        let lines = |text: &[u8]| text.iter().filter(|&&c| c == b'\n').count();
        assert!(lines(&visible) < lines(&folded) && visible.len() < folded.len());
        assert!(String::from_utf8_lossy(&visible).contains(";[narrow] "));
        assert!(cut.contains("<title>mid1 (") && !cut.contains("<title>f3 ("));
    }

    /// The differential view pairs, sorts and cuts lines itself; the
    /// picture, colours included, must be the one inferno draws from both
    /// profiles' whole folded text: stacks that grew, shrank, appeared and
    /// vanished, wide and narrow, and the largest change under a frame too
    /// narrow to draw.
    #[test]
    fn differential_flamegraph_is_the_one_inferno_pairs_itself() {
        let frame = |name: String| crate::stack::Frame::named(name);
        let main = frame("main".into());
        let profile = |stacks: Vec<(Vec<String>, f64)>| {
            Snapshot::of_stacks(
                0,
                stacks
                    .into_iter()
                    .map(|(names, n)| {
                        let mut frames: Vec<_> = names.into_iter().rev().map(frame).collect();
                        frames.push(main.clone());
                        crate::profile::StackProfile::allocated(frames, n)
                    })
                    .collect(),
            )
        };
        let path = |p: &str| p.split(';').map(str::to_string).collect::<Vec<_>>();
        let mut before = vec![
            (path("big;grows"), 50_000.0),
            (path("big;shrinks"), 40_000.0),
            (path("gone"), 5_000.0),
            // The largest change, under frames too narrow to draw after.
            (path("tiny;deep;vanishing"), 90_000.0),
        ];
        let mut after = vec![
            (path("big;grows"), 80_000.0),
            (path("big;shrinks"), 10_000.0),
            (path("new"), 20_000.0),
            (path("tiny;deep;vanishing"), 3.0),
        ];
        for i in 0..200 {
            let narrow = path(&format!("narrow{:03};leaf{}", i % 50, i % 7));
            before.push((narrow.clone(), (i % 9) as f64));
            after.push((narrow, (i % 11) as f64));
        }
        let (before, after) = (profile(before), profile(after));
        let options = FlamegraphOptions::for_kind(Kind::AllocObjects);
        let mut cut = Vec::new();
        write_differential_flamegraph(&before, &after, Kind::AllocObjects, &options, &mut cut)
            .unwrap();
        let (mut folded_before, mut folded_after) = (Vec::new(), Vec::new());
        before
            .write_folded(&mut folded_before, Kind::AllocObjects)
            .unwrap();
        after
            .write_folded(&mut folded_after, Kind::AllocObjects)
            .unwrap();
        let mut paired = Vec::new();
        inferno::differential::from_readers(
            inferno::differential::Options::default(),
            &folded_before[..],
            &folded_after[..],
            &mut paired,
        )
        .unwrap();
        let mut whole = Vec::new();
        write_folded_flamegraph(&paired, &options, &mut whole).unwrap();
        let cut = String::from_utf8(cut).unwrap();
        assert!(cut == String::from_utf8(whole).unwrap());
        assert!(cut.contains("<title>grows (") && !cut.contains("<title>vanishing ("));
        let mut lines = Vec::new();
        after
            .write_differential_visible(&before, &mut lines, Kind::AllocObjects, options.min_width)
            .unwrap();
        let lines = String::from_utf8(lines).unwrap();
        assert!(lines.contains("[narrow] 89997 0\n"), "{lines}");
    }

    /// Lines said to be sorted that are not (a name with a space can do
    /// that, see `folded_order`) are sorted by inferno after all.
    #[test]
    fn unsorted_lines_said_sorted_still_render() {
        let options = FlamegraphOptions::for_kind(Kind::InuseSpace);
        let folded = b"main;b 1\nmain;a 2\n";
        let (mut said, mut sorted) = (Vec::new(), Vec::new());
        super::render(folded, Order::Sorted, &options, &mut said).unwrap();
        super::render(folded, Order::Any, &options, &mut sorted).unwrap();
        assert!(said == sorted && !said.is_empty());
    }

    #[test]
    fn boxes_show_short_generics_and_titles_the_full_name() {
        let full = "std::collections::hash::map::HashMap<alloc::string::String, \
                    alloc::vec::Vec<u8>>::insert";
        let svg = render(&format!("main;{full} 1000\nmain;small 10\n"));
        let escaped = |s: &str| s.replace('<', "&lt;").replace('>', "&gt;");
        let short = escaped("std::collections::hash::map::HashMap<String, Vec<u8>>::insert");
        assert!(
            svg.contains(&format!("<title>{} (1,000 bytes", escaped(full))),
            "the title keeps the full name"
        );
        assert!(
            svg.contains(&format!("<g data-label=\"{short}\"><title>")),
            "the box carries its short label"
        );
        assert!(
            svg.contains(&format!(">{short}</text>")),
            "the box is drawn with its short name"
        );
        assert_eq!(
            svg.matches(r#"find_child(e, "title").textContent.replace"#)
                .count(),
            1,
            "the script draws boxes from their labels, the title only without one"
        );
        assert_eq!(svg.matches("frame_label(e)").count(), 3, "reader + 2 uses");
        assert!(svg.contains("<g><title>small (10 bytes"), "{svg}");
    }

    #[test]
    fn empty_profile_gives_a_valid_svg() {
        for input in ["", "main;a 0\n", "main;a 0 0\n"] {
            let svg = render(input);
            assert!(svg.contains("No allocations sampled"), "{input:?}");
            assert!(svg.trim_end().ends_with("</svg>"));
        }
    }

    #[test]
    fn differential_to_nothing_left_gives_a_valid_svg() {
        let svg = render("main;gone 10 0\nmain;also 5 0\n");
        assert!(svg.contains("No allocations sampled"), "{svg}");
    }

    #[test]
    fn differential_colours_growth() {
        let svg = render("main;grew 10 100\nmain;shrank 100 10\n");
        assert!(svg.contains("grew") && svg.contains("shrank"));
        let title = |name: &str| {
            let start = svg.find(&format!("<title>{name} (")).unwrap();
            svg[start..start + svg[start..].find("</title>").unwrap()].to_string()
        };
        assert!(title("grew").contains("; +"), "{}", title("grew"));
        assert!(title("shrank").contains("; -"), "{}", title("shrank"));
    }
}
