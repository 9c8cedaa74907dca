//! Every `MEMPROF_*` variable, as `/stats` reports it: a good value is
//! applied and shown, a bad one keeps the default, is said once on stderr
//! with the value echoed, and shows in `/stats` as `invalid` with the value
//! and the reason (a token's value is never echoed).
//!
//! The variables are read once per process, so each setting runs in a child:
//! this test binary again, running only [`TEST`] with [`CHILD`] set. The
//! child serves its endpoint on loopback and prints what `GET /stats` answers.

use std::process::Command;
use std::time::Duration;

use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const CHILD: &str = "MEMPROF_CONFIG_ENV_TEST_CHILD";
const TEST: &str = "child_reports_its_stats";

/// Every variable memprof reads.
const VARIABLES: [&str; 16] = [
    "MEMPROF_RATE",
    "MEMPROF_UNWIND",
    "MEMPROF_MAX_FRAMES",
    "MEMPROF_MAX_STACKS",
    "MEMPROF_MAX_SAMPLES",
    "MEMPROF_ADDR",
    "MEMPROF_TOKEN",
    "MEMPROF_DUMP_DIR",
    "MEMPROF_DUMP_PEAK_MARGIN",
    "MEMPROF_DUMP_PEAK_FLOOR",
    "MEMPROF_DUMP_MIN_INTERVAL",
    "MEMPROF_DUMP_LIMIT_THRESHOLDS",
    "MEMPROF_DUMP_KEEP",
    "MEMPROF_DUMP_MAX_BYTES",
    "MEMPROF_DUMP_ON_EXIT",
    "MEMPROF_DUMP_SIGNAL",
];

