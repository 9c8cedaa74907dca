//! Short names in flamegraph boxes, full names on hover.
//!
//! Rust function names carry every type argument by its full path:
//! `HashMap<alloc::string::String, alloc::vec::Vec<u8>>::insert` fills a
//! box with module paths before it reaches the part that tells two frames
//! apart. [`short_name`] keeps the function's own path and shortens each
//! path inside `<...>` to its last segment (`HashMap<String, Vec<u8>>::insert`),
//! as a reader would write it.
//!
//! inferno draws a box's text from its `<title>` (the name a search
//! matches, shown on hover), both when it renders and again in its script
//! whenever a box is zoomed or resized. [`show_short_names`] therefore edits
//! the rendered SVG: a box whose name shortens gets a `data-label` with the
//! short name and its text redrawn from it, and the script reads the label
//! before the title. The title keeps the full name, so hovering and search
//! see exactly what pprof and the folded stacks say.

use std::borrow::Cow;

/// `name` with each path inside its generic arguments cut to its last
/// segment; `name` itself when there is nothing to cut.
pub(crate) fn short_name(name: &str) -> Cow<'_, str> {
    if !name.contains('<') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    // Where the path being read began in `out`; a separator moves it on.
    let mut path_start = 0;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => {
                depth += 1;
                out.push(c);
                path_start = out.len();
            }
            // `->` in a closure's signature is not a bracket.
            '>' if !out.ends_with('-') => {
                depth = depth.saturating_sub(1);
                out.push(c);
                path_start = out.len();
            }
            ':' if depth > 0 && chars.peek() == Some(&':') => {
                chars.next();
                let segment = &out[path_start..];
                if !segment.is_empty() && segment.chars().all(is_path_char) {
                    // Drop `segment::`: only the last segment stays.
                    out.truncate(path_start);
                } else {
                    out.push_str("::");
                    path_start = out.len();
                }
            }
            c if is_path_char(c) => out.push(c),
            c => {
                out.push(c);
                path_start = out.len();
            }
        }
    }
    if out == name {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(out)
    }
}

/// Characters of one path segment, closures' `{closure#0}` included.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '{' | '}' | '#' | '$')
}

/// The expression inferno's script reads a box's text from.
const SCRIPT_READS_TITLE: &str = r#"find_child(e, "title").textContent.replace(/\([^(]*\)$/,"")"#;

/// Where the label reader goes: before the first function that uses it.
const SCRIPT_ANCHOR: &str = "function update_text_for_elements(";

/// Reads the short label where there is one, else the title as inferno does.
const SCRIPT_LABEL_READER: &str = "function frame_label(e) {\n    \
     var label = e.getAttribute(\"data-label\");\n    \
     return label !== null ? label : find_child(e, \"title\").textContent.replace(/\\([^(]*\\)$/,\"\");\n\
     }\n";

