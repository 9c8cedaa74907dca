//! Scopes as profiles name them ([`ScopePath`]), and the rule by which a
//! view keeps one scope's stacks ([`ScopeFilter`]).
//!
//! A scope path is a list of names, outermost first (`request`, `parser`).
//! A name of the form `key=value` with a non-empty key is a *label*
//! (`route=GET /users/{id}`, `tenant=acme`): pprof output turns it into the
//! string label `key: value`. A label's value may hold `/`, so a path is
//! kept as its names; joined by `/` it is for people to read.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The scope a stack's samples were allocated in: its names, outermost
/// first. In JSON, `{"path": "request/parser", "segments": ["request",
/// "parser"]}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "ScopePathJson", from = "ScopePathJson")]
pub struct ScopePath(Arc<[String]>);

impl ScopePath {
    /// The path of `segments`, outermost first.
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> ScopePath {
        ScopePath(segments.into_iter().map(Into::into).collect())
    }

    /// The scope of registered scope `id` (`None` for 0 or an unknown id).
    pub(crate) fn of_scope(id: u32) -> Option<ScopePath> {
        crate::scope::scope_segments(id).map(ScopePath::new)
    }

    /// The names, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The names joined by `/` (`request/parser`).
    pub fn path(&self) -> String {
        self.0.join("/")
    }

    /// The labels among the names, outermost first: `(key, value)` for each
    /// name `key=value` with a non-empty key.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|segment| label_of(segment))
    }
}

impl fmt::Display for ScopePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// `(key, value)` when `segment` is a label: `key=value`, `key` not empty.
fn label_of(segment: &str) -> Option<(&str, &str)> {
    segment.split_once('=').filter(|(key, _)| !key.is_empty())
}

/// How a [`ScopePath`] reads and writes as JSON.
#[derive(Serialize, Deserialize)]
struct ScopePathJson {
    path: String,
    segments: Vec<String>,
}

impl From<ScopePath> for ScopePathJson {
    fn from(scope: ScopePath) -> ScopePathJson {
        ScopePathJson {
            path: scope.path(),
            segments: scope.0.to_vec(),
        }
    }
}

impl From<ScopePathJson> for ScopePath {
    fn from(json: ScopePathJson) -> ScopePath {
        ScopePath::new(json.segments)
    }
}

/// Which stacks a view keeps by their scope: `scope=PATH`.
///
/// The rule: a stack is kept when `PATH` equals the names of a run of
/// consecutive scopes of the stack's scope path, joined by `/`, where the
/// run
///
/// * starts at the outermost scope: `scope=request` keeps `request`,
///   `request/parser` and everything else nested in `request`, and not
///   `requests` or `batch/request`; `scope=request/parser` keeps
///   `request/parser` and what is nested in it;
/// * or, when `PATH` starts with a label (a `=` before any `/`, with a
///   non-empty key), starts at any scope: labels are attributes that may
///   sit anywhere in a path, so `scope=route=GET /x` keeps
///   `route=GET /x`, `ingest/route=GET /x` and
///   `ingest/route=GET /x/tenant=acme`, and `scope=tenant=acme` keeps
///   every stack of tenant `acme` wherever the tenant was entered.
///
/// Names are compared whole and exactly (case matters): `scope=route=GET
/// /x` does not keep `route=GET /x/y` unless `y` is a scope nested in it.
/// Stacks allocated outside any scope are never kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeFilter {
    path: String,
    anywhere: bool,
}

/// The longest `PATH` a [`ScopeFilter`] takes, bytes.
pub const MAX_SCOPE_FILTER_LEN: usize = 4096;

/// Why a string is not a [`ScopeFilter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadScopeFilter {
    /// The path is empty.
    Empty,
    /// The path is longer than [`MAX_SCOPE_FILTER_LEN`].
    TooLong,
    /// The path holds a control character.
    ControlCharacter,
}

impl fmt::Display for BadScopeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadScopeFilter::Empty => "an empty scope path",
            BadScopeFilter::TooLong => "a scope path longer than 4096 bytes",
            BadScopeFilter::ControlCharacter => "a control character in the scope path",
        })
    }
}

impl std::error::Error for BadScopeFilter {}

impl ScopeFilter {
    /// The filter `scope=path`.
    ///
    /// # Errors
    ///
    /// [`BadScopeFilter`] for an empty path, one longer than
    /// [`MAX_SCOPE_FILTER_LEN`] or one holding a control character.
    pub fn new(path: &str) -> Result<ScopeFilter, BadScopeFilter> {
        if path.is_empty() {
            return Err(BadScopeFilter::Empty);
        }
        if path.len() > MAX_SCOPE_FILTER_LEN {
            return Err(BadScopeFilter::TooLong);
        }
        if path.chars().any(char::is_control) {
            return Err(BadScopeFilter::ControlCharacter);
        }
        let first_slash = path.find('/').unwrap_or(path.len());
        Ok(ScopeFilter {
            path: path.to_string(),
            anywhere: label_of(&path[..first_slash]).is_some(),
        })
    }