/// In a child: allocates (so the allocator path reads its variables), lets
/// `serve_from_env` read `MEMPROF_ADDR` and `MEMPROF_TOKEN`, then prints
/// `/stats` as served over loopback by an endpoint without a token.
#[test]
fn child_reports_its_stats() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    if std::env::var_os(CHILD).is_some_and(|mode| mode == "code") {
        memprof::Config::new()
            .unwinder(memprof::Unwinder::Dwarf)
            .max_frames(32)
            .max_samples(7000)
            .apply()
            .unwrap();
    }
    let data: Vec<Vec<u8>> = (0..2000).map(|i| vec![0u8; 1000 + i]).collect();
    let from_env = memprof::http::serve_from_env();
    let endpoint =
        memprof::http::serve_with("127.0.0.1:0", memprof::http::EndpointConfig::default()).unwrap();
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let body = agent
        .get(format!("{}/stats", endpoint.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    println!("STATS {}", body.trim());
    drop(from_env);
    drop(data);
}

struct Child {
    stats: serde_json::Value,
    stderr: String,
}

impl Child {
    /// `/stats`' report of one variable.
    fn env(&self, name: &str) -> &serde_json::Value {
        &self.stats["config"]["env"][name]
    }
}

fn run_with(env: &[(&str, &str)]) -> Child {
    run_child("env", env)
}

/// Runs the child: with `mode` "code" it applies a `Config` first.
fn run_child(mode: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode);
    for name in VARIABLES {
        command.env_remove(name);
    }
    let out = command.envs(env.iter().copied()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("STATS ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("{env:?}: no stats in {stdout}"));
    Child {
        stats: serde_json::from_str(line).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The settings in effect when no variable says otherwise.
fn defaults() -> serde_json::Value {
    serde_json::json!({
        "rate": 524_288,
        "forced_unwinder": null,
        "max_frames": 64,
        "max_stacks": memprof::config::DEFAULT_MAX_STACKS,
        "max_samples": 4_194_304,
    })
}

/// The settings part of `/stats`' `config` (without `env` and the dump
/// settings, which [`dump_settings_are_read_and_shown`] checks).
fn settings(child: &Child) -> serde_json::Value {
    let mut config = child.stats["config"].clone();
    if let Some(config) = config.as_object_mut() {
        config.remove("env");
        config.remove("dumps");
    }
    config
}

#[test]
fn dump_settings_are_read_and_shown() {
    let dir = std::env::temp_dir().join(format!("memprof-config-env-dumps-{}", std::process::id()));
    let dir_text = dir.to_str().unwrap();
    let child = run_with(&[
        ("MEMPROF_DUMP_DIR", dir_text),
        ("MEMPROF_DUMP_PEAK_MARGIN", "25%"),
        ("MEMPROF_DUMP_PEAK_FLOOR", "1 MiB"),
        ("MEMPROF_DUMP_MIN_INTERVAL", "5s"),
        ("MEMPROF_DUMP_LIMIT_THRESHOLDS", "95,70"),
        ("MEMPROF_DUMP_KEEP", "3"),
        ("MEMPROF_DUMP_MAX_BYTES", "10MiB"),
        ("MEMPROF_DUMP_ON_EXIT", "yes"),
        ("MEMPROF_DUMP_SIGNAL", "SIGUSR2"),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let dumps = &child.stats["config"]["dumps"];
    let expected = serde_json::json!({
        "dir": dir_text,
        "peak_margin": 0.25,
        "peak_floor_bytes": 1 << 20,
        "min_interval": {"secs": 5, "nanos": 0},
        "limit_thresholds_percent": [70, 95],
        "keep": 3,
        "max_bytes": 10 << 20,
        "on_exit": true,
        "signal": "SIGUSR2",
        "build_version": null,
    });
    assert_eq!(dumps, &expected, "{}", child.stats);
    assert_eq!(child.stats["dumps"]["dir"], dir_text, "{}", child.stats);
    assert_eq!(child.env("MEMPROF_DUMP_KEEP")["state"], "applied");
    assert!(!child.stderr.contains("MEMPROF_"), "{}", child.stderr);
}

#[test]
fn unset_variables_show_as_unset_and_the_defaults_apply() {
    let child = run_with(&[]);
    let mut wrong = Vec::new();
    for name in VARIABLES {
        // Nothing reads the token once `serve_from_env` found no address.
        let state = if name == "MEMPROF_TOKEN" {
            "unread"
        } else {
            "unset"
        };
        if child.env(name) != &serde_json::json!({ "state": state }) {
            wrong.push(format!("{name}: {}", child.env(name)));
        }
    }
    if settings(&child) != defaults() {
        wrong.push(format!("settings {}", settings(&child)));
    }
    if child.stderr.contains("MEMPROF_") {
        wrong.push(format!("stderr {:?}", child.stderr));
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", child.stats);
}

#[test]
fn good_values_are_applied_and_shown() {
    let child = run_with(&[
        ("MEMPROF_RATE", "1 MiB"),
        ("MEMPROF_UNWIND", "dwarf"),
        ("MEMPROF_MAX_FRAMES", "128"),
        ("MEMPROF_MAX_STACKS", "100000"),
        ("MEMPROF_MAX_SAMPLES", "5000"),
        ("MEMPROF_ADDR", "127.0.0.1:0"),
        ("MEMPROF_TOKEN", "a-secret-token"),
    ]);
    let mut wrong = Vec::new();
    for (name, value) in [
        ("MEMPROF_RATE", "1 MiB"),
        ("MEMPROF_UNWIND", "dwarf"),
        ("MEMPROF_MAX_FRAMES", "128"),
        ("MEMPROF_MAX_STACKS", "100000"),
        ("MEMPROF_MAX_SAMPLES", "5000"),
        ("MEMPROF_ADDR", "127.0.0.1:0"),
    ] {
        let expected = serde_json::json!({ "state": "applied", "value": value });
        if child.env(name) != &expected {
            wrong.push(format!("{name}: {}", child.env(name)));
        }
    }
    if child.env("MEMPROF_TOKEN") != &serde_json::json!({ "state": "applied" }) {
        wrong.push(format!("MEMPROF_TOKEN: {}", child.env("MEMPROF_TOKEN")));
    }
    let expected = serde_json::json!({
        "rate": 1 << 20,
        "forced_unwinder": "dwarf",
        "max_frames": 128,
        "max_stacks": 100_000,
        "max_samples": 5000,
    });
    if settings(&child) != expected {
        wrong.push(format!("settings {}", settings(&child)));
    }
    if child.stats["unwinder"] != "dwarf" {
        wrong.push(format!("unwinder {}", child.stats["unwinder"]));
    }
    if child.stderr.contains("MEMPROF_") || child.stats.to_string().contains("a-secret-token") {
        wrong.push(format!("stderr {:?}", child.stderr));
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", child.stats);
}

/// What is wrong with the child's answer for a bad `value` of `name`,
/// which `/stats` should refuse saying `why`.
fn refused(name: &str, value: &str, why: &str) -> Vec<String> {
    let child = run_with(&[(name, value)]);
    let mut wrong = Vec::new();
    let report = child.env(name);
    if report["state"] != "invalid" {
        wrong.push(format!("{name}={value:?}: /stats shows {report}"));
    }
    if report["value"] != value {
        wrong.push(format!(
            "{name}={value:?}: /stats echoes {}",
            report["value"]
        ));
    }
    let error = report["error"].as_str().unwrap_or_default();
    if !error.contains(why) {
        wrong.push(format!(
            "{name}={value:?}: /stats gives the reason {error:?}"
        ));
    }
    let said = format!("memprof: {name}=\"{value}\" is not ");
    if child.stderr.matches(&said).count() != 1 || !child.stderr.contains(error) {
        wrong.push(format!("{name}={value:?}: stderr {:?}", child.stderr));
    }
    if settings(&child) != defaults() {
        wrong.push(format!("{name}={value:?}: settings {}", settings(&child)));
    }
    for other in VARIABLES.iter().filter(|&&other| other != name) {
        if child.env(other) != &serde_json::json!({ "state": "unset" })
            && child.env(other) != &serde_json::json!({ "state": "unread" })
        {
            wrong.push(format!("{name}={value:?}: {other} {}", child.env(other)));
        }
    }
    wrong
}

#[test]
fn every_bad_value_keeps_the_default_and_is_said_and_shown() {
    let wrong: Vec<String> = [
        refused("MEMPROF_RATE", "garbage", "expected a number"),
        refused(
            "MEMPROF_UNWIND",
            "sideways",
            "auto, fp, frame_pointers, framehop, dwarf",
        ),
        refused(
            "MEMPROF_UNWIND",
            "backtrace",
            "auto, fp, frame_pointers, framehop, dwarf",
        ),
        refused("MEMPROF_MAX_FRAMES", "0", "from 1 to 256"),
        refused("MEMPROF_MAX_FRAMES", "257", "from 1 to 256"),
        refused("MEMPROF_MAX_FRAMES", "deep", "not a whole number"),
        refused("MEMPROF_MAX_STACKS", "lots", "not a whole number"),
        refused("MEMPROF_MAX_STACKS", "0", "at least 1"),
        refused("MEMPROF_MAX_SAMPLES", "-3", "not a whole number"),
        refused("MEMPROF_ADDR", "not-an-address", "host:port"),
        refused("MEMPROF_DUMP_PEAK_MARGIN", "lots", "percentage"),
        refused("MEMPROF_DUMP_PEAK_FLOOR", "big", "expected a number"),
        refused("MEMPROF_DUMP_MIN_INTERVAL", "1m", "whole seconds"),
        refused("MEMPROF_DUMP_LIMIT_THRESHOLDS", "80,120", "from 1 to 100"),
        refused("MEMPROF_DUMP_KEEP", "0", "at least 1"),
        refused("MEMPROF_DUMP_ON_EXIT", "maybe", "yes, no"),
        refused("MEMPROF_DUMP_SIGNAL", "SIGTERM", "SIGUSR1 or SIGUSR2"),
    ]
    .concat();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_bad_token_is_said_and_shown_without_its_value() {
    let child = run_with(&[
        ("MEMPROF_ADDR", "127.0.0.1:0"),
        ("MEMPROF_TOKEN", " sec ret "),
    ]);
    let report = child.env("MEMPROF_TOKEN");
    assert_eq!(report["state"], "invalid", "{report}");
    assert!(report.get("value").is_none(), "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("whitespace"), "{report}");
    assert_eq!(
        child
            .stderr
            .matches("memprof: MEMPROF_TOKEN is not ")
            .count(),
        1,
        "{:?}",
        child.stderr
    );
    assert!(!child.stderr.contains("sec ret"), "{:?}", child.stderr);
    assert!(
        !child.stats.to_string().contains("sec ret"),
        "{}",
        child.stats
    );
}

#[test]
fn settings_made_in_code_win_over_the_environment() {
    let child = run_child(
        "code",
        &[
            ("MEMPROF_UNWIND", "fp"),
            ("MEMPROF_MAX_FRAMES", "100"),
            ("MEMPROF_MAX_SAMPLES", "5000"),
        ],
    );
    let config = settings(&child);
    assert_eq!(config["forced_unwinder"], "dwarf", "{config}");
    assert_eq!(config["max_frames"], 32, "{config}");
    assert_eq!(config["max_samples"], 7000, "{config}");
    assert_eq!(child.stats["unwinder"], "dwarf");
    for name in [
        "MEMPROF_UNWIND",
        "MEMPROF_MAX_FRAMES",
        "MEMPROF_MAX_SAMPLES",
    ] {
        assert_eq!(child.env(name)["state"], "applied", "{name}");
    }
}
