//! Workloads shared by the `peer-*` binaries, one binary per global
//! allocator, so the variants differ only in that allocator.
//!
//! Every binary takes `<workload> <size>` and prints one line:
//!
//! ```text
//! peers workload=w1 variant=jemalloc ops=4000000 ns=812345678 ns_per_op=203.09
//! ```
//!
//! `ns` is the wall time of the timed region only (profiler start-up and
//! teardown, such as dhat writing its JSON, are outside it); `ns_per_op` is
//! what run.sh compares, so variants may run different op counts.
//!
//! * `w1`: allocation-heavy micro-benchmark. [`THREADS`] threads, each
//!   `size` operations on a ring of [`RING`] live blocks of 8..=4096 bytes:
//!   per op a random slot is reallocated (one time in eight) or freed and
//!   allocated afresh, so frees are in no particular order.
//! * `w1-deep`: `w1` with each thread [`DEEP`] frames deeper (recursion
//!   through an `#[inline(never)]` function) before its loop.
//! * `w2`: service-like. [`THREADS`] threads, each `size` "requests": build
//!   a `HashMap<String, Value>`, turn it into a `serde_json::Value`,
//!   serialise it to a string and parse it back.
//! * `w3`: an axum service under loopback load (see [`w3`]); `size` is the
//!   measured window in milliseconds, and its line adds `rps` and latency
//!   percentiles (`ns_per_op` is `1e9 / rps`).

pub mod w3;

use serde_json::{json, Map, Value};
use std::alloc::{alloc, dealloc, realloc, Layout};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Live blocks per thread in `w1`.
pub const RING: usize = 4096;
/// Threads in `w1` and `w2`.
pub const THREADS: usize = 2;
/// Extra frames in `w1-deep`.
pub const DEEP: usize = 30;

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
    Layout::from_size_align(size, 8).expect("8..=4096 bytes, align 8 is a valid layout")
}

/// Recurses `depth` frames, then runs `f`. The work after the call keeps it
/// from being a tail call, so the frames are really on the stack.
#[inline(never)]
pub fn deeper(depth: usize, f: &mut dyn FnMut() -> Duration) -> Duration {
    if depth == 0 {
        f()
    } else {
        let took = deeper(black_box(depth - 1), f);
        black_box(depth);
        took
    }
}

fn w1_thread(seed: u64, ops: usize, start: &Barrier) -> Duration {
    let mut rng = Rng(seed | 1);
    let mut ring = vec![(std::ptr::null_mut::<u8>(), 0usize); RING];
    for slot in ring.iter_mut() {
        let size = rng.size();
        // SAFETY: `layout(size)` has a non-zero size.
        *slot = (unsafe { alloc(layout(size)) }, size);
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
            // SAFETY: `slot.0` came from the global allocator with
            // `layout(slot.1)` and is live; the new size is non-zero.
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

/// One `w2` request: build, serialise, parse back. Returns a checksum.
fn w2_request(i: u64) -> usize {
    let mut m: HashMap<String, Value> = HashMap::new();
    m.insert("id".to_string(), json!(i));
    m.insert(
        "user".to_string(),
        Value::String(format!("user-{}", i % 1000)),
    );
    m.insert(
        "tags".to_string(),
        Value::Array(
            (0..8)
                .map(|k| Value::String(format!("tag{k}-{i}")))
                .collect(),
        ),
    );
    m.insert(
        "items".to_string(),
        Value::Array(
            (0..6u64)
                .map(|k| json!({"sku": format!("sku-{k}-{}", i % 97), "qty": k, "price": k as f64 * 1.25}))
                .collect(),
        ),
    );
    m.insert(
        "meta".to_string(),
        json!({"ip": "10.0.0.1", "agent": "peers/1.0", "ts": i, "trace": format!("{i:016x}")}),
    );
    let value = Value::Object(m.into_iter().collect::<Map<String, Value>>());
    let text = serde_json::to_string(&value).expect("a Value always serialises");
    let back: Value = serde_json::from_str(&text).expect("our own JSON parses");
    let items = back["items"].as_array().map_or(0, Vec::len);
    text.len() + items
}

fn w2_thread(seed: u64, requests: usize, start: &Barrier) -> Duration {
    start.wait();
    let began = Instant::now();
    let mut sum = 0usize;
    for i in 0..requests as u64 {
        sum = sum.wrapping_add(w2_request(black_box(seed.wrapping_add(i))));
    }
    black_box(sum);
    began.elapsed()
}

/// Runs `body(thread, start)` on [`THREADS`] threads, `depth` frames deep;
/// returns the slowest thread's time.
fn on_threads(depth: usize, body: impl Fn(usize, &Barrier) -> Duration + Sync) -> Duration {
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (start, body) = (&start, &body);
                s.spawn(move || deeper(depth, &mut || body(t, start)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("workload thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

/// Runs a workload by name; returns its wall time, or `None` for an
/// unknown name.
pub fn run_workload(name: &str, size: usize) -> Option<Duration> {
    let seed = |t: usize| 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
    Some(match name {
        "w1" => on_threads(0, |t, start| w1_thread(seed(t), size, start)),
        "w1-deep" => on_threads(DEEP, |t, start| w1_thread(seed(t), size, start)),
        "w2" => on_threads(0, |t, start| w2_thread(seed(t) << 20, size, start)),
        _ => return None,
    })
}

/// Parses `<workload> <size>` from the command line.
pub fn args() -> (String, usize) {
    let mut args = std::env::args().skip(1);
    let usage = "usage: peer-<variant> <w1|w1-deep|w2|w3|...> <size>";
    let workload = args.next().expect(usage);
    let size = args.next().and_then(|s| s.parse().ok()).expect(usage);
    (workload, size)
}

/// Prints the one machine-readable result line.
pub fn report(workload: &str, variant: &str, size: usize, took: Duration) {
    let ops = size * THREADS;
    let ns = took.as_nanos();
    // Each thread does `size` ops concurrently; per-op time is per thread.
    let ns_per_op = ns as f64 / size as f64;
    println!(
        "peers workload={workload} variant={variant} ops={ops} ns={ns} ns_per_op={ns_per_op:.2}"
    );
}

/// The `main` of a binary with only the shared workloads.
pub fn main(variant: &str) {
    let (workload, size) = args();
    if workload == "w3" {
        w3::report(variant, &w3::run(size));
        return;
    }
    let took =
        run_workload(&workload, size).unwrap_or_else(|| panic!("unknown workload {workload:?}"));
    report(&workload, variant, size, took);
}

/// Reads a jemalloc setting through `mallctl` (`bool` or `usize` names).
#[cfg(any(feature = "jemalloc", feature = "memprof", feature = "jeprof"))]
pub fn jemalloc_config() -> String {
    fn read<T: Default + std::fmt::Debug>(name: &str) -> String {
        let cname = format!("{name}\0");
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `cname` is NUL-terminated; `value` is a `T` of `len`
        // bytes, the type jemalloc documents for these names; no new value.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                cname.as_ptr().cast(),
                (&mut value as *mut T).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc == 0 {
            format!("{name}={value:?}")
        } else {
            format!("{name}=<errno {rc}>")
        }
    }
    [
        read::<bool>("config.prof"),
        read::<bool>("opt.prof"),
        read::<usize>("opt.lg_prof_sample"),
    ]
    .join(" ")
}
