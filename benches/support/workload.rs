//! W1: the allocation workload shared by the `alloc_*` bench binaries.
//!
//! Each thread keeps a ring of live blocks of mixed sizes (8..=4096 bytes)
//! and, per operation, picks a random slot: one time in eight it
//! reallocates that block to a new size, otherwise it frees it and
//! allocates a fresh one there. Frees are therefore in no particular order
//! (not LIFO), and every call goes through the binary's global allocator
//! (`__rust_alloc` and friends), so variants differ only in that allocator.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const RING: usize = 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn size(&mut self) -> usize {
        8 + (self.next() % 4089) as usize
    }
}

fn layout(size: usize) -> Layout {
    // 8..=4096 bytes with alignment 8 is always a valid layout.
    Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>())
}

/// Runs `ops` operations on one thread; returns the time they took.
fn one_thread(seed: u64, ops: usize, start: &Barrier) -> Duration {
    let mut rng = Rng(seed | 1);
    let mut ring = [(std::ptr::null_mut::<u8>(), 0usize); RING];
    // Fill the ring first so the timed loop starts in a steady state.
    for slot in ring.iter_mut() {
        let size = rng.size();
        // SAFETY: `layout(size)` has a non-zero size.
        let ptr = unsafe { alloc(layout(size)) };
        *slot = (ptr, size);
    }
    start.wait();
    let began = Instant::now();
    for _ in 0..ops {
        let r = rng.next();
        let slot = &mut ring[(r as usize) % RING];
        let new_size = rng.size();
        if slot.0.is_null() {
            // SAFETY: non-zero size.
            slot.0 = unsafe { alloc(layout(new_size)) };
        } else if r >> 61 == 0 {
            // SAFETY: `slot.0` was allocated with `layout(slot.1)` by the
            // global allocator and not freed; the new size is non-zero.
            slot.0 = unsafe { realloc(slot.0, layout(slot.1), new_size) };
        } else {
            // SAFETY: as above; the block is not used again.
            unsafe { dealloc(slot.0, layout(slot.1)) };
            // SAFETY: non-zero size.
            slot.0 = unsafe { alloc(layout(new_size)) };
        }
        slot.1 = new_size;
        if !slot.0.is_null() {
            // SAFETY: the block has at least 8 bytes.
            unsafe { slot.0.write_volatile(r as u8) };
        }
    }
    let took = began.elapsed();
    for (ptr, size) in ring {
        if !ptr.is_null() {
            // SAFETY: allocated with `layout(size)`, freed once here.
            unsafe { dealloc(ptr, layout(size)) };
        }
    }
    took
}

/// Runs W1 on `threads` threads, `ops` operations each; returns nanoseconds
/// per operation (the slowest thread's time over its operations).
pub fn run(threads: usize, ops: usize) -> f64 {
    let start = Barrier::new(threads);
    let slowest = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || one_thread(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1), ops, start))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .max()
            .unwrap_or_default()
    });
    slowest.as_nanos() as f64 / ops as f64
}

/// The shared `main` of the `alloc_*` binaries: prints one line per thread
/// count, `alloc <variant> threads=<n> ns_per_op=<x>`.
///
/// Run by `cargo bench` (which passes `--bench`) it does `BENCH_OPS`
/// operations per thread (default 2,000,000); run any other way (`cargo
/// test --benches`, a bare invocation) it does a quick smoke run and exits.
pub fn main(variant: &str) {
    let benching = std::env::args().any(|a| a == "--bench");
    let ops = if benching {
        std::env::var("BENCH_OPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000)
    } else {
        10_000
    };
    for threads in [1, 2] {
        let ns = run(threads, ops);
        println!("alloc {variant} threads={threads} ns_per_op={ns:.2}");
    }
}
