//! `#[memprof::test]` on `async fn`s: stacked above `#[tokio::test]` (both
//! flavours), below it, and on its own. The body's tasks count wherever
//! they run (the runtime's workers are started inside the test), tests in
//! parallel do not see each other, a soak awaits its body once per
//! iteration on one runtime, and failures name the leaking function.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn allocate_and_free_in_a_task(i: usize) -> usize {
    let scratch = black_box(vec![i as u8; 4096]);
    scratch.iter().map(|&b| b as usize).sum()
}

#[memprof::test]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_free_what_they_allocate_pass() {
    let tasks: Vec<_> = (0..32)
        .map(|i| tokio::spawn(async move { allocate_and_free_in_a_task(i) }))
        .collect();
    for task in tasks {
        black_box(task.await.unwrap());
    }
}

#[memprof::test]
#[tokio::test]
async fn current_thread_flavour_passes() {
    let task = tokio::spawn(async { allocate_and_free_in_a_task(1) });
    tokio::time::sleep(Duration::from_millis(1)).await;
    black_box(task.await.unwrap());
}

/// On its own: memprof builds a current-thread runtime with time and I/O.
#[memprof::test]
async fn without_tokio_test_a_runtime_is_built() {
    tokio::time::sleep(Duration::from_millis(1)).await;
    black_box(allocate_and_free_in_a_task(2));
}

/// Below `#[tokio::test]`: tokio builds the runtime inside the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[memprof::test(max_leak = "1 KiB")]
async fn below_tokio_test_works_for_a_leak_test() {
    black_box(
        tokio::spawn(async { allocate_and_free_in_a_task(3) })
            .await
            .unwrap(),
    );
}

#[inline(never)]
fn leak_from_a_spawned_task() {
    KEPT.lock().unwrap().push(black_box(vec![5u8; 64 << 10]));
}

#[ignore = "fails on purpose; run by a_leak_in_a_spawned_task_fails_the_test"]
#[memprof::test(max_leak = "1 KiB")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaky_task_case() {
    tokio::spawn(async { leak_from_a_spawned_task() })
        .await
        .unwrap();
}

#[ignore = "fails on purpose; run by a_leak_in_a_spawned_task_fails_the_test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[memprof::test(max_leak = "1 KiB")]
async fn leaky_task_below_tokio_case() {
    tokio::spawn(async { leak_from_a_spawned_task() })
        .await
        .unwrap();
}

static CACHE: Mutex<VecDeque<Vec<u8>>> = Mutex::new(VecDeque::new());

#[inline(never)]
fn cache_value(i: u64) -> Vec<u8> {
    vec![i as u8; 100]
}

/// A bounded cache filled from tasks: flat after warmup.
#[memprof::test(iterations = 300, warmup = 50, max_growth_per_iter = "16 B")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_soak_over_a_bounded_cache_passes() {
    let value = tokio::spawn(async { cache_value(1) }).await.unwrap();
    let mut cache = CACHE.lock().unwrap();
    cache.push_back(value);
    if cache.len() > 20 {
        cache.pop_front();
    }
}

static MAP: Mutex<Option<HashMap<u64, Vec<u8>>>> = Mutex::new(None);

#[inline(never)]
fn grow_the_map_in_a_task(key: u64) {
    MAP.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(key, vec![7u8; 256]);
}

#[ignore = "fails on purpose; run by an_async_soak_over_a_growing_map_fails"]
#[memprof::test(iterations = 300, warmup = 20, max_growth_per_iter = "16 B")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_map_soak_case() {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(async move { grow_the_map_in_a_task(key) })
        .await
        .unwrap();
}

/// Two tests that run at the same time (libtest runs tests on parallel
/// threads; CI's machine has two cores): each meets the other at a
/// rendezvous while both runtimes are up, one keeps 1 MiB until after the
/// other has finished measuring, and neither sees the other's blocks.
static RENDEZVOUS: (Mutex<u32>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits (up to 20 s) until both parallel tests reached `step`.
async fn meet(step: u32) {
    tokio::task::spawn_blocking(move || {
        let (count, arrived) = &RENDEZVOUS;
        let mut count = count.lock().unwrap();
        *count += 1;
        arrived.notify_all();
        let (_count, _timeout) = arrived
            .wait_timeout_while(count, Duration::from_secs(20), |c| *c < 2 * step)
            .unwrap();
    })
    .await
    .unwrap();
}

#[inline(never)]
fn hold_a_mebibyte() -> Vec<u8> {
    black_box(vec![9u8; 1 << 20])
}

#[memprof::test(max_leak = "2 MiB")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_test_that_keeps_a_mebibyte() {
    let kept = tokio::spawn(async { hold_a_mebibyte() }).await.unwrap();
    meet(1).await;
    // The other test measures now, while this one's mebibyte is live.
    meet(2).await;
    KEPT.lock().unwrap().push(kept);
}

#[memprof::test]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_test_that_keeps_nothing() {
    meet(1).await;
    black_box(
        tokio::spawn(async { allocate_and_free_in_a_task(4) })
            .await
            .unwrap(),
    );
    meet(2).await;
}

/// Runs one ignored case of this binary and returns (success, output).
fn run_case(name: &str) -> (bool, String) {
    memprof_dev::run_ignored_test(name)
}

#[test]
fn a_leak_in_a_spawned_task_fails_the_test() {
    for case in ["leaky_task_case", "leaky_task_below_tokio_case"] {
        let (ok, output) = run_case(case);
        assert!(!ok, "{case} must fail:\n{output}");
        assert!(
            output.contains(&format!(
                "memprof: memprof_test_async::{case} leaked 64.1 KiB in 2 blocks"
            )),
            "{case}: exactly the task's 64 KiB (and the Vec's first growth) is reported:\n{output}"
        );
        assert!(
            output.contains("leak_from_a_spawned_task"),
            "{case}: the leaking function is named:\n{output}"
        );
        let svg = memprof::testing::artifacts_dir().join(format!("memprof_test_async..{case}.svg"));
        let svg = std::fs::read_to_string(&svg)
            .unwrap_or_else(|e| panic!("{}: {e}\n{output}", svg.display()));
        assert!(
            svg.contains("leak_from_a_spawned_task"),
            "the flamegraph names it"
        );
    }
}

#[test]
fn an_async_soak_over_a_growing_map_fails() {
    let (ok, output) = run_case("growing_map_soak_case");
    assert!(!ok, "a growing map must fail its soak:\n{output}");
    let growth = memprof_dev::soak_growth_per_iteration(&output);
    // 256 bytes a value, plus the map's share of its table.
    assert!((256.0..1024.0).contains(&growth), "{output}");
    assert!(output.contains("grow_the_map_in_a_task"), "{output}");
}
