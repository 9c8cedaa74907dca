//! `MEMPROF_MAX_STACKS` and `MEMPROF_MAX_SAMPLES` take effect even when
//! sampling starts before `main` (`MEMPROF_RATE=1`), and a setter called
//! after the stack table is in use says it came too late.
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
/// Levels of the call tree: 2^17 distinct stacks, twice the default cap.
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

/// In a child: allocates once from each of 2^LEVELS stacks, then prints the
/// sampler's counters and what a late `set_max_stacks` answered.
#[test]
fn child_allocates_from_many_stacks() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut kept = Vec::with_capacity(1 << LEVELS);
    for path in 0..1u32 << LEVELS {
        step(path, LEVELS, &mut kept);
    }
    let counters = memprof::sample::counters();
    let late = memprof::set_max_stacks(1 << 20);
    println!(
        "COUNTERS stacks={} stacks_dropped={} live_samples={} samples_dropped={} late_set_applied={late}",
        counters.stacks, counters.stacks_dropped, counters.live_samples, counters.samples_dropped
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
fn a_set_max_stacks_after_the_first_sample_says_it_is_too_late() {
    let child = run_with(&[("MEMPROF_RATE", "1")]);
    assert!(child.get("stacks_dropped") > 0, "{:?}", child.counters);
    assert_eq!(child.counters["late_set_applied"], "false");
    assert!(
        child.stderr.contains("set_max_stacks") && child.stderr.contains("too late"),
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
    assert!(child.get("stacks_dropped") > 0, "{:?}", child.counters);
    assert_eq!(child.get("samples_dropped"), 0, "{:?}", child.counters);
}
