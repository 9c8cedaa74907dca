//! The library's layers, kept true: every `crate::` and `super::` path in
//! `memprof/src` (comments and strings aside) is resolved to the top-level
//! module it names, and a module may only name modules of a lower layer.
//!
//! The layer table is the one in ARCHITECTURE.md, between the
//! `<!-- layers -->` markers: this test reads it from there, so the map a
//! newcomer reads and the rule the code keeps are the same text. A module
//! missing from the table fails the test too.
//!
//! Plain std, no crate of the workspace: it runs against any tree
//! (`CARGO_MANIFEST_DIR` names the `memprof` package directory).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The only paths that may name a higher layer, each with why.
const ALLOWED_UPWARD: &[(&str, &str, &str)] = &[
    (
        "scope",
        "crate::fork::register",
        "every owner of a lock in fork.rs's table registers the atfork handlers \
         before its first lock, and the handlers reach every owner",
    ),
    (
        "stack",
        "crate::fork::register",
        "as for scope: the symbol cache",
    ),
    (
        "history",
        "crate::fork::register",
        "as for scope: the history's locks",
    ),
];

/// One path found in a source file.
#[derive(Debug)]
struct Reference {
    file: PathBuf,
    line: usize,
    /// The path as written, normalised to start at `crate::`.
    path: String,
    /// Whether it is part of a `pub use` (a re-export).
    reexport: bool,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"))
}

/// Reads the layer table from ARCHITECTURE.md: lines `| n | `a` `b` | ... |`
/// between `<!-- layers -->` and `<!-- /layers -->`.
fn layers(architecture: &str) -> BTreeMap<String, usize> {
    let start = architecture
        .find("<!-- layers -->")
        .expect("ARCHITECTURE.md has a <!-- layers --> table");
    let end = architecture[start..]
        .find("<!-- /layers -->")
        .expect("ARCHITECTURE.md closes its layer table with <!-- /layers -->")
        + start;
    let mut layers = BTreeMap::new();
    for row in architecture[start..end].lines() {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(rank) = cells.get(1).and_then(|c| c.parse::<usize>().ok()) else {
            continue;
        };
        let modules = cells.get(2).expect("a layer row names its modules");
        for module in modules.split('`').skip(1).step_by(2) {
            let previous = layers.insert(module.to_string(), rank);
            assert!(previous.is_none(), "{module} is in two layers");
        }
    }
    assert!(!layers.is_empty(), "the layer table has rows");
    layers
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are
/// `["a", "b"]`, `src/lib.rs` is `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of `text` with comments, string and char literals blanked out
/// (newlines kept, so line numbers stay right).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char_before(&chars, i)
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            out.extend(chars[i..j].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a).
            let end = if next == Some('\\') {
                // Skip the escaped character, which may itself be a quote.
                chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(std::iter::repeat_n(' ', end + 1 - i));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the character before `i` continues an identifier (so an `r` at
/// `i` is not a raw string's prefix), a byte string's `b` aside.
fn ident_char_before(chars: &[char], i: usize) -> bool {
    let ident = |c: &char| c.is_alphanumeric() || *c == '_';
    match i.checked_sub(1).map(|p| chars[p]) {
        Some('b') => i.checked_sub(2).is_some_and(|p| ident(&chars[p])),
        Some(c) => ident(&c),
        None => false,
    }
}

/// Splits code into identifier, `::` and single-character tokens, each with
/// its line.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push((chars[start..i].iter().collect(), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(("::".to_string(), line));
            i += 2;
        } else {
            out.push((c.to_string(), line));
            i += 1;
        }
    }
    out
}

