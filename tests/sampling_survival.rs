//! The allocator survives what production throws at it: thousands of
//! threads, allocation from thread-local destructors, fork, rate changes.

#![allow(clippy::vec_box)] // separate heap blocks are the point of these tests

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memprof::{Kind, MemProf};

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

struct AllocatesOnDrop(Vec<u8>);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        // Allocation (and a free) from a thread-local destructor at thread exit.
        let copy = self.0.repeat(3);
        std::hint::black_box(copy);
    }
}

thread_local! {
    static ON_EXIT: std::cell::RefCell<Option<AllocatesOnDrop>> = const { std::cell::RefCell::new(None) };
}

#[inline(never)]
fn survival_thread_body(i: usize) -> usize {
    ON_EXIT.with(|c| *c.borrow_mut() = Some(AllocatesOnDrop(vec![i as u8; 100])));
    let mut blocks: Vec<Vec<u8>> = (0..50).map(|j| vec![j as u8; 64 + (i + j) % 900]).collect();
    blocks.truncate(10);
    blocks.iter().map(Vec::len).sum()
}

#[test]
fn two_thousand_threads_and_rate_changes() {
    memprof::set_rate(512);
    let stop = Arc::new(AtomicBool::new(false));
    // A thread flipping the rate while the others allocate.
    let flipper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let rates = [1, 0, 4096, 512, 1 << 20, 1];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                memprof::set_rate(rates[i % rates.len()]);
                i += 1;
                std::thread::yield_now();
            }
        })
    };
    let mut total = 0;
    for batch in 0..40 {
        let handles: Vec<_> = (0..50)
            .map(|k| std::thread::spawn(move || survival_thread_body(batch * 50 + k)))
            .collect();
        for h in handles {
            total += h.join().expect("thread ran");
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(total > 0);
    memprof::set_rate(512);
    let snap = memprof::snapshot();
    assert!(snap.counters.samples_taken > 0);
    // Every sampled block of the threads was freed or is among the 10 kept
    // per thread until the thread returned: nothing of theirs is live now.
    let live: f64 = snap
        .stacks
        .iter()
        .filter(|s| s.mentions("survival_thread_body"))
        .map(|s| s.value(Kind::InuseSpace))
        .sum();
    assert!(live < 1.0, "thread blocks are all freed, estimate {live}");
}

#[test]
fn fork_child_allocates_and_exits_cleanly() {
    memprof::set_thread_rate(Some(1));
    let stop = Arc::new(AtomicBool::new(false));
    // Other threads sampling every allocation, so locks are busy at fork.
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                memprof::set_thread_rate(Some(1));
                while !stop.load(Ordering::Relaxed) {
                    let v: Vec<Vec<u8>> = (0..100).map(|i| vec![0u8; 16 + i]).collect();
                    std::hint::black_box(v);
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: the child only allocates, frees and exits; memprof's
        // atfork handlers keep its locks consistent.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![1u8; 8 + i]).collect();
            // Lock-free counters only: this test is about the allocation
            // path's locks (the symbolizer's are tests/fork_symbolize.rs's).
            let ok = v.len() == 1000 && memprof::counters().samples_taken > 0;
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or test harness.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status),
            "child did not exit normally: {status}"
        );
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
    stop.store(true, Ordering::Relaxed);
    for t in busy {
        t.join().unwrap();
    }
    memprof::set_thread_rate(None);
}
