//! `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES` take effect even when
//! sampling starts before `main` (`MEMPROF_RATE=1`), the default stack cap
//! holds every stack of a program with 2^17 of them, and a stack cap set
//! below the stacks already kept says so and keeps them.
//!
//! The limits are read once per process, so each setting runs in a child:
//! this test binary again, running only the child test with `CHILD` set.

use std::hint::black_box;
use std::process::Command;

use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const CHILD: &str = "MEMPROF_TABLE_ENV_TEST_CHILD";
const TEST: &str = "child_allocates_from_many_stacks";
/// The cap the child sets once its stacks are in the table.
const LATE_CAP: &str = "MEMPROF_TABLE_ENV_TEST_LATE_CAP";
/// Levels of the call tree: 2^17 distinct stacks.
const LEVELS: u32 = 17;

#[inline(always)]
fn step(bits: u32, level: u32, kept: &mut Vec<Vec<u32>>) {
    if level == 0 {
        kept.push(vec![bits]);
    } else if bits & 1 == 0 {
        zero(bits >> 1, level - 1, kept);
    } else {
        one(bits >> 1, level - 1, kept);
    }
}

/// One of two frames (kept apart so they are not merged) whose sequence
/// down the call tree spells out the path's bits.
#[inline(never)]
fn zero(bits: u32, level: u32, kept: &mut Vec<Vec<u32>>) {
    step(bits, level, kept);
    black_box(level + 1);
}

#[inline(never)]
fn one(bits: u32, level: u32, kept: &mut Vec<Vec<u32>>) {
    step(bits, level, kept);
    black_box(level + 2);
}

/// In a child: allocates once from each of 2^LEVELS stacks, then prints
/// the sampler's counters, what a later `set_max_stacks(LATE_CAP)`
/// answered (`LATE_CAP` from the environment, 2^20 unless set), and the
/// stacks dropped after allocating from 1,000 new stacks under that cap.
#[test]
fn child_allocates_from_many_stacks() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut kept = Vec::with_capacity(2 << LEVELS);
    for path in 0..1u32 << LEVELS {
        step(path, LEVELS, &mut kept);
    }
    let counters = memprof::counters();
    let late_cap = std::env::var(LATE_CAP).map_or(1 << 20, |v| v.parse().unwrap());
    let late_fits = memprof::set_max_stacks(late_cap);
    for path in 0..1000 {
        step(path, LEVELS + 1, &mut kept);
    }
    println!(
        "COUNTERS stacks={} stacks_dropped={} live_samples={} samples_dropped={} \
         late_cap_fits={late_fits} stacks_dropped_after={}",
        counters.stacks,
        counters.stacks_dropped,
        counters.live_samples,
        counters.samples_dropped,
        memprof::counters().stacks_dropped,
    );
    drop(kept);
}

struct Child {
    counters: std::collections::HashMap<String, String>,
    stderr: String,
}

impl Child {
    fn get(&self, name: &str) -> u64 {
        self.counters[name].parse().unwrap()
    }
}

fn run_with(env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("MEMPROF_MAX_STACKS")
        .env_remove("MEMPROF_MAX_SAMPLES")
        .env_remove(LATE_CAP)
        .envs(env.iter().copied());
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("COUNTERS ").map(|(_, c)| c))
        .unwrap_or_else(|| panic!("{env:?}: no counters in {stdout}"));
    let counters = line
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Child {
        counters,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn max_stacks_from_the_environment_holds_every_stack_in_exact_mode() {
    let child = run_with(&[("MEMPROF_RATE", "1"), ("MEMPROF_MAX_STACKS", "200000")]);
    assert_eq!(child.get("stacks_dropped"), 0, "{:?}", child.counters);
    assert!(child.get("stacks") > 1 << LEVELS, "{:?}", child.counters);
    assert!(
        !child.stderr.contains("MEMPROF_MAX_STACKS=\""),
        "{}",
        child.stderr
    );
}

#[test]
fn max_stacks_from_the_environment_caps_the_table_in_exact_mode() {
    let child = run_with(&[("MEMPROF_RATE", "1"), ("MEMPROF_MAX_STACKS", "50000")]);
    assert!(child.get("stacks_dropped") > 0, "{:?}", child.counters);
    assert_eq!(child.get("stacks"), 49_999, "{:?}", child.counters);
}

#[test]
fn the_default_cap_holds_every_stack_in_exact_mode() {
    let child = run_with(&[("MEMPROF_RATE", "1")]);
    assert_eq!(child.get("stacks_dropped"), 0, "{:?}", child.counters);
    assert_eq!(child.counters["late_cap_fits"], "true");
    assert_eq!(child.get("stacks_dropped_after"), 0, "{:?}", child.counters);
    assert!(!child.stderr.contains("set_max_stacks"), "{}", child.stderr);
}

#[test]
fn a_set_max_stacks_below_the_stacks_kept_says_so_and_caps_new_ones() {
    let child = run_with(&[("MEMPROF_RATE", "1"), (LATE_CAP, "1000")]);
    assert_eq!(child.get("stacks_dropped"), 0, "{:?}", child.counters);
    assert_eq!(child.counters["late_cap_fits"], "false");
    assert!(
        child.get("stacks_dropped_after") >= 1000,
        "{:?}",
        child.counters
    );
    assert!(
        child.stderr.contains("set_max_stacks(1000)") && child.stderr.contains("kept already"),
        "stderr {:?}",
        child.stderr
    );
}

#[test]
fn max_samples_from_the_environment_caps_live_samples_in_exact_mode() {
    let child = run_with(&[("MEMPROF_RATE", "1"), ("MEMPROF_MAX_SAMPLES", "5000")]);
    assert!(child.get("samples_dropped") > 0, "{:?}", child.counters);
    // A thread racing a grant may pass the cap by a sample or two.
    assert!(child.get("live_samples") <= 5100, "{:?}", child.counters);
}

#[test]
fn bad_limits_are_said_and_the_defaults_kept() {
    let child = run_with(&[
        ("MEMPROF_RATE", "1"),
        ("MEMPROF_MAX_STACKS", "lots"),
        ("MEMPROF_MAX_SAMPLES", "0"),
    ]);
    assert!(
        child.stderr.contains("MEMPROF_MAX_STACKS=\"lots\""),
        "{}",
        child.stderr
    );
    assert!(
        child.stderr.contains("MEMPROF_MAX_SAMPLES=\"0\""),
        "{}",
        child.stderr
    );
    assert_eq!(child.get("stacks_dropped"), 0, "{:?}", child.counters);
    assert!(child.get("stacks") > 1 << LEVELS, "{:?}", child.counters);
    assert_eq!(child.get("samples_dropped"), 0, "{:?}", child.counters);
}