/// Every path of `file` that starts at `crate`, `$crate` or `super`,
/// resolved to an absolute `crate::...` path; `use` groups
/// (`use crate::{a, b::c}`) give one path per member.
fn references(src: &Path, file: &Path) -> Vec<Reference> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let tokens = tokens(&code_only(&text));
    let file_module = module_of(src, file);
    // Inline modules (`mod tests { .. }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (token, line) = (&tokens[i].0, tokens[i].1);
        match token.as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t.0 == "{") => {
                inline.push((tokens[i + 1].0.clone(), depth));
            }
            _ => {}
        }
        let starts_path = matches!(token.as_str(), "crate" | "$crate" | "super")
            && tokens.get(i + 1).is_some_and(|t| t.0 == "::")
            && !(i > 0 && tokens[i - 1].0 == "::");
        if !starts_path {
            i += 1;
            continue;
        }
        let reexport = statement_start(&tokens, i)
            .is_some_and(|s| tokens[s].0 == "pub" && tokens[s..i].iter().any(|t| t.0 == "use"));
        // The module the path starts from.
        let mut base: Vec<String> = file_module.clone();
        base.extend(inline.iter().map(|(name, _)| name.clone()));
        let mut j = i;
        if token == "crate" || token == "$crate" {
            base.clear();
            j += 2;
        } else {
            while tokens.get(j).is_some_and(|t| t.0 == "super")
                && tokens.get(j + 1).is_some_and(|t| t.0 == "::")
            {
                base.pop();
                j += 2;
            }
        }
        let mut segments = base.clone();
        while let Some(t) = tokens.get(j) {
            if t.0 == "{" {
                // A group: each member's first segment.
                let mut k = j + 1;
                let mut level = 0;
                let mut at_member_start = true;
                while let Some(t) = tokens.get(k) {
                    match t.0.as_str() {
                        "{" => level += 1,
                        "}" if level == 0 => break,
                        "}" => level -= 1,
                        "," if level == 0 => at_member_start = true,
                        name if at_member_start && level == 0 => {
                            at_member_start = false;
                            let mut member = segments.clone();
                            if name != "self" {
                                member.push(name.to_string());
                            }
                            if tokens.get(k + 1).is_some_and(|t| t.0 == "::") {
                                if let Some(t) = tokens.get(k + 2).filter(|t| t.0 != "{") {
                                    member.push(t.0.clone());
                                }
                            }
                            out.push(Reference {
                                file: file.to_path_buf(),
                                line,
                                path: format!("crate::{}", member.join("::")),
                                reexport,
                            });
                        }
                        _ => {}
                    }
                    k += 1;
                }
                segments.clear();
                break;
            }
            if !t.0.chars().all(|c| c.is_alphanumeric() || c == '_') {
                break;
            }
            segments.push(t.0.clone());
            if tokens.get(j + 1).is_some_and(|t| t.0 == "::") {
                j += 2;
            } else {
                break;
            }
        }
        if !segments.is_empty() {
            out.push(Reference {
                file: file.to_path_buf(),
                line,
                path: format!("crate::{}", segments.join("::")),
                reexport,
            });
        }
        i = j.max(i + 1);
    }
    out
}

/// The first token of the statement or item holding token `i`.
fn statement_start(tokens: &[(String, usize)], i: usize) -> Option<usize> {
    let mut k = i;
    while k > 0 {
        if matches!(tokens[k - 1].0.as_str(), ";" | "{" | "}" | "]") {
            return Some(k);
        }
        k -= 1;
    }
    Some(0)
}

/// The crate root's `pub use` re-exports: the root item's name and the
/// top-level module it comes from (`set_rate` -> `sample`).
fn root_reexports(references: &[Reference], root: &Path) -> BTreeMap<String, String> {
    references
        .iter()
        .filter(|r| r.file == root && r.reexport)
        .filter_map(|r| {
            let segments: Vec<&str> = r.path.split("::").collect();
            Some((segments.last()?.to_string(), segments.get(1)?.to_string()))
        })
        .collect()
}

/// The top-level module a `crate::...` path names, or `""` for the crate
/// root itself (an item defined in lib.rs).
fn top_module(
    path: &str,
    modules: &BTreeSet<String>,
    root_items: &BTreeMap<String, String>,
) -> String {
    let first = path.split("::").nth(1).unwrap_or("");
    if modules.contains(first) {
        first.to_string()
    } else if let Some(module) = root_items.get(first) {
        module.clone()
    } else {
        String::new()
    }
}

