//! Limiting a test's verdict to one scope (`#[memprof::test(scope = "ingest")]`,
//! [`track_scope`](super::track_scope), [`soak_scope`](super::soak_scope)):
//! which of the body's blocks count, and whether the scope was entered at
//! all.
//!
//! The rule is the one the views' `scope=PATH` keeps stacks by. A block
//! counts when it was allocated in a scope whose path holds `PATH` as a run
//! of whole names:
//!
//! * a run from the outermost scope: `ingest` keeps `ingest` and what is
//!   nested in it (`ingest/parse`), not `ingester` nor `batch/ingest`;
//! * or, when `PATH` starts with a label (`key=value` before any `/`, with
//!   a non-empty key), a run starting anywhere: labels may sit at any depth,
//!   so `route=GET /ingest` keeps `route=GET /ingest`,
//!   `tenant=acme/route=GET /ingest` and `route=GET /ingest/parse`.
//!
//! Names are compared whole and exactly, so a `/` inside a label's value
//! (`route=GET /users/{id}`) is not a boundary: `route=GET /users` does not
//! keep `route=GET /users/{id}`. Blocks allocated outside every scope never
//! count.

use std::collections::HashMap;
use std::fmt;

use super::retained::Retained;
use crate::sample::LiveSample;

/// Why a scoped [`track_scope`](super::track_scope) or
/// [`soak_scope`](super::soak_scope) has no verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError {
    /// The scope path is not one: empty, longer than 4096 bytes, or with a
    /// control character. The body did not run.
    BadPath {
        /// The path as given.
        scope: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No scope the path keeps was entered while the body ran, so a clean
    /// verdict would say nothing: most likely the name is misspelt.
    NeverEntered {
        /// The path as given.
        scope: String,
        /// Paths of the scopes that were entered meanwhile (by any thread
        /// of the process), at most eight, for spotting the intended one.
        entered: Vec<String>,
    },
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::BadPath { scope, why } => {
                write!(
                    f,
                    "scope `{}` is not a scope path: {why}",
                    scope.escape_debug()
                )
            }
            ScopeError::NeverEntered { scope, entered } => {
                write!(f, "scope `{scope}` was never entered: check the name")?;
                if entered.is_empty() {
                    f.write_str(" (no scope was entered while the test ran)")
                } else {
                    let names: Vec<String> = entered.iter().map(|p| format!("`{p}`")).collect();
                    write!(
                        f,
                        " (scopes entered while the test ran: {})",
                        names.join(", ")
                    )
                }
            }
        }
    }
}

impl std::error::Error for ScopeError {}

/// The most scopes a [`ScopeError::NeverEntered`] lists.
const LISTED: usize = 8;

/// A scope path a verdict is limited to: the views' rule
/// ([`crate::profile::ScopeFilter`]) applied to live samples' scope ids.
#[derive(Clone, Debug)]
pub(super) struct ScopeFilter {
    rule: crate::profile::ScopeFilter,
}

impl ScopeFilter {
    pub(super) fn new(path: &str) -> Result<ScopeFilter, ScopeError> {
        use crate::profile::BadScopeFilter;
        match crate::profile::ScopeFilter::new(path) {
            Ok(rule) => Ok(ScopeFilter { rule }),
            Err(bad) => Err(ScopeError::BadPath {
                scope: path.to_string(),
                why: match bad {
                    BadScopeFilter::Empty => "an empty path",
                    BadScopeFilter::TooLong => "a path longer than 4096 bytes",
                    BadScopeFilter::ControlCharacter => "a control character in the path",
                },
            }),
        }
    }

    pub(super) fn path(&self) -> &str {
        self.rule.path()
    }

    /// Whether blocks allocated in scope `id` count.
    fn keeps_scope(&self, id: u32) -> bool {
        crate::scope::scope_segments(id).is_some_and(|names| self.rule.matches_segments(&names))
    }

    /// Splits `samples` into those that count and the others.
    pub(super) fn split(&self, samples: Vec<LiveSample>) -> (Vec<LiveSample>, Vec<LiveSample>) {
        crate::thread_state::unsampled(|| {
            let mut kept: HashMap<u32, bool> = HashMap::new();
            samples.into_iter().partition(|s| {
                s.scope != 0
                    && *kept
                        .entry(s.scope)
                        .or_insert_with(|| self.keeps_scope(s.scope))
            })
        })
    }
}

/// How many times each scope had been entered when a body began, to tell
/// which scopes it entered.
pub(super) struct Entries {
    before: HashMap<u32, u64>,
}

impl Entries {
    pub(super) fn now() -> Entries {
        crate::thread_state::unsampled(|| Entries {
            before: crate::scope::scopes()
                .into_iter()
                .map(|s| (s.id, s.entered))
                .collect(),
        })
    }

