//! fork() while other threads hold memprof's locks: every lock reachable
//! from the allocation path or from a snapshot (see `memprof/src/fork.rs`
//! for the list) is held by some thread at many of the forks here, and each
//! child must allocate, enter a scope no one entered before, read what
//! `/stats` reads, look at the history and take a snapshot, then exit.
//!
//! Children run with a deadline; one still running after it is killed and
//! reported with the step it was stuck in.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const FORKS: usize = 150;
/// Far beyond what a child needs (milliseconds), on a loaded machine too.
const CHILD_DEADLINE: Duration = Duration::from_secs(20);
const MAX_LIVE_CHILDREN: usize = 4;
/// Stop forking after this many stuck children: the verdict is in.
const ENOUGH_STUCK: usize = 3;

/// What a child was doing, written to memory shared with the parent.
const STEPS: [&str; 7] = [
    "not started",
    "allocating",
    "entering a new scope",
    "reading /stats figures (scopes, counters)",
    "reading the history",
    "taking a snapshot",
    "exiting",
];

/// A page shared with every child: one step byte per fork.
struct SharedSteps(*mut AtomicU8);

impl SharedSteps {
    fn new() -> SharedSteps {
        // SAFETY: an anonymous shared mapping with no hint; checked below.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                FORKS,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        SharedSteps(ptr.cast())
    }

    fn step(&self, child: usize) -> &AtomicU8 {
        assert!(child < FORKS);
        // SAFETY: the mapping holds FORKS zeroed bytes for the whole test
        // (never unmapped), and AtomicU8 has u8's layout.
        unsafe { &*self.0.add(child) }
    }
}

/// Names never entered before, one per child, made before forking.
fn child_scope_names() -> Vec<&'static str> {
    (0..FORKS)
        .map(|i| &*Box::leak(format!("forked-child-{i}").into_boxed_str()))
        .collect()
}

/// Threads that keep memprof's locks busy until `stop` is set.
fn hammers(stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    // 1,000 names: more than a thread's cache of recent scopes, fewer than
    // the registry holds, so the children's new scopes still fit.
    let names: Vec<&'static str> = (0..1000)
        .map(|i| &*Box::leak(format!("hammer-{i}").into_boxed_str()))
        .collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    let mut threads = Vec::new();
    let mut spawn = |f: Box<dyn Fn() + Send>| {
        let stop = Arc::clone(stop);
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                f();
            }
        }));
    };
    // The scope registry: entering scopes, new ones and nested ones, so the
    // thread's own cache of recent scopes misses.
    spawn(Box::new(move || {
        for pair in names.chunks(2) {
            let _outer = memprof::enter_scope(pair[0]);
            let _inner = memprof::enter_scope(pair[1]);
            std::hint::black_box(vec![0u8; 64]);
        }
    }));
    // Snapshots: the symbol cache, the stack table, scope paths.
    spawn(Box::new(|| {
        std::hint::black_box(memprof::snapshot());
    }));
    // What /stats and /metrics read.
    spawn(Box::new(|| {
        std::hint::black_box(memprof::scopes());
        std::hint::black_box(memprof::counters());
        std::hint::black_box(memprof::internals::scope_path(1));
    }));
    // The history: its start lock and its state.
    memprof::history::start(
        memprof::history::HistoryConfig::default().interval(Duration::from_millis(10)),
    )
    .expect("history");
    spawn(Box::new(|| {
        let history = memprof::history::get().expect("started");
        std::hint::black_box(history.points(None));
        std::hint::black_box(history.status());
        std::hint::black_box(
            memprof::history::start(
                memprof::history::HistoryConfig::default().interval(Duration::from_millis(10)),
            )
            .expect("history"),
        );
    }));
    // The allocation path's tables, every allocation sampled.
    for _ in 0..2 {
        spawn(Box::new(|| {
            memprof::set_thread_rate(Some(1));
            let v: Vec<Vec<u8>> = (0..200).map(|i| vec![0u8; 16 + i]).collect();
            std::hint::black_box(v);
        }));
    }
    threads
}

