//! `#[memprof::test]`: clean tests pass in parallel, leaky ones fail with the
//! leaking stacks named and a flamegraph written.
//!
//! The leaky cases are `#[ignore]`d so a plain run passes; the harness tests
//! at the bottom run this same binary on them and check the outcome.

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

/// A cache that keeps the most recent `capacity` entries, as a service's
/// would: entries made during warmup are evicted and freed by later ones.
struct FifoCache {
    capacity: usize,
    order: std::collections::VecDeque<u64>,
    values: std::collections::HashMap<u64, String>,
}

impl FifoCache {
    fn new(capacity: usize) -> FifoCache {
        FifoCache {
            capacity,
            order: std::collections::VecDeque::with_capacity(capacity + 1),
            values: std::collections::HashMap::with_capacity(capacity + 1),
        }
    }

    fn insert(&mut self, key: u64, value: String) {
        if self.values.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
    }
}

/// A bounded cache is flat from the first iteration after warmup, although
/// every measured iteration allocates an entry that stays live: it frees one
/// made before.
#[memprof::test(iterations = 3000, warmup = 1500, max_growth_per_iter = "16 B")]
fn fifo_cache_of_1000_entries_passes_a_soak() {
    thread_local! {
        static CACHE: std::cell::RefCell<(FifoCache, u64)> =
            std::cell::RefCell::new((FifoCache::new(1000), 0));
    }
    CACHE.with(|c| {
        let (cache, key) = &mut *c.borrow_mut();
        *key += 1;
        // A kilobyte per entry, as a cached response might be.
        cache.insert(*key, format!("{key:0>1024}"));
    });
}

#[inline(never)]
fn soak_leaks_4096_and_10_bytes_here() {
    std::hint::black_box(Box::leak(vec![1u8; 4096].into_boxed_slice()));
    std::hint::black_box(Box::leak(vec![2u8; 10].into_boxed_slice()));
}

#[ignore = "fails on purpose; run by a_real_leak_fails_a_soak_with_its_exact_size"]
#[memprof::test(iterations = 3000, warmup = 1500, max_growth_per_iter = "16 B")]
fn soak_leak_of_4106_bytes_case() {
    soak_leaks_4096_and_10_bytes_here();
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
    memprof_dev::run_ignored_test(name)
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
    assert!(output.contains("limit 1.00 KiB"), "{output}");
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
    let growth = memprof_dev::soak_growth_per_iteration(&output);
    assert!((64.0..128.0).contains(&growth), "{output}");
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

#[test]
fn a_real_leak_fails_a_soak_with_its_exact_size() {
    let (ok, output) = run_case("soak_leak_of_4106_bytes_case");
    assert!(!ok, "a leaking soak must fail:\n{output}");
    assert!(
        output.contains("retains 4106.0 B more per iteration"),
        "exactly 4096 + 10 B per iteration:\n{output}"
    );
    let folded = memprof::testing::artifacts_dir()
        .join("memprof_test_macro..soak_leak_of_4106_bytes_case.folded");
    let folded = std::fs::read_to_string(folded).unwrap();
    let grown: u64 = folded
        .lines()
        .filter(|l| l.contains("soak_leaks_4096_and_10_bytes_here"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(grown, 3000 * 4106, "the flamegraph shows the leak's growth");
}
