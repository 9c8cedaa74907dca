//! Stack-capture cost per walker at 10, 30 and 60 frames.
//!
//! Each depth runs on a fresh thread whose stack is padded with
//! non-inlined frames to the target depth; the walkers take turns in every
//! round (so machine noise hits them alike), each timing a batch of
//! captures once warm. Prints `capture <walker> frames=<target>
//! captured=<n> ns=<median>` per walker and depth.
//!
//! The frame-pointer walker is only meaningful in a build with
//! `RUSTFLAGS="-C force-frame-pointers=yes"` (`benches/run.sh` makes one);
//! elsewhere it stops early, which `captured` shows.
//!
//! `BENCH_WALKERS=framehop,backtrace` limits the walkers (for profiling).
//!
//! Run by `cargo bench` (which passes `--bench`); any other way it does one
//! quick round and exits.

use std::hint::black_box;
use std::time::Instant;

use memprof::config::MAX_FRAMES;
use memprof::internals::capture_with;
use memprof::Unwinder;

const WALKERS: [(Unwinder, &str); 3] = [
    (Unwinder::Framehop, "framehop"),
    (Unwinder::Dwarf, "backtrace"),
    (Unwinder::FramePointers, "frame_pointers"),
];

#[inline(never)]
fn recurse(depth: usize, f: &mut dyn FnMut()) {
    if depth == 0 {
        f();
    } else {
        recurse(depth - 1, f);
    }
    black_box(depth);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Frames framehop finds on a fresh thread before any padding.
fn base_frames() -> usize {
    std::thread::spawn(|| {
        let mut buf = [0usize; MAX_FRAMES];
        let mut n = 0;
        recurse(0, &mut || n = capture_with(Unwinder::Framehop, &mut buf));
        n
    })
    .join()
    .unwrap_or(0)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (rounds, batch) = if benching { (31, 500) } else { (1, 5) };
    let only = std::env::var("BENCH_WALKERS").ok();
    let walkers: Vec<(Unwinder, &str)> = WALKERS
        .into_iter()
        .filter(|(_, name)| match only.as_deref() {
            Some(only) => only.split(',').any(|w| w == *name),
            None => true,
        })
        .collect();
    let base = base_frames();
    for target in [10usize, 30, 60] {
        let pad = target.saturating_sub(base);
        let walkers = walkers.clone();
        let lines = std::thread::spawn(move || {
            let mut lines = Vec::new();
            recurse(pad, &mut || {
                let mut buf = [0usize; MAX_FRAMES];
                let mut times = vec![Vec::with_capacity(rounds); walkers.len()];
                let mut captured = vec![0usize; walkers.len()];
                for (i, (walker, _)) in walkers.iter().enumerate() {
                    // Warm up: module list, thread state, rule caches.
                    for _ in 0..10 {
                        captured[i] = capture_with(*walker, &mut buf);
                    }
                }
                for _ in 0..rounds {
                    for (i, (walker, _)) in walkers.iter().enumerate() {
                        let began = Instant::now();
                        for _ in 0..batch {
                            black_box(capture_with(*walker, black_box(&mut buf)));
                        }
                        times[i].push(began.elapsed().as_nanos() as f64 / batch as f64);
                    }
                }
                for (i, (_, name)) in walkers.iter().enumerate() {
                    lines.push(format!(
                        "capture {name} frames={target} captured={} ns={:.0}",
                        captured[i],
                        median(&mut times[i])
                    ));
                }
            });
            lines
        })
        .join()
        .unwrap_or_default();
        for line in lines {
            println!("{line}");
        }
    }
    if benching {
        eprintln!(
            "capture: framehop {:?}",
            memprof::internals::framehop_counters()
        );
    }
}