    /// The path it was made from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether a stack in `scope` is kept (see [`ScopeFilter`] for the rule).
    pub fn matches(&self, scope: Option<&ScopePath>) -> bool {
        scope.is_some_and(|scope| self.matches_segments(scope.segments()))
    }

    /// Whether the filter keeps any scope the process has entered (scopes
    /// are never forgotten, so this holds for any profile of the process).
    #[cfg(feature = "http")]
    pub(crate) fn matches_any_entered(&self) -> bool {
        crate::scope::scopes().iter().any(|scope| {
            crate::scope::scope_segments(scope.id)
                .is_some_and(|names| self.matches_segments(&names))
        })
    }

    /// Whether scope names `segments` (outermost first) are kept.
    pub(crate) fn matches_segments<S: AsRef<str>>(&self, segments: &[S]) -> bool {
        let starts = if self.anywhere { segments.len() } else { 1 };
        (0..starts.min(segments.len())).any(|start| self.run_from(&segments[start..]))
    }

    /// Whether the path equals `segments[..k]` joined by `/` for some k ≥ 1.
    fn run_from<S: AsRef<str>>(&self, segments: &[S]) -> bool {
        let mut rest = self.path.as_str();
        for segment in segments {
            let Some(after) = rest.strip_prefix(segment.as_ref()) else {
                return false;
            };
            if after.is_empty() {
                return true;
            }
            let Some(after) = after.strip_prefix('/') else {
                return false;
            };
            rest = after;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(filter: &str, path: &[&str]) -> bool {
        ScopeFilter::new(filter).unwrap().matches_segments(path)
    }

    #[test]
    fn a_plain_path_keeps_its_scope_and_what_is_nested_in_it() {
        assert!(keeps("request", &["request"]));
        assert!(keeps("request", &["request", "parser"]));
        assert!(keeps("request/parser", &["request", "parser", "lexer"]));
        assert!(!keeps("request", &["requests"]));
        assert!(
            !keeps("request", &["batch", "request"]),
            "from the root only"
        );
        assert!(!keeps("parser", &["request", "parser"]));
        assert!(!keeps("request/parser", &["request"]));
        assert!(
            !keeps("request/pars", &["request", "parser"]),
            "whole names"
        );
        assert!(!keeps("Request", &["request"]), "case matters");
        assert!(!keeps("request", &[]), "outside every scope");
        assert!(!ScopeFilter::new("request").unwrap().matches(None));
    }

    #[test]
    fn a_path_starting_with_a_label_keeps_it_anywhere() {
        let route = "route=GET /users/{id}";
        assert!(keeps(route, &[route]));
        assert!(keeps(route, &["ingest", route]));
        assert!(keeps(route, &["ingest", route, "tenant=acme"]));
        assert!(keeps("tenant=acme", &["ingest", route, "tenant=acme"]));
        assert!(keeps(
            "route=GET /users/{id}/tenant=acme",
            &["ingest", route, "tenant=acme", "parser"]
        ));
        // The slashes inside the label's value are not scope boundaries.
        assert!(!keeps("route=GET /users", &[route]));
        assert!(!keeps("tenant=acme", &["tenant=acme2"]));
        assert!(!keeps("tenant=acme", &["ingest", "tenant=other"]));
        // A plain first name pins the run to the root, labels after it too.
        assert!(!keeps(
            "ingest/tenant=acme",
            &["batch", "ingest", "tenant=acme"]
        ));
        // An empty key is no label.
        assert!(!keeps("=x", &["a", "=x"]));
        assert!(keeps("=x", &["=x", "a"]));
    }

    #[test]
    fn a_malformed_path_is_refused_with_the_reason() {
        assert_eq!(ScopeFilter::new(""), Err(BadScopeFilter::Empty));
        assert_eq!(
            ScopeFilter::new(&"a".repeat(MAX_SCOPE_FILTER_LEN + 1)),
            Err(BadScopeFilter::TooLong)
        );
        assert_eq!(
            ScopeFilter::new("a\nb"),
            Err(BadScopeFilter::ControlCharacter)
        );
        assert!(ScopeFilter::new("route=GET /").is_ok(), "a root route");
    }

    #[test]
    fn labels_are_the_names_with_a_key() {
        let scope = ScopePath::new(["ingest", "route=GET /x=y", "=z", "tenant=acme"]);
        assert_eq!(
            scope.labels().collect::<Vec<_>>(),
            [("route", "GET /x=y"), ("tenant", "acme")]
        );
        assert_eq!(scope.path(), "ingest/route=GET /x=y/=z/tenant=acme");
        let json = serde_json::to_string(&scope).unwrap();
        assert_eq!(
            json,
            r#"{"path":"ingest/route=GET /x=y/=z/tenant=acme","segments":["ingest","route=GET /x=y","=z","tenant=acme"]}"#
        );
        assert_eq!(serde_json::from_str::<ScopePath>(&json).unwrap(), scope);
    }
}
