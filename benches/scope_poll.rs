//! The cost of a scope that follows a future: one poll of a future wrapped
//! with `in_scope` against the same poll unwrapped, in the same run.
//!
//! The inner future is pending for every poll but the last and allocates
//! nothing, so the difference is the adapter alone: entering the scope (one
//! thread-local swap) and restoring the thread's scope on return.
//!
//! * `cargo bench --bench scope_poll`: rounds alternate the two variants;
//!   prints the median ns per poll of each and the median paired ratio.
//! * `scope_poll <bare|scoped> <polls>`: one variant, for instruction
//!   counts (`benches/scope_poll.sh` runs it under cachegrind at n and 2n
//!   polls and divides the difference).
//!
//! Without `--bench` (as under `cargo test`) it does one short smoke round.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use memprof::InScope;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// Pending until polled `left` more times.
struct Countdown {
    left: u64,
}

impl Future for Countdown {
    type Output = ();

    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.left = black_box(self.left) - 1;
        if self.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

#[inline(never)]
fn poll_to_end<F: Future>(future: F) {
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    while future.as_mut().poll(&mut cx).is_pending() {}
}

fn run(scoped: bool, polls: u64) -> f64 {
    let start = Instant::now();
    if scoped {
        poll_to_end(Countdown { left: polls }.in_scope("bench-poll"));
    } else {
        poll_to_end(Countdown { left: polls });
    }
    start.elapsed().as_nanos() as f64 / polls as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [variant, polls] = args.as_slice() {
        if let Ok(polls) = polls.parse::<u64>() {
            let ns = run(variant == "scoped", polls);
            println!("scope_poll variant={variant} polls={polls} ns_per_poll={ns:.2}");
            return;
        }
    }
    let bench = args.iter().any(|a| a == "--bench");
    let (rounds, polls) = if bench { (31, 20_000_000) } else { (1, 10_000) };
    let (mut bare, mut scoped, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (b, s) = if round % 2 == 0 {
            let b = run(false, polls);
            (b, run(true, polls))
        } else {
            let s = run(true, polls);
            (run(false, polls), s)
        };
        bare.push(b);
        scoped.push(s);
        ratios.push(s / b);
    }
    let (b, s) = (median(bare), median(scoped));
    println!("per poll ({rounds} alternating rounds of {polls} polls, medians)");
    println!("  bare future        {b:6.2} ns");
    println!("  in_scope(..)       {s:6.2} ns   (+{:.2} ns)", s - b);
    println!("  paired ratio       {:6.3}", median(ratios));
}
