//! [`Params`] on its own: what each getter takes, and the 400 it gives.

use std::time::Duration;

use axum::extract::Query;

use super::*;

fn query(pairs: &[(&str, &str)]) -> QueryPairs {
    Ok(Query(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

fn parse(pairs: &[(&str, &str)], allowed: &[&str]) -> Params {
    match Params::parse(query(pairs), allowed) {
        Ok(p) => p,
        Err(e) => panic!("{pairs:?} refused: {e:?}"),
    }
}

fn bad(parameter: &str, error: &str, expected: &str) -> ApiError {
    ApiError::bad_parameter(parameter, error, expected)
}

#[test]
fn unknown_and_repeated_parameters_are_refused() {
    assert_eq!(
        Params::parse(
            query(&[("kind", "inuse_space"), ("x", "1")]),
            &["kind", "n"]
        )
        .err(),
        Some(bad(
            "x",
            "unknown parameter \"x\"",
            "one of the parameters kind, n"
        ))
    );
    assert_eq!(
        Params::parse(query(&[("x", "1")]), &[]).err(),
        Some(bad(
            "x",
            "unknown parameter \"x\"",
            "no parameters (this route takes none)"
        ))
    );
    assert_eq!(
        Params::parse(query(&[("n", "1"), ("n", "2"), ("n", "3")]), &["n"]).err(),
        Some(bad("n", "n given 3 times", "n once"))
    );
    assert!(Params::parse(query(&[]), &[]).is_ok());
}

#[test]
fn kind_defaults_to_inuse_space_and_names_every_kind_when_wrong() {
    assert_eq!(parse(&[], &["kind"]).kind().ok(), Some(Kind::InuseSpace));
    for kind in Kind::ALL {
        let p = parse(&[("kind", kind.name())], &["kind"]);
        assert_eq!(p.kind().ok(), Some(kind));
    }
    assert_eq!(
        parse(&[("kind", "space")], &["kind"]).kind().err(),
        Some(bad(
            "kind",
            "unknown kind \"space\"",
            "one of inuse_space, inuse_objects, alloc_space, alloc_objects"
        ))
    );
}

#[test]
fn format_defaults_to_the_first_allowed() {
    let allowed = [Format::Json, Format::Text];
    assert_eq!(
        parse(&[], &["format"]).format(&allowed).ok(),
        Some(Format::Json)
    );
    assert_eq!(
        parse(&[("format", "text")], &["format"])
            .format(&allowed)
            .ok(),
        Some(Format::Text)
    );
    assert_eq!(
        parse(&[("format", "svg")], &["format"])
            .format(&allowed)
            .err(),
        Some(bad("format", "unknown format \"svg\"", "one of json, text"))
    );
}

#[test]
fn seconds_within_one_to_three_hundred() {
    let seconds = |v: &str| parse(&[("seconds", v)], &["seconds"]).seconds();
    assert_eq!(parse(&[], &["seconds"]).seconds().ok(), Some(None));
    assert_eq!(seconds("1").ok(), Some(Some(Duration::from_secs(1))));
    assert_eq!(seconds("300").ok(), Some(Some(Duration::from_secs(300))));
    for wrong in ["0", "301", "-1", "1.5", "", "ten"] {
        assert_eq!(
            seconds(wrong).err(),
            Some(bad(
                "seconds",
                &format!("bad duration {wrong:?}"),
                "a whole number of seconds from 1 to 300"
            )),
            "{wrong:?}"
        );
    }
}

#[test]
fn numbers_within_their_bounds_or_the_default() {
    let n = |pairs: &[(&str, &str)]| parse(pairs, &["n"]).number("n", 1, 100, 10);
    assert_eq!(n(&[]).ok(), Some(10));
    assert_eq!(n(&[("n", "1")]).ok(), Some(1));
    assert_eq!(n(&[("n", "100")]).ok(), Some(100));
    for wrong in ["0", "101", "-5", "many", "18446744073709551616"] {
        assert_eq!(
            n(&[("n", wrong)]).err(),
            Some(bad(
                "n",
                &format!("bad value {wrong:?}"),
                "a whole number from 1 to 100"
            )),
            "{wrong:?}"
        );
    }
    let since = |pairs: &[(&str, &str)]| parse(pairs, &["since"]).optional_u64("since", "a time");
    assert_eq!(since(&[]).ok(), Some(None));
    assert_eq!(since(&[("since", "0")]).ok(), Some(Some(0)));
    assert_eq!(
        since(&[("since", "-1")]).err(),
        Some(bad("since", "bad value \"-1\"", "a time"))
    );
}

#[test]
fn flags_take_true_false_one_zero() {
    let flag = |pairs: &[(&str, &str)]| parse(pairs, &["stacks"]).flag("stacks");
    assert_eq!(flag(&[]).ok(), Some(false));
    for (value, expected) in [("true", true), ("1", true), ("false", false), ("0", false)] {
        assert_eq!(flag(&[("stacks", value)]).ok(), Some(expected), "{value}");
    }
    assert_eq!(
        flag(&[("stacks", "yes")]).err(),
        Some(bad("stacks", "bad value \"yes\"", "true, false, 1 or 0"))
    );
}

#[test]
fn snapshot_ids_are_positive() {
    let id = |pairs: &[(&str, &str)]| parse(pairs, &["base"]).snapshot_id("base");
    assert_eq!(id(&[]).ok(), Some(None));
    assert_eq!(id(&[("base", "7")]).ok(), Some(Some(7)));
    for wrong in ["0", "-1", "one"] {
        assert_eq!(
            id(&[("base", wrong)]).err(),
            Some(bad(
                "base",
                &format!("bad snapshot id {wrong:?}"),
                "a snapshot id returned by POST /snapshots (a positive integer)"
            )),
            "{wrong:?}"
        );
    }
}

#[test]
fn trim_is_allocation_or_none() {
    let trim = |pairs: &[(&str, &str)]| parse(pairs, &["trim"]).trim();
    assert_eq!(trim(&[]).ok(), Some(Trim::Allocation));
    assert_eq!(trim(&[("trim", "none")]).ok(), Some(Trim::None));
    assert_eq!(
        trim(&[("trim", "all")]).err(),
        Some(bad(
            "trim",
            "unknown trim \"all\"",
            "allocation (default) or none"
        ))
    );
}
