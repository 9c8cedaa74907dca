//! `#[memprof::test]` follows the threads a test body spawns (with
//! `std::thread::spawn`, `std::thread::scope`, and their own children), and
//! only those: tests running in parallel in the same binary, tracked or
//! plain, are not blamed for each other's allocations.
//!
//! The cases are `#[ignore]`d; the harness tests at the bottom run this same
//! binary on them (alone, or several at once with a rendezvous so that they
//! overlap) and check each verdict and message.

use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// Leaks exactly `bytes` in one block, filled with `fill` (distinct per
/// caller, so that the compiler cannot merge the callers into one).
fn leak(bytes: usize, fill: u8) {
    std::hint::black_box(Box::leak(vec![fill; bytes].into_boxed_slice()));
}

#[inline(never)]
fn spawned_thread_leaks_here(bytes: usize) {
    leak(bytes, 1);
}

#[inline(never)]
fn scoped_thread_leaks_here(bytes: usize) {
    leak(bytes, 2);
}

#[inline(never)]
fn grandchild_thread_leaks_here(bytes: usize) {
    leak(bytes, 3);
}

#[inline(never)]
fn detached_thread_leaks_here(bytes: usize) {
    leak(bytes, 4);
}

#[ignore = "fails on purpose; run by the harness below"]
#[memprof::test(max_leak = "1 MiB")]
fn leak_from_spawned_thread_case() {
    std::thread::spawn(|| spawned_thread_leaks_here(64 << 20))
        .join()
        .unwrap();
}

#[ignore = "fails on purpose; run by the harness below"]
#[memprof::test(max_leak = "1 MiB")]
fn leak_from_scoped_thread_case() {
    std::thread::scope(|s| {
        s.spawn(|| scoped_thread_leaks_here(3 << 20));
    });
}

#[ignore = "fails on purpose; run by the harness below"]
#[memprof::test(max_leak = "1 MiB")]
fn leak_from_grandchild_thread_case() {
    std::thread::spawn(|| {
        std::thread::Builder::new()
            .name("grandchild".into())
            .spawn(|| grandchild_thread_leaks_here(5 << 20))
            .unwrap()
            .join()
            .unwrap();
    })
    .join()
    .unwrap();
}

#[ignore = "fails on purpose; run by the harness below"]
#[memprof::test(max_leak = "1 MiB")]
fn leak_from_detached_thread_case() {
    // The thread outlives the test: what it left live by the end counts.
    let (leaked, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        detached_thread_leaks_here(2 << 20);
        leaked.send(()).unwrap();
        loop {
            std::thread::park();
        }
    });
    wait.recv().unwrap();
}

/// A barrier for the parallel cases, with a timeout so that a run with too
/// few test threads fails instead of hanging.
struct Rendezvous {
    arrived: Mutex<u32>,
    all_here: Condvar,
}

static RENDEZVOUS: Rendezvous = Rendezvous {
    arrived: Mutex::new(0),
    all_here: Condvar::new(),
};

/// The parallel cases (all three run at once).
const PARALLEL_CASES: u32 = 3;

impl Rendezvous {
    /// Waits until every parallel case has reached its `round`th call.
    fn meet(&self, round: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        while *arrived < round * PARALLEL_CASES {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("the parallel cases must run at once (--test-threads=3)");
            arrived = self.all_here.wait_timeout(arrived, left).unwrap().0;
        }
    }
}

#[inline(never)]
fn plain_test_leaks_here(bytes: usize) {
    leak(bytes, 5);
}

#[inline(never)]
fn tracked_test_leaks_here(bytes: usize) {
    leak(bytes, 6);
}

/// Churns allocations on several threads, leaving nothing behind: the
/// blocks are freed on their own thread, or sent back and freed by another.
#[inline(never)]
fn churn_without_leaking() {
    let (send, receive) = std::sync::mpsc::channel::<Vec<String>>();
    let worker = std::thread::spawn(move || {
        for i in 0..200 {
            let words: Vec<String> = (0..50).map(|j| format!("{i}-{j}")).collect();
            send.send(words).unwrap();
        }
    });
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut kept = Vec::new();
                for i in 0..2_000 {
                    kept.push(vec![i as u8; 100 + i % 300]);
                    if kept.len() > 50 {
                        kept.remove(0);
                    }
                }
            });
        }
    });
    // Joined before receiving: a blocking receive would leave std's
    // per-thread channel context (48 B, freed at thread exit) live.
    worker.join().unwrap();
    for words in receive.try_iter() {
        drop(words);
    }
}

#[ignore = "run at once with the other parallel cases by the harness below"]
#[memprof::test]
fn parallel_tracked_clean_case() {
    RENDEZVOUS.meet(1);
    churn_without_leaking();
    // The other two cases have leaked, from their threads and from threads
    // they spawned, while this body and its threads ran.
    RENDEZVOUS.meet(2);
    churn_without_leaking();
    RENDEZVOUS.meet(3);
}

#[ignore = "run at once with the other parallel cases by the harness below"]
#[test]
fn parallel_plain_leak_case() {
    RENDEZVOUS.meet(1);
    plain_test_leaks_here(8 << 20);
    std::thread::spawn(|| plain_test_leaks_here(8 << 20))
        .join()
        .unwrap();
    RENDEZVOUS.meet(2);
    RENDEZVOUS.meet(3);
}

#[ignore = "run at once with the other parallel cases by the harness below"]
#[memprof::test(max_leak = "1 MiB")]
fn parallel_tracked_leak_case() {
    RENDEZVOUS.meet(1);
    std::thread::scope(|s| {
        s.spawn(|| tracked_test_leaks_here(3 << 20));
    });
    RENDEZVOUS.meet(2);
    RENDEZVOUS.meet(3);
}

