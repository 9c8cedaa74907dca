//! The Prometheus rules in `contrib/prometheus/` pass `promtool check
//! rules`, and their unit tests (`memprof.rules.test.yml`: each alert
//! fires on a series that should page and stays quiet on one that should
//! not) pass `promtool test rules`.
//!
//! Skips with a note when promtool is missing, unless
//! `MEMPROF_REQUIRE_CLIENTS=1` (set by `.ci/run`), where it fails.

use std::path::PathBuf;
use std::process::Command;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus")
}

fn promtool(args: &[&str]) {
    let Some(promtool) = memprof_dev::client("promtool") else {
        return;
    };
    let output = Command::new(promtool)
        .args(args)
        .current_dir(rules_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn rules_are_valid() {
    promtool(&["check", "rules", "memprof.rules.yml"]);
}

#[test]
fn alerts_fire_when_they_should_and_only_then() {
    promtool(&["test", "rules", "memprof.rules.test.yml"]);
}
