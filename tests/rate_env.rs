//! `MEMPROF_RATE` as an operator writes it: numbers of bytes with or
//! without the units `#[memprof::test]` accepts, and bad values refused with
//! the value echoed once on stderr and shown in `/stats`.
//!
//! The rate is read once per process, so each value runs in a child: this
//! test binary again, running only this test with `CHILD` set.

use std::process::Command;

use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const CHILD: &str = "MEMPROF_RATE_ENV_TEST_CHILD";
const TEST: &str = "memprof_rate_values";

/// In a child: what `/stats` says, on one stdout line.
fn report() {
    let data: Vec<Vec<u8>> = (0..1000).map(|i| vec![0u8; 1000 + i]).collect();
    let stats = memprof::export::stats::Stats::from_snapshot(&memprof::snapshot());
    drop(data);
    println!("STATS {}", serde_json::to_string(&stats).unwrap());
}

struct Child {
    stats: serde_json::Value,
    stderr: String,
}

fn run_with(rate: &str) -> Child {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("MEMPROF_RATE", rate)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("STATS ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("MEMPROF_RATE={rate:?}: no stats in {stdout}"));
    Child {
        stats: serde_json::from_str(line).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What is wrong with the child's answer for a value `MEMPROF_RATE`
/// should apply as `bytes`.
fn applied(rate: &str, bytes: u64) -> Vec<String> {
    let child = run_with(rate);
    let mut wrong = Vec::new();
    if child.stats["rate"] != bytes || child.stats["rate_env"] != "applied" {
        wrong.push(format!(
            "{rate:?}: rate {} ({}), expected {bytes} (applied)",
            child.stats["rate"], child.stats["rate_env"]
        ));
    }
    if child.stats["rate_env_value"] != rate {
        wrong.push(format!(
            "{rate:?}: /stats shows {}",
            child.stats["rate_env_value"]
        ));
    }
    if child.stderr.contains("MEMPROF_RATE") {
        wrong.push(format!("{rate:?}: stderr {:?}", child.stderr));
    }
    wrong
}

/// What is wrong with the child's answer for a value `MEMPROF_RATE`
/// should refuse, saying `why`.
fn refused(rate: &str, why: &str) -> Vec<String> {
    let child = run_with(rate);
    let mut wrong = Vec::new();
    if child.stats["rate"] != memprof::DEFAULT_RATE || child.stats["rate_env"] != "invalid" {
        wrong.push(format!(
            "{rate:?}: rate {} ({}), expected the default kept (invalid)",
            child.stats["rate"], child.stats["rate_env"]
        ));
    }
    if child.stats["rate_env_value"] != rate {
        wrong.push(format!(
            "{rate:?}: /stats shows {}",
            child.stats["rate_env_value"]
        ));
    }
    let error = child.stats["rate_env_error"].as_str().unwrap_or_default();
    if !error.contains(why) {
        wrong.push(format!("{rate:?}: /stats gives the reason {error:?}"));
    }
    let said = format!("MEMPROF_RATE=\"{rate}\" is not a sampling rate: {error}");
    if child.stderr.matches(&said).count() != 1 {
        wrong.push(format!("{rate:?}: stderr {:?}", child.stderr));
    }
    wrong
}

#[test]
fn memprof_rate_values() {
    if std::env::var_os(CHILD).is_some() {
        report();
        return;
    }
    let wrong: Vec<String> = [
        applied("1000000", 1_000_000),
        applied("512KiB", 524_288),
        applied("1 MiB", 1 << 20),
        applied("9223372036854775807", i64::MAX as u64),
        refused("garbage", "expected a number"),
        refused("12k", "unknown unit"),
        refused("9223372036854775808", "above the largest rate"),
        refused("18446744073709551615", "above the largest rate"),
    ]
    .concat();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