/// The programmatic API counts what started threads keep, exactly, while
/// the harness tests of this binary run in parallel.
#[test]
fn track_and_soak_count_what_started_threads_keep() {
    let (kept, retained) =
        memprof::testing::track(|| std::thread::spawn(|| vec![1u8; 100]).join().unwrap());
    assert_eq!(retained.bytes, 100, "{retained:?}");
    assert_eq!(retained.threads, 2, "{retained:?}");
    assert!(retained.followed_new_threads);
    drop(kept);

    // Each iteration runs on a scoped thread of its own: a bounded queue
    // is flat (the thread's bookkeeping, which std frees on that thread
    // after the scope returns, is not growth)...
    let queue = Mutex::new(std::collections::VecDeque::new());
    let report = memprof::testing::soak(200, 100, || {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut queue = queue.lock().unwrap();
                queue.push_back(vec![0u8; 512]);
                if queue.len() > 50 {
                    queue.pop_front();
                }
            });
        })
    });
    assert_eq!(report.growth_per_iteration, 0.0, "{report:?}");
    assert_eq!(report.growth.threads, 301, "the body's and 300 scoped");
    // ... and a leak on them is exact.
    let report = memprof::testing::soak(200, 10, || {
        std::thread::scope(|s| {
            s.spawn(|| leak(1000, 7));
        })
    });
    assert_eq!(report.growth_per_iteration, 1000.0, "{report:?}");
    assert_eq!(report.growth.bytes, 200 * 1000);
}

/// Runs this binary on the ignored cases matching `filter`, and returns
/// (success, output).
fn run_cases(filter: &str, exact: bool, threads: u32) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--ignored", filter]);
    if exact {
        command.arg("--exact");
    }
    let out = command
        .arg(format!("--test-threads={threads}"))
        .output()
        .expect("run the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The verdict libtest printed for `case` ("ok" or "FAILED").
fn verdict<'a>(output: &'a str, case: &str) -> &'a str {
    let prefix = format!("test {case} ... ");
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no verdict for {case}:\n{output}"))
        .trim()
}

/// Bytes the flamegraph's folded file gives the stacks that contain `function`.
fn folded_bytes(case: &str, function: &str) -> u64 {
    let path =
        memprof::testing::artifacts_dir().join(format!("memprof_test_threads..{case}.folded"));
    let folded =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    folded
        .lines()
        .filter(|l| l.contains(function))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Runs a case alone and checks that it fails, with the threads counted in
/// its message and the exact bytes it leaked in `function` in its
/// flamegraph (the message's short stacks name the function in release
/// builds only).
fn assert_thread_leak_fails(case: &str, function: &str, bytes: u64, threads: &str) {
    let (ok, output) = run_cases(case, true, 1);
    assert!(
        !ok && verdict(&output, case) == "FAILED",
        "a leak from a spawned thread must fail the test:\n{output}"
    );
    assert!(
        output.contains(&format!("memprof: memprof_test_threads::{case} leaked")),
        "{output}"
    );
    assert!(output.contains(threads), "says {threads:?}:\n{output}");
    assert_eq!(folded_bytes(case, function), bytes, "exact:\n{output}");
}

#[test]
fn a_leak_from_a_spawned_thread_fails_the_test() {
    assert_thread_leak_fails(
        "leak_from_spawned_thread_case",
        "spawned_thread_leaks_here",
        64 << 20,
        "on the test's thread and 1 it started;",
    );
}

#[test]
fn a_leak_from_a_scoped_thread_fails_the_test() {
    assert_thread_leak_fails(
        "leak_from_scoped_thread_case",
        "scoped_thread_leaks_here",
        3 << 20,
        "on the test's thread and 1 it started;",
    );
}

#[test]
fn a_leak_from_a_thread_of_a_spawned_thread_fails_the_test() {
    assert_thread_leak_fails(
        "leak_from_grandchild_thread_case",
        "grandchild_thread_leaks_here",
        5 << 20,
        "on the test's thread and 2 it started;",
    );
}

#[test]
fn a_leak_from_a_thread_still_running_at_the_end_fails_the_test() {
    assert_thread_leak_fails(
        "leak_from_detached_thread_case",
        "detached_thread_leaks_here",
        2 << 20,
        "on the test's thread and 1 it started, 1 of them still running at the end;",
    );
}

#[test]
fn parallel_tests_see_only_their_own_threads() {
    let (ok, output) = run_cases("parallel_", false, PARALLEL_CASES);
    assert!(!ok, "the tracked leak fails:\n{output}");
    // The plain test's 16 MiB, from its own thread and one it spawned,
    // leaked while both tracked bodies ran: neither is blamed for it.
    assert_eq!(
        verdict(&output, "parallel_plain_leak_case"),
        "ok",
        "{output}"
    );
    assert_eq!(
        verdict(&output, "parallel_tracked_clean_case"),
        "ok",
        "a tracked test whose threads free what they allocate passes \
         while others leak:\n{output}"
    );
    assert_eq!(
        verdict(&output, "parallel_tracked_leak_case"),
        "FAILED",
        "{output}"
    );
    assert!(!output.contains("plain_test_leaks_here"), "{output}");
    assert_eq!(
        folded_bytes("parallel_tracked_leak_case", "tracked_test_leaks_here"),
        3 << 20
    );
    assert_eq!(
        folded_bytes("parallel_tracked_leak_case", "plain_test_leaks_here"),
        0
    );
}
