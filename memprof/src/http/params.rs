//! Query parameters, parsed by hand so every bad value gets a 400 that names
//! the parameter and says what was expected.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

use super::error::ApiError;
use crate::profile::{Bound, Kind};
use crate::stack::Trim;

/// A request's query as its extractor gives it: every `name=value` pair in
/// order, so a repeated parameter can be told from a single one.
pub(crate) type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query of one request, checked against the parameters its route takes.
pub(crate) struct Params(HashMap<String, String>);

/// The longest `seconds` a delta may cover, as in Go's endpoint budget.
pub(crate) const MAX_SECONDS: u64 = 300;

/// What `kind` takes, as a 400 says it: every [`Kind`], the default first.
fn kinds_expected() -> String {
    let names: Vec<&str> = Kind::ALL.iter().rev().map(|k| k.name()).collect();
    format!("one of {}", names.join(", "))
}

impl Params {
    /// Parses the query; a parameter not in `allowed`, or given more than
    /// once, is a 400.
    pub(crate) fn parse(query: QueryPairs, allowed: &[&str]) -> Result<Params, ApiError> {
        let Query(pairs) = query.map_err(|e| {
            ApiError::bad_parameter("query", e.body_text(), "a URL-encoded query string")
        })?;
        if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            let expected = if allowed.is_empty() {
                "no parameters (this route takes none)".to_string()
            } else {
                format!("one of the parameters {}", allowed.join(", "))
            };
            return Err(ApiError::bad_parameter(
                unknown.as_str(),
                format!("unknown parameter {unknown:?}"),
                expected,
            ));
        }
        let mut map = HashMap::with_capacity(pairs.len());
        for (name, value) in &pairs {
            if map.insert(name.clone(), value.clone()).is_some() {
                let times = pairs.iter().filter(|(n, _)| n == name).count();
                return Err(ApiError::bad_parameter(
                    name.as_str(),
                    format!("{name} given {times} times"),
                    format!("{name} once"),
                ));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `name`'s value if given, which must be one of `allowed`.
    pub(crate) fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v)),
            Some(v) => Err(ApiError::bad_parameter(
                name,
                format!("{v:?} is not accepted"),
                allowed.join(" or "),
            )),
        }
    }

    /// Whether `name` was given.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `kind`, default `inuse_space`.
    pub(crate) fn kind(&self) -> Result<Kind, ApiError> {
        match self.get("kind") {
            None => Ok(Kind::default()),
            Some(value) => value.parse().map_err(|_| {
                ApiError::bad_parameter("kind", format!("unknown kind {value:?}"), kinds_expected())
            }),
        }
    }

    /// `trim`: how much of each stack's leaf end is left out, default
    /// `allocation` (the allocator shim and std's allocation frames).
    pub(crate) fn trim(&self) -> Result<Trim, ApiError> {
        match self.get("trim") {
            None => Ok(Trim::default()),
            Some(value) => Trim::from_name(value).ok_or_else(|| {
                ApiError::bad_parameter(
                    "trim",
                    format!("unknown trim {value:?}"),
                    "allocation (default) or none",
                )
            }),
        }
    }

    /// `format`, one of `allowed` (the first is the default).
    pub(crate) fn format(&self, allowed: &[Format]) -> Result<Format, ApiError> {
        let Some(value) = self.get("format") else {
            return Ok(allowed[0]);
        };
        allowed
            .iter()
            .copied()
            .find(|f| f.name() == value)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
                ApiError::bad_parameter(
                    "format",
                    format!("unknown format {value:?}"),
                    format!("one of {}", names.join(", ")),
                )
            })
    }

    /// `seconds`, `1..=300`, if given.
    pub(crate) fn seconds(&self) -> Result<Option<Duration>, ApiError> {
        let Some(value) = self.get("seconds") else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(Some(Duration::from_secs(n))),
            _ => Err(ApiError::bad_parameter(
                "seconds",
                format!("bad duration {value:?}"),
                format!("a whole number of seconds from 1 to {MAX_SECONDS}"),
            )),
        }
    }

    /// A whole number `name` within `min..=max`, or `default` when absent.
    pub(crate) fn number(
        &self,
        name: &str,
        min: u64,
        max: u64,
        default: u64,
    ) -> Result<u64, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_parameter(
                name,
                format!("bad value {value:?}"),
                format!("a whole number from {min} to {max}"),
            )),
        }
    }

    /// A whole number `name`, if given (any `u64`).
    pub(crate) fn optional_u64(&self, name: &str, what: &str) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        value.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_parameter(name, format!("bad value {value:?}"), what.to_string())
        })
    }

    /// A boolean `name`: `true`/`1` or `false`/`0`; `false` when absent.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(value) => Err(ApiError::bad_parameter(
                name,
                format!("bad value {value:?}"),
                "true, false, 1 or 0",
            )),
        }
    }

    /// `limit` and `min_share`: how many stacks a profile view shows.
    /// `limit` is a whole number of stacks, or `0` or `all` for every
    /// stack, `default_limit` when absent; `min_share` a fraction of the
    /// kind's total from 0 to 1, 0 when absent.
    pub(crate) fn bound(&self, default_limit: Option<usize>) -> Result<Bound, ApiError> {
        let limit = match self.get("limit") {
            None => default_limit,
            Some("all" | "0") => None,
            Some(value) => match value.parse::<usize>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ApiError::bad_parameter(
                        "limit",
                        format!("bad limit {value:?}"),
                        "a whole number of stacks, or 0 or all for every stack",
                    ))
                }
            },
        };
        let min_share = match self.get("min_share") {
            None => 0.0,
            Some(value) => match value.parse::<f64>() {
                Ok(share) if (0.0..=1.0).contains(&share) => share,
                _ => {
                    return Err(ApiError::bad_parameter(
                        "min_share",
                        format!("bad share {value:?}"),
                        "a fraction of the total from 0 to 1 (0.01 for 1%)",
                    ))
                }
            },
        };
        Ok(Bound::new(limit, min_share))
    }

    /// `at`: `now` (default) or `peak`.
    pub(crate) fn at(&self) -> Result<At, ApiError> {
        match self.get("at") {
            None | Some("now") => Ok(At::Now),
            Some("peak") => Ok(At::Peak),
            Some(value) => Err(ApiError::bad_parameter(
                "at",
                format!("unknown heap {value:?}"),
                "now or peak",
            )),
        }
    }

    /// A snapshot id parameter, if given.
    pub(crate) fn snapshot_id(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(ApiError::bad_parameter(
                name,
                format!("bad snapshot id {value:?}"),
                "a snapshot id returned by POST /snapshots (a positive integer)",
            )),
        }
    }
}

/// Which heap a profile view shows: `at=now` (the default) or `at=peak`,
/// the profile the history sampler kept at the heap's highest estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    Now,
    Peak,
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Pprof,
    Folded,
    Svg,
    Json,
    /// Plain text for a terminal.
    Text,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Pprof => "pprof",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Json => "json",
            Format::Text => "text",
        }
    }
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