/// Rewrites inferno's SVG so that boxes show [`short_name`]s while titles
/// keep the full names. An SVG whose script does not read box text the way
/// this expects (another inferno) is returned unchanged: full names
/// everywhere, nothing broken.
pub(crate) fn show_short_names(svg: &str) -> Cow<'_, str> {
    let Some(anchor) = svg.find(SCRIPT_ANCHOR) else {
        return Cow::Borrowed(svg);
    };
    if !svg.contains(SCRIPT_READS_TITLE) {
        return Cow::Borrowed(svg);
    }
    let mut out = String::with_capacity(svg.len() + svg.len() / 16);
    out.push_str(&svg[..anchor].replace(SCRIPT_READS_TITLE, "frame_label(e)"));
    out.push_str(SCRIPT_LABEL_READER);
    let mut rest = &svg[anchor..];
    // The script is one CDATA block before the frames; the frames follow it.
    let script_end = rest.find("]]>").map_or(rest.len(), |i| i + 3);
    out.push_str(&rest[..script_end].replace(SCRIPT_READS_TITLE, "frame_label(e)"));
    rest = &rest[script_end..];
    const BOX: &str = "<g><title>";
    while let Some(at) = rest.find(BOX) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match relabel_box(rest, &mut out) {
            Some(used) => rest = &rest[used..],
            None => {
                out.push_str(BOX);
                rest = &rest[BOX.len()..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Writes one box (`svg` starts at its `<g><title>`) with its short label
/// to `out` and returns how much of `svg` it consumed; `None` when the name
/// does not shorten or the box is not shaped as expected.
fn relabel_box(svg: &str, out: &mut String) -> Option<usize> {
    let title_start = "<g><title>".len();
    let title_end = title_start + svg[title_start..].find("</title>")?;
    let title = &svg[title_start..title_end];
    // The title is `name (value unit, share)`: the name is all before the
    // last parenthesis, as the script reads it.
    let name = unescape(title[..title.rfind('(')?].trim_end());
    let short = short_name(&name);
    if short == name {
        return None;
    }
    let box_end = title_end + svg[title_end..].find("</g>")?;
    let body = &svg[title_end..box_end];
    let text_open = body.find("<text")?;
    let text_start = text_open + body[text_open..].find('>')? + 1;
    let text_end = text_start + body[text_start..].find("</text>")?;
    let drawn = unescape(&body[text_start..text_end]);
    let label = fitted(&short, &name, &drawn);
    out.push_str("<g data-label=\"");
    escape_into(&short, out);
    out.push_str("\"><title>");
    out.push_str(title);
    out.push_str(&body[..text_start]);
    escape_into(&label, out);
    out.push_str(&body[text_end..]);
    Some(box_end)
}

/// The label drawn in a box where inferno drew `drawn` for `name`: the
/// whole short name where inferno had room for the name, else cut to the
/// same number of characters with inferno's `..`.
fn fitted(short: &str, name: &str, drawn: &str) -> String {
    if drawn.is_empty() {
        return String::new();
    }
    let fits = drawn.chars().count();
    if drawn == name || short.chars().count() <= fits {
        return short.to_string();
    }
    let mut cut: String = short.chars().take(fits.saturating_sub(2)).collect();
    cut.push_str("..");
    cut
}

fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_arguments_keep_their_last_segment() {
        let cases = [
            (
                "std::collections::hash::map::HashMap<alloc::string::String, alloc::vec::Vec<u8>>::insert",
                "std::collections::hash::map::HashMap<String, Vec<u8>>::insert",
            ),
            (
                "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop",
                "<Vec<T> as Drop>::drop",
            ),
            (
                "core::ptr::drop_in_place<alloc::boxed::Box<dyn core::any::Any + core::marker::Send>>",
                "core::ptr::drop_in_place<Box<dyn Any + Send>>",
            ),
            (
                "demo::serve::<impl demo::Router<S>>::call::{closure#0}",
                "demo::serve::<impl Router<S>>::call::{closure#0}",
            ),
            (
                "Vec<<I as core::iter::traits::iterator::Iterator>::Item>::push",
                "Vec<<I as Iterator>::Item>::push",
            ),
            (
                "f<fn(alloc::string::String) -> core::option::Option<u8>>",
                "f<fn(String) -> Option<u8>>",
            ),
            ("[u8; 4]::len", "[u8; 4]::len"),
            ("plain::path::function", "plain::path::function"),
        ];
        for (name, short) in cases {
            assert_eq!(short_name(name), short, "{name}");
        }
    }

    #[test]
    fn names_without_generics_are_borrowed() {
        assert!(matches!(short_name("a::b::c"), Cow::Borrowed(_)));
        assert!(matches!(short_name("a::<impl X>::c"), Cow::Borrowed(_)));
    }

    #[test]
    fn labels_are_cut_where_inferno_cut_the_name() {
        let name = "m::HashMap<a::b::String, a::b::Vec<u8>>::insert";
        let short = short_name(name);
        assert_eq!(short, "m::HashMap<String, Vec<u8>>::insert");
        // Room for the whole name: the whole short name.
        assert_eq!(fitted(&short, name, name), short);
        // Room for twelve characters: the short name cut to twelve.
        assert_eq!(fitted(&short, name, "m::HashMap.."), "m::HashMap..");
        assert_eq!(
            fitted(&short, name, "m::HashMap<a::b::St.."),
            "m::HashMap<String, .."
        );
        // No room at all: nothing.
        assert_eq!(fitted(&short, name, ""), "");
    }
}
