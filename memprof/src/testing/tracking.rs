//! A body being tracked: its thread exact, its tracking context open, and
//! the blocks its threads hold live.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::retained::Retained;
use crate::sample::LiveSample;
use crate::thread_state::context::Context;

/// Marks the calling thread exact (rate 1) until dropped.
struct ExactThread {
    previous: Option<u64>,
}

impl ExactThread {
    fn start() -> ExactThread {
        ExactThread {
            previous: crate::set_thread_rate(Some(1)),
        }
    }
}

impl Drop for ExactThread {
    fn drop(&mut self) {
        crate::set_thread_rate(self.previous);
    }
}

/// Fails (with a message saying how to fix it) unless `MemProf` is the
/// global allocator.
fn require_memprof() {
    if !crate::sample::serves_global_allocator() {
        panic!(
            "memprof: MemProf is not the global allocator, so this test cannot see allocations. \
             Add to the test crate:\n\n    #[global_allocator]\n    static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();\n"
        );
    }
}

/// A body being tracked on the calling thread: the thread is exact and its
/// tracking context open (so the threads it starts join) until this drops.
pub(super) struct Tracking {
    context: Context,
    since: u64,
    _exact: ExactThread,
}

impl Tracking {
    pub(super) fn start() -> Tracking {
        let exact = ExactThread::start();
        require_memprof();
        let context = Context::open();
        let since = crate::os::monotonic_nanos();
        crate::thread_state::restart_sample_time();
        Tracking {
            context,
            since,
            _exact: exact,
        }
    }

    /// The body's blocks live now.
    pub(super) fn live(&self) -> Vec<LiveSample> {
        crate::thread_state::unsampled(|| {
            let members: HashSet<u32> = self.context.members().into_iter().collect();
            let mut live = crate::sample::live_samples();
            live.retain(|s| s.allocated_at_nanos >= self.since && members.contains(&s.thread));
            live
        })
    }

    /// Waits, up to [`EXIT_GRACE`], for the threads the body started to
    /// exit, and returns how many still run. A thread that has handed its
    /// result back may still be freeing: std frees a scoped thread's packet
    /// and closure on that thread after `thread::scope` has returned.
    pub(super) fn wait_for_started_threads(&self) -> u64 {
        self.wait_for_running(0)
    }

    /// Waits, up to [`EXIT_GRACE`], until at most `expected` of the threads
    /// the body started still run (a soak's runtime keeps its workers from
    /// warmup to the end), and returns how many do.
    pub(super) fn wait_for_running(&self, expected: u64) -> u64 {
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            let running = self.context.members_running();
            if running <= expected || Instant::now() >= deadline {
                return running;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Fills in whose blocks `retained` counted.
    pub(super) fn count_threads(&self, retained: &mut Retained, running: u64) {
        retained.threads = self.context.members().len() as u64;
        retained.threads_running = running;
        retained.threads_not_followed = self.context.not_followed();
        retained.followed_new_threads = self.context.follows_new_threads();
    }
}

/// How long a measurement waits for the threads a body started to exit.
const EXIT_GRACE: Duration = Duration::from_millis(100);