    /// Times a scope `filter` keeps was entered since [`Entries::now`], by
    /// any thread of the process; when none was, the error saying so.
    pub(super) fn entered_since(&self, filter: &ScopeFilter) -> Result<u64, ScopeError> {
        crate::thread_state::unsampled(|| {
            let mut matching = 0;
            let mut others = Vec::new();
            for scope in crate::scope::scopes() {
                let entered = scope
                    .entered
                    .saturating_sub(self.before.get(&scope.id).copied().unwrap_or(0));
                if entered == 0 {
                    continue;
                }
                if filter.keeps_scope(scope.id) {
                    matching += entered;
                } else if others.len() < LISTED {
                    others.push(scope.path);
                }
            }
            if matching == 0 {
                return Err(ScopeError::NeverEntered {
                    scope: filter.path().to_string(),
                    entered: others,
                });
            }
            Ok(matching)
        })
    }

    /// Notes in `retained`'s scope limit how often the scope was entered;
    /// the error when it never was.
    pub(super) fn note_entered(
        &self,
        filter: &ScopeFilter,
        retained: &mut Retained,
    ) -> Result<(), ScopeError> {
        let entered = self.entered_since(filter)?;
        if let Some(limit) = retained.scope.as_mut() {
            limit.entered = entered;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(filter: &str, names: &[&str]) -> bool {
        ScopeFilter::new(filter)
            .unwrap()
            .rule
            .matches_segments(names)
    }

    #[test]
    fn a_plain_path_keeps_its_scope_and_what_is_nested_in_it() {
        assert!(keeps("ingest", &["ingest"]));
        assert!(keeps("ingest", &["ingest", "parse"]));
        assert!(keeps("ingest/parse", &["ingest", "parse", "lex"]));
        assert!(!keeps("ingest", &["ingester"]), "whole names");
        assert!(!keeps("ingest", &["batch", "ingest"]), "from the root only");
        assert!(!keeps("ingest/parse", &["ingest"]));
        assert!(!keeps("Ingest", &["ingest"]), "case matters");
        assert!(!keeps("ingest", &[]), "outside every scope");
    }

    #[test]
    fn a_path_starting_with_a_label_keeps_it_at_any_depth() {
        let route = "route=GET /ingest";
        assert!(keeps(route, &[route]));
        assert!(keeps(route, &["tenant=acme", route]));
        assert!(keeps(route, &[route, "parse"]));
        assert!(keeps(
            "route=GET /ingest/parse",
            &["server", route, "parse"]
        ));
        assert!(
            !keeps("route=GET /users", &["route=GET /users/{id}"]),
            "a / inside a label's value is no boundary"
        );
        assert!(!keeps("tenant=acme", &["tenant=acme2"]));
        assert!(
            !keeps("ingest/tenant=acme", &["batch", "ingest", "tenant=acme"]),
            "a plain first name pins the run to the root"
        );
        assert!(!keeps("=x", &["a", "=x"]), "an empty key is no label");
    }

    #[test]
    fn a_malformed_path_is_refused_with_the_reason() {
        let why = |path: &str| match ScopeFilter::new(path) {
            Err(ScopeError::BadPath { why, .. }) => why,
            other => panic!("{path:?}: {other:?}"),
        };
        assert_eq!(why(""), "an empty path");
        assert_eq!(
            why(&"a".repeat(crate::profile::MAX_SCOPE_FILTER_LEN + 1)),
            "a path longer than 4096 bytes"
        );
        assert_eq!(why("a\nb"), "a control character in the path");
        assert_eq!(
            ScopeFilter::new("a\nb").unwrap_err().to_string(),
            "scope `a\\nb` is not a scope path: a control character in the path"
        );
    }

    #[test]
    fn never_entered_names_the_scope_and_what_was_entered() {
        let error = ScopeError::NeverEntered {
            scope: "ingset".to_string(),
            entered: vec!["ingest".to_string(), "cache".to_string()],
        };
        assert_eq!(
            error.to_string(),
            "scope `ingset` was never entered: check the name \
             (scopes entered while the test ran: `ingest`, `cache`)"
        );
    }

    #[test]
    fn entries_count_only_scopes_the_filter_keeps() {
        // Registered before, so only entries after `now` count.
        drop(crate::enter_scope("entries-test"));
        let entries = Entries::now();
        let filter = ScopeFilter::new("entries-test").unwrap();
        let never = ScopeFilter::new("entries-tset").unwrap();
        assert!(matches!(
            entries.entered_since(&filter),
            Err(ScopeError::NeverEntered { .. })
        ));
        {
            let _outer = crate::enter_scope("entries-test");
            drop(crate::enter_scope("nested"));
        }
        assert_eq!(
            entries.entered_since(&filter),
            Ok(2),
            "the scope and its nested one"
        );
        match entries.entered_since(&never) {
            Err(ScopeError::NeverEntered { entered, .. }) => {
                assert!(!entered.is_empty(), "lists what was entered instead")
            }
            other => panic!("{other:?}"),
        }
    }
}