/// What a child does; returns its exit code.
fn child(steps: &SharedSteps, i: usize, scope_name: &'static str) -> i32 {
    let step = steps.step(i);
    step.store(1, Ordering::SeqCst);
    let v: Vec<Vec<u8>> = (0..500).map(|i| vec![1u8; 8 + i]).collect();
    step.store(2, Ordering::SeqCst);
    let in_scope = {
        let _scope = memprof::enter_scope(scope_name);
        vec![2u8; 4096]
    };
    step.store(3, Ordering::SeqCst);
    let scoped = memprof::scopes()
        .iter()
        .any(|s| s.path == scope_name && s.entered == 1);
    let counters = memprof::counters();
    step.store(4, Ordering::SeqCst);
    if let Some(history) = memprof::history::get() {
        std::hint::black_box((history.points(None), history.status()));
    }
    step.store(5, Ordering::SeqCst);
    let snapshot = memprof::snapshot();
    let stats = memprof::export::stats::Stats::from_snapshot(&snapshot);
    step.store(6, Ordering::SeqCst);
    // Each failed check sets its own bit of the exit code.
    [
        v.len() == 500 && in_scope.len() == 4096,
        scoped,
        counters.samples_taken > 0,
        !snapshot.stacks.is_empty(),
        stats.scopes.iter().any(|s| s.path == scope_name),
    ]
    .iter()
    .enumerate()
    .map(|(bit, &ok)| i32::from(!ok) << bit)
    .sum()
}

struct Live {
    pid: libc::pid_t,
    index: usize,
    forked_at: Instant,
}

#[derive(Default)]
struct Verdicts {
    stuck: Vec<String>,
    failed: Vec<String>,
    passed: usize,
}

/// Reaps finished children; kills and reports those past the deadline.
/// Returns once `live` holds fewer than `below` children.
fn reap(live: &mut Vec<Live>, steps: &SharedSteps, verdicts: &mut Verdicts, below: usize) {
    loop {
        live.retain(|c| {
            let mut status = 0;
            // SAFETY: `c.pid` is our child; `status` a valid out-pointer.
            let done = unsafe { libc::waitpid(c.pid, &mut status, libc::WNOHANG) };
            if done == c.pid {
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    verdicts.passed += 1;
                } else {
                    verdicts
                        .failed
                        .push(format!("child {}: wait status {status:#x}", c.index));
                }
                return false;
            }
            if c.forked_at.elapsed() > CHILD_DEADLINE {
                let step = steps.step(c.index).load(Ordering::SeqCst);
                // SAFETY: our child; reap what we kill.
                unsafe {
                    libc::kill(c.pid, libc::SIGKILL);
                    libc::waitpid(c.pid, &mut status, 0);
                }
                verdicts.stuck.push(format!(
                    "child {} stuck {}",
                    c.index,
                    STEPS.get(step as usize).unwrap_or(&"?")
                ));
                return false;
            }
            true
        });
        if live.len() < below {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn children_forked_while_every_lock_is_busy_finish() {
    let steps = SharedSteps::new();
    let scope_names = child_scope_names();
    // Warm up: the stacks the snapshots symbolize exist, the history runs.
    std::hint::black_box(memprof::snapshot());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = hammers(&stop);
    std::thread::sleep(Duration::from_millis(200));
    memprof::set_thread_rate(Some(1));

    let mut live = Vec::new();
    let mut verdicts = Verdicts::default();
    for (i, &name) in scope_names.iter().enumerate() {
        reap(&mut live, &steps, &mut verdicts, MAX_LIVE_CHILDREN);
        if verdicts.stuck.len() >= ENOUGH_STUCK {
            break;
        }
        // Vary the moment of the fork against the hammers' loops.
        std::thread::sleep(Duration::from_micros(200 + (i as u64 * 7919) % 3000));
        // SAFETY: the child runs memprof's own code paths (which the fork
        // handlers exist for) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = child(&steps, i, name);
            // SAFETY: ends the child without the harness's exit path.
            unsafe { libc::_exit(code) };
        }
        live.push(Live {
            pid,
            index: i,
            forked_at: Instant::now(),
        });
    }
    reap(&mut live, &steps, &mut verdicts, 1);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    memprof::set_thread_rate(None);
    assert!(
        verdicts.stuck.is_empty() && verdicts.failed.is_empty(),
        "{} children finished; stuck: {:?}; failed: {:?}",
        verdicts.passed,
        verdicts.stuck,
        verdicts.failed
    );
    assert_eq!(verdicts.passed, FORKS);
}
