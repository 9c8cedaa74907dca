//! Sites: a stack in one line a person reads at a glance, where it enters
//! the program's own code (`parse (parser.rs:42) <- handle <- main`), and
//! labels that tell apart stacks whose sites read the same.

use std::sync::Arc;

use crate::stack::{frame_role, Frame, FrameRole};

/// Where leaf-first `frames` enter the program's own code: the first frame
/// that is not the standard library's, with its file and line, and its two
/// callers (`parse (parser.rs:42) <- handle <- main`), their generic
/// arguments left out (`{closure#0}<F, T>` reads `{closure#0}`).
pub fn program_site(frames: &[Arc<Frame>]) -> String {
    let first = frames
        .iter()
        .position(|f| frame_role(f) == FrameRole::Program)
        .unwrap_or(0);
    let mut parts = Vec::new();
    for (i, frame) in frames.iter().skip(first).take(3).enumerate() {
        let mut part = without_generic_arguments(&frame.function);
        if i == 0 {
            if let (Some(file), Some(line)) = (&frame.file, frame.line) {
                let short = file.rsplit('/').next().unwrap_or(file);
                part.push_str(&format!(" ({short}:{line})"));
            }
        }
        parts.push(part);
    }
    parts.join(" <- ")
}

/// `name` without the generic arguments that follow its path segments:
/// `{async_block#0}<fn(State<Arc<AppState>>) -> ..>` reads `{async_block#0}`,
/// `call_once<F, ()>` reads `call_once`. A one-line site is for a person to
/// read at a glance, and an async handler's frame names spell out every
/// type of the closure they came from, often hundreds of characters; the
/// folded stacks and pprof keep the full names. A qualified path's own
/// angle brackets (`<Vec<u8> as Clone>::clone`, a `<` that does not follow
/// a segment) stay, with the arguments inside them cut the same way
/// (`<Vec as Clone>::clone`); the `>` of a `->` is not a bracket.
fn without_generic_arguments(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // Depth inside generic arguments being left out (0: copying).
    let mut skipping = 0usize;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '-' && chars.peek() == Some(&'>') {
            chars.next();
            if skipping == 0 {
                out.push_str("->");
            }
            continue;
        }
        if skipping > 0 {
            match c {
                '<' => skipping += 1,
                '>' => skipping -= 1,
                _ => {}
            }
            continue;
        }
        let follows_segment = out
            .chars()
            .next_back()
            .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '}' || p == '>');
        if c == '<' && follows_segment {
            skipping = 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// One label per stack (frames leaf first), distinct where the stacks
/// are: the [`program_site`], and where several stacks share it, ` via `
/// and the first frame past the site (from the leaf) where each differs
/// from every other stack of that site (`remember_session (demo.rs:148) <-
/// {async_fn#0} <- {async_block#0} via handle_login (demo.rs:90)`). A stack
/// that differs from another only in a frame the others lack (one is a
/// suffix of another) says `via <root>`. Rows that read the same were
/// different stacks whose difference was out of sight.
#[cfg(any(test, feature = "http"))]
pub(crate) fn distinct_sites(stacks: &[&[Arc<Frame>]]) -> Vec<String> {
    let sites: Vec<String> = stacks.iter().map(|f| program_site(f)).collect();
    let mut labels = sites.clone();
    for (i, site) in sites.iter().enumerate() {
        let twins: Vec<usize> = (0..stacks.len())
            .filter(|&j| j != i && sites[j] == *site)
            .collect();
        if twins.is_empty() {
            continue;
        }
        // The first depth at which this stack differs from every twin:
        // past the longest prefix it shares with any of them.
        let shared = twins
            .iter()
            .map(|&j| shared_prefix(stacks[i], stacks[j]))
            .max()
            .unwrap_or(0);
        let via = match stacks[i].get(shared) {
            Some(frame) => frame_label(frame),
            None => "<root>".to_owned(),
        };
        labels[i] = format!("{site} via {via}");
    }
    labels
}

/// How many leaf-first frames two stacks share, by function, file and line.
#[cfg(any(test, feature = "http"))]
fn shared_prefix(a: &[Arc<Frame>], b: &[Arc<Frame>]) -> usize {
    a.iter()
        .zip(b)
        .take_while(|(x, y)| x.function == y.function && x.file == y.file && x.line == y.line)
        .count()
}

/// `function (file:line)`, generic arguments left out.
#[cfg(any(test, feature = "http"))]
fn frame_label(frame: &Frame) -> String {
    let mut label = without_generic_arguments(&frame.function);
    if let (Some(file), Some(line)) = (&frame.file, frame.line) {
        let short = file.rsplit('/').next().unwrap_or(file);
        label.push_str(&format!(" ({short}:{line})"));
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_leave_out_generic_arguments() {
        use super::without_generic_arguments as cut;
        assert_eq!(cut("remember_session"), "remember_session");
        assert_eq!(
            cut("{async_block#0}<fn(axum::extract::state::State<alloc::sync::Arc<demo::AppState>>) -> demo::session::{async_fn_env#0}, ()>"),
            "{async_block#0}"
        );
        assert_eq!(
            cut("call_once<std::thread::{closure_env#1}<F, ()>, ()>"),
            "call_once"
        );
        assert_eq!(
            cut("<alloc::vec::Vec<u8> as core::clone::Clone>::clone"),
            "<alloc::vec::Vec as core::clone::Clone>::clone"
        );
        assert_eq!(
            cut("<std::sys::thread::unix::Thread>::new::thread_start"),
            "<std::sys::thread::unix::Thread>::new::thread_start"
        );
        assert_eq!(cut("<<A as B>::C as D>::f"), "<<A as B>::C as D>::f");
        assert_eq!(cut("map<i32, fn() -> u8>::next"), "map::next");
        // Unbalanced input (a name cut short) loses the open tail, no more.
        assert_eq!(cut("parse<Vec<u8"), "parse");
    }

    fn at(function: &str, file: &str, line: u32) -> Arc<Frame> {
        Arc::new(Frame {
            function: function.to_owned(),
            file: Some(format!("/src/{file}")),
            line: Some(line),
            address: 0,
        })
    }

    #[test]
    fn stacks_with_one_site_are_told_apart_by_their_first_difference() {
        let leaf = at("remember_session", "demo.rs", 148);
        let fut = at("{async_fn#0}", "demo.rs", 140);
        let block = at("{async_block#0}", "demo.rs", 130);
        let login = [
            Arc::clone(&leaf),
            Arc::clone(&fut),
            Arc::clone(&block),
            at("handle_login", "demo.rs", 90),
            at("main", "demo.rs", 200),
        ];
        let signup = [
            Arc::clone(&leaf),
            Arc::clone(&fut),
            Arc::clone(&block),
            at("handle_signup", "demo.rs", 95),
            at("main", "demo.rs", 200),
        ];
        // Same functions, another line in the caller.
        let login_again = [
            Arc::clone(&leaf),
            Arc::clone(&fut),
            Arc::clone(&block),
            at("handle_login", "demo.rs", 91),
            at("main", "demo.rs", 200),
        ];
        let alone = [at("parse", "parser.rs", 42), at("main", "demo.rs", 201)];
        let stacks: Vec<&[Arc<Frame>]> = vec![&login, &signup, &login_again, &alone];
        let labels = distinct_sites(&stacks);
        let site = "remember_session (demo.rs:148) <- {async_fn#0} <- {async_block#0}";
        assert_eq!(labels[0], format!("{site} via handle_login (demo.rs:90)"));
        assert_eq!(labels[1], format!("{site} via handle_signup (demo.rs:95)"));
        assert_eq!(labels[2], format!("{site} via handle_login (demo.rs:91)"));
        assert_eq!(labels[3], "parse (parser.rs:42) <- main");
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{labels:#?}");

        // One stack a suffix of another: the shorter ends first.
        let short = &login[..4];
        let labels = distinct_sites(&[&login, short]);
        assert_eq!(labels[0], format!("{site} via main (demo.rs:200)"));
        assert_eq!(labels[1], format!("{site} via <root>"));
    }
}
