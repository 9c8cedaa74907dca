//! Scopes that follow a future: two tasks in two scopes on the same tokio
//! worker threads, each awaiting between its allocations so that the
//! runtime resumes it on whichever worker is free. At rate 1 each scope
//! holds exactly the bytes its own task allocated, wherever it ran.
//!
//! A scope kept on the thread instead (a guard held across `.await`)
//! charges the other task whenever it runs on the same thread in between,
//! and loses the task when it resumes on another worker: either way the
//! figures below would be off.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use memprof::InScope;
use tokio::sync::Notify;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const A_BLOCK: usize = 3000;
const B_BLOCK: usize = 5000;
const MIN_ROUNDS: usize = 50;
const MAX_ROUNDS: usize = 20_000;

/// One task's side of the lock-step with the driver, and where it ran. The
/// vectors get room for every round before the scopes are entered, so that
/// a task's pushes allocate nothing.
struct Task {
    go: Notify,
    done: Notify,
    stop: AtomicBool,
    threads: Mutex<Vec<ThreadId>>,
}

impl Task {
    fn new() -> Arc<Task> {
        Arc::new(Task {
            go: Notify::new(),
            done: Notify::new(),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::with_capacity(2 * MAX_ROUNDS + 2)),
        })
    }

    /// Waits for the driver's go; false when told to stop.
    async fn next_step(&self) -> bool {
        self.go.notified().await;
        !self.stop.load(Ordering::SeqCst)
    }

    /// Records this thread and tells the driver the step is done.
    fn step_done(&self) {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        self.done.notify_one();
    }

    fn distinct_threads(&self) -> HashSet<ThreadId> {
        self.threads.lock().unwrap().iter().copied().collect()
    }
}

/// Task A: its allocation before the await counts in `task-a`, the one after
/// it in the nested `task-a/after_await`; both in `task-a`'s total.
#[memprof::scope("task-a")]
async fn task_a(task: Arc<Task>, mut kept: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    while task.next_step().await {
        kept.push(vec![1; A_BLOCK]);
        task.step_done();
        if !task.next_step().await {
            break;
        }
        after_await(&mut kept).await;
        task.step_done();
    }
    kept
}

#[memprof::scope]
async fn after_await(kept: &mut Vec<Vec<u8>>) {
    kept.push(vec![2; A_BLOCK]);
}

/// Task B, scoped with the adapter rather than the attribute.
async fn task_b(task: Arc<Task>, mut kept: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    while task.next_step().await {
        kept.push(vec![3; B_BLOCK]);
        task.step_done();
    }
    kept
}

fn scope(path: &str) -> memprof::ScopeStats {
    memprof::scopes()
        .into_iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| panic!("no scope {path}: {:?}", memprof::scopes()))
}

#[test]
fn a_scope_follows_its_task_across_awaits_and_threads() {
    memprof::set_rate(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime");
    let (a, b) = (Task::new(), Task::new());
    let room = || Vec::with_capacity(2 * MAX_ROUNDS + 2);
    let (a_kept, b_kept, rounds) = runtime.block_on(async {
        let a_task = tokio::spawn(task_a(a.clone(), room()));
        let b_task = tokio::spawn(task_b(b.clone(), room()).in_scope("task-b"));
        // The driver runs on this thread, not on a worker, so its wakes go
        // through the runtime's shared queue and either worker may resume a
        // task: rounds go on (bounded) until task A has run on both workers
        // and the tasks have shared a thread.
        let mut rounds = 0;
        while rounds < MAX_ROUNDS {
            for task in [&a, &b, &a] {
                task.go.notify_one();
                task.done.notified().await;
            }
            rounds += 1;
            let a_threads = a.distinct_threads();
            if rounds >= MIN_ROUNDS
                && a_threads.len() >= 2
                && !a_threads.is_disjoint(&b.distinct_threads())
            {
                break;
            }
        }
        for task in [&a, &b] {
            task.stop.store(true, Ordering::SeqCst);
            task.go.notify_one();
        }
        (a_task.await.unwrap(), b_task.await.unwrap(), rounds)
    });
    let a_threads = a.distinct_threads();
    assert!(
        a_threads.len() >= 2,
        "task A never changed thread in {rounds} rounds"
    );
    assert!(
        !a_threads.is_disjoint(&b.distinct_threads()),
        "the tasks never shared a thread in {rounds} rounds"
    );
    assert_eq!(a_kept.len(), 2 * rounds);
    assert_eq!(b_kept.len(), rounds);

    // Exact (rate 1): each scope has its own task's blocks and nothing else.
    let (task_a, after_await, task_b) = (
        scope("task-a"),
        scope("task-a/after_await"),
        scope("task-b"),
    );
    let a_bytes = (2 * rounds * A_BLOCK) as f64;
    let b_bytes = (rounds * B_BLOCK) as f64;
    assert_eq!(task_a.alloc_bytes, a_bytes, "{task_a:?}");
    assert_eq!(task_a.net_bytes, a_bytes, "{task_a:?}");
    assert_eq!(after_await.alloc_bytes, a_bytes / 2.0, "{after_await:?}");
    assert_eq!(task_b.alloc_bytes, b_bytes, "{task_b:?}");
    assert_eq!(task_b.net_bytes, b_bytes, "{task_b:?}");
    assert_eq!(task_a.entered, 1);
    assert_eq!(after_await.entered, rounds as u64);
    eprintln!(
        "{rounds} rounds; task A ran on {} threads, task B on {}",
        a_threads.len(),
        b.distinct_threads().len()
    );
    drop((a_kept, b_kept));
}