/// Violations in the tree at `package` (a `memprof` package directory):
/// one line per path that names a module of the same or a higher layer.
fn violations(package: &Path, architecture: &str) -> Vec<String> {
    let layers = layers(architecture);
    let src = package.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("bin")));
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(&src, f).first().cloned())
        .collect();
    let mut problems = Vec::new();
    for module in &modules {
        if !layers.contains_key(module) {
            problems.push(format!(
                "module `{module}` is in no layer of ARCHITECTURE.md's table"
            ));
        }
    }
    let references: Vec<Reference> = files.iter().flat_map(|f| references(&src, f)).collect();
    let root_items = root_reexports(&references, &src.join("lib.rs"));
    let mut used_exceptions = BTreeSet::new();
    for reference in &references {
        let Some(from) = module_of(&src, &reference.file).first().cloned() else {
            continue; // the crate root may name anything
        };
        let to = top_module(&reference.path, &modules, &root_items);
        if to == from {
            continue;
        }
        let (Some(&from_rank), to_rank) = (layers.get(&from), layers.get(&to)) else {
            continue; // reported above
        };
        let allowed = to_rank.is_some_and(|&to_rank| to_rank < from_rank);
        if allowed {
            continue;
        }
        let written = if reference.reexport {
            format!("pub use {}", reference.path)
        } else {
            reference.path.clone()
        };
        if let Some(exception) = ALLOWED_UPWARD
            .iter()
            .find(|(m, p, _)| *m == from && written.starts_with(p))
        {
            used_exceptions.insert(exception.1);
            continue;
        }
        let target = if to.is_empty() {
            "the crate root".to_string()
        } else {
            format!("`{to}` (layer {})", to_rank.copied().unwrap_or(usize::MAX))
        };
        problems.push(format!(
            "{}:{}: `{from}` (layer {from_rank}) names {target}: {written}",
            reference
                .file
                .strip_prefix(package)
                .unwrap_or(&reference.file)
                .display(),
            reference.line
        ));
    }
    for (module, path, _) in ALLOWED_UPWARD {
        if !used_exceptions.contains(path) && layers.contains_key(*module) {
            problems.push(format!(
                "the exception for `{module}` -> {path} is no longer used: remove it"
            ));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn no_module_names_a_module_of_its_own_or_a_higher_layer() {
    let package = manifest_dir();
    let architecture_path = package.join("../ARCHITECTURE.md");
    let architecture = fs::read_to_string(&architecture_path)
        .unwrap_or_else(|e| panic!("{}: {e}", architecture_path.display()));
    let problems = violations(&package, &architecture);
    assert!(
        problems.is_empty(),
        "{} layering violation(s) (see ARCHITECTURE.md):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod parser {
    use super::*;

    fn paths(src: &str) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!("memprof-layering-{}", std::process::id()));
        let file = dir.join("a/b.rs");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, src).unwrap();
        let found = references(&dir, &file)
            .into_iter()
            .map(|r| r.path)
            .collect();
        fs::remove_dir_all(&dir).unwrap();
        found
    }

    #[test]
    fn resolves_crate_super_groups_and_inline_modules() {
        let found = paths(
            "use crate::x::{self, y::Z, w};\n\
             fn f() { super::q::r(); crate::s::t(); }\n\
             mod tests { use super::*; fn g() { super::super::u::v(); } }\n",
        );
        assert_eq!(
            found,
            [
                "crate::x",
                "crate::x::y::Z",
                "crate::x::w",
                "crate::a::q::r",
                "crate::s::t",
                "crate::a::b",
                "crate::a::u::v",
            ]
        );
    }

    #[test]
    fn ignores_comments_strings_and_chars() {
        let found = paths(
            "// crate::c1::x\n/* crate::c2 /* crate::c3 */ */\n\
             const S: &str = \"crate::c4\"; const R: &str = r#\"crate::c5\"#;\n\
             const C: char = '\"'; fn f<'a>(x: &'a u8) { crate::real::y(); }\n",
        );
        assert_eq!(found, ["crate::real::y"]);
    }

    #[test]
    fn an_upward_path_is_reported_and_a_downward_one_is_not() {
        let dir = std::env::temp_dir().join(format!("memprof-layering-up-{}", std::process::id()));
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(dir.join("src/lib.rs"), "mod low; mod high;").unwrap();
        fs::write(dir.join("src/low.rs"), "fn f() { crate::high::g() }").unwrap();
        fs::write(dir.join("src/high.rs"), "pub fn g() { crate::low::f() }").unwrap();
        let table = "<!-- layers -->\n| 0 | `low` |\n| 1 | `high` |\n<!-- /layers -->";
        let problems = violations(&dir, table);
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`low` (layer 0) names `high` (layer 1)")),
            "{problems:?}"
        );
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("`high` (layer 1) names")),
            "{problems:?}"
        );
    }
}
