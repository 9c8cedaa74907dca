//! `#[memprof::test]`: clean tests pass in parallel, leaky ones fail with the
//! leaking stacks named and a flamegraph written.
//!
//! The leaky cases are `#[ignore]`d so a plain run passes; the harness tests
//! at the bottom run this same binary on them and check the outcome.

use std::process::Command;
use std::sync::Mutex;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn parse(input: &str) -> Vec<String> {
    input.split(',').map(|s| s.trim().to_uppercase()).collect()
}

#[memprof::test]
fn clean_parser_does_not_leak() {
    let words = parse("a, b, c, d");
    assert_eq!(words.len(), 4);
}

#[memprof::test(max_leak = "4 KiB")]
fn small_retention_is_within_the_limit() {
    // 1 KiB kept in a static is below the 4 KiB limit.
    KEPT.lock().unwrap().push(vec![0u8; 1024]);
}

#[memprof::test(iterations = 300, warmup = 20, max_growth_per_iter = "16 B")]
fn bounded_cache_passes_a_soak() {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::VecDeque<String>> =
            std::cell::RefCell::new(std::collections::VecDeque::with_capacity(64));
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() == 64 {
            c.pop_front();
        }
        let entry = format!("entry {}", c.len());
        c.push_back(entry);
    });
}

#[inline(never)]
fn leaky_parser_leaks_here(input: &str) {
    let copy = input.repeat(4096);
    KEPT.lock().unwrap().push(copy.into_bytes());
}

#[ignore = "fails on purpose; run by leaky_test_fails_and_names_the_leak"]
#[memprof::test(max_leak = "1 KiB")]
fn leaky_parser_case() {
    leaky_parser_leaks_here("0123456789abcdef");
}

#[inline(never)]
fn soak_growth_here(i: usize) {
    KEPT.lock().unwrap().push(vec![i as u8; 64]);
}

#[ignore = "fails on purpose; run by leaky_soak_fails_with_its_slope"]
#[memprof::test(iterations = 200, warmup = 10, max_growth_per_iter = "16 B")]
fn leaky_soak_case() {
    soak_growth_here(3);
}

/// Runs one ignored case of this binary and returns (success, output).
fn run_case(name: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn leaky_test_fails_and_names_the_leak() {
    let (ok, output) = run_case("leaky_parser_case");
    assert!(!ok, "a leaky test must fail:\n{output}");
    assert!(
        output.contains("memprof: memprof_test_macro::leaky_parser_case leaked"),
        "{output}"
    );
    assert!(
        output.contains("leaky_parser_leaks_here"),
        "the stack is named:\n{output}"
    );
    assert!(output.contains("limit 1.0 KiB"), "{output}");
    let svg = memprof::testing::artifacts_dir().join("memprof_test_macro..leaky_parser_case.svg");
    let svg = std::fs::read_to_string(&svg)
        .unwrap_or_else(|e| panic!("{}: {e}\n{output}", svg.display()));
    assert!(
        svg.starts_with("<?xml") && svg.contains("leaky_parser_leaks_here"),
        "flamegraph names it"
    );
    let folded =
        memprof::testing::artifacts_dir().join("memprof_test_macro..leaky_parser_case.folded");
    let folded = std::fs::read_to_string(folded).unwrap();
    let line = folded
        .lines()
        .find(|l| l.contains("leaky_parser_leaks_here"))
        .unwrap();
    let bytes: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // The repeated string and KEPT's first growth (room for four vectors),
    // both allocated in leaky_parser_leaks_here once std's allocation
    // frames are trimmed.
    let kept_growth = 4 * std::mem::size_of::<Vec<u8>>() as u64;
    assert_eq!(
        bytes,
        16 * 4096 + kept_growth,
        "exact bytes of what it kept"
    );
}

#[test]
fn leaky_soak_fails_with_its_slope() {
    let (ok, output) = run_case("leaky_soak_case");
    assert!(!ok, "a growing soak must fail:\n{output}");
    // 64 bytes a box, plus the static vector's growth now and then.
    let growth: f64 = output
        .split("retains ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no growth figure:\n{output}"));
    assert!((64.0..100.0).contains(&growth), "{output}");
    assert!(output.contains("soak_growth_here"), "{output}");
}

#[test]
fn track_and_soak_report_exact_figures() {
    let (kept, retained) = memprof::testing::track(|| vec![1u8; 1000]);
    assert_eq!(retained.bytes, 1000);
    assert_eq!(retained.blocks, 1);
    drop(kept);
    let ((), nothing) = memprof::testing::track(|| drop(vec![1u8; 1000]));
    assert_eq!(nothing.bytes, 0);

    let mut grow = Vec::new();
    let report = memprof::testing::soak(100, 5, || grow.push(Box::new([0u8; 24])));
    // 24 bytes per box, plus the Vec's buffer doubling now and then.
    assert!(
        report.growth_per_iteration >= 24.0 && report.growth_per_iteration < 60.0,
        "{report:?}"
    );
}
