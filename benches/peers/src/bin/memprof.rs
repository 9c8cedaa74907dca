//! The workloads under memprof (`MemProf::jemalloc()`); the rate comes from
//! `MEMPROF_RATE` (unset: the default, 524288; `1`: exact mode; `0`: sampling
//! off, the fast paths alone), which names the variant in the printed line
//! (`memprof`, `memprof-exact`, `memprof-off`).
//!
//! In `w3` the memprof endpoint (`memprof::serve("127.0.0.1:0")`) runs
//! alongside the service under load.
//!
//! Besides the shared workloads, two measurements only memprof has:
//!
//! * `mem <MiB>`: the profiler's own memory
//!   (`memprof::counters().profiler_bytes`) with a live heap of `<MiB>` MiB
//!   of mixed-size blocks (8..=4096 bytes) at the current rate.
//! * `endpoint <stacks>`: `<stacks>` distinct live stacks (recorded exactly,
//!   on this thread only), then the latency of `GET /heap` (pprof and
//!   folded), `GET /flamegraph` and the differential `GET
//!   /flamegraph?base=1` against a snapshot kept first, on the loopback
//!   endpoint: the first request (which symbolises) and the median of later
//!   ones.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn main() {
    eprintln!(
        "memprof: rate={} {}",
        memprof::rate(),
        memprof_peers::jemalloc_config()
    );
    let (workload, size) = memprof_peers::args();
    let variant = match memprof::rate() {
        0 => "memprof-off",
        1 => "memprof-exact",
        _ => "memprof",
    };
    match workload.as_str() {
        "mem" => mem(variant, size),
        "endpoint" => endpoint(variant, size),
        "w3" => {
            // The endpoint (and its history sampler) runs alongside the
            // service, as it would in production.
            let handle = memprof::serve("127.0.0.1:0").expect("start the endpoint");
            eprintln!("memprof: endpoint on {}", handle.local_addr());
            memprof_peers::w3::report(variant, &memprof_peers::w3::run(size));
            drop(handle);
        }
        _ => {
            let took = memprof_peers::run_workload(&workload, size)
                .unwrap_or_else(|| panic!("unknown workload {workload:?}"));
            memprof_peers::report(&workload, variant, size, took);
        }
    }
    let c = memprof::counters();
    eprintln!(
        "memprof: samples_taken={} live_samples={} stacks={} samples_dropped={} stacks_dropped={} skipped_reentrant={} profiler_bytes={} unwinder={:?}",
        c.samples_taken, c.live_samples, c.stacks, c.samples_dropped, c.stacks_dropped, c.skipped_reentrant, c.profiler_bytes,
        memprof::unwinder()
    );
}

/// Live heap of `mib` MiB in blocks of 8..=4096 bytes; prints the
/// profiler's bytes before and after, and what promoting sampled blocks to
/// a page added to the heap (`ratio` counts both).
fn mem(variant: &str, mib: usize) {
    let before = memprof::counters().profiler_bytes;
    let target = mib << 20;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(target / 1024);
    let mut heap = 0usize;
    while heap < target {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let size = 8 + (rng % 4089) as usize;
        let mut block = Vec::with_capacity(size);
        block.push(rng as u8);
        heap += size;
        blocks.push(block);
    }
    let c = memprof::counters();
    println!(
        "peers workload=mem variant={variant} heap_bytes={heap} blocks={} live_samples={} profiler_bytes_before={before} profiler_bytes={} promotion_padding_bytes={} ratio={:.6}",
        blocks.len(),
        c.live_samples,
        c.profiler_bytes,
        c.promotion_padding_bytes,
        (c.profiler_bytes + c.promotion_padding_bytes) as f64 / heap as f64
    );
    black_box(&blocks);
}

/// One live allocation per path through a binary tree of two functions,
/// `depth` levels deep: `bits` picks `branch_a` or `branch_b` at each level,
/// so every `bits` below `1 << depth` gives a distinct stack.
fn step(bits: u32, depth: u32, out: &mut Vec<Box<[u8; 64]>>) {
    if depth == 0 {
        out.push(Box::new([bits as u8; 64]));
    } else if bits & 1 == 0 {
        branch_a(bits >> 1, depth - 1, out);
    } else {
        branch_b(bits >> 1, depth - 1, out);
    }
}

#[inline(never)]
fn branch_a(bits: u32, depth: u32, out: &mut Vec<Box<[u8; 64]>>) {
    step(black_box(bits), depth, out);
    black_box(1u8);
}

#[inline(never)]
fn branch_b(bits: u32, depth: u32, out: &mut Vec<Box<[u8; 64]>>) {
    step(black_box(bits), depth, out);
    black_box(2u8);
}

/// `GET path` over a fresh connection; returns the time to the last byte.
fn get(addr: SocketAddr, path: &str) -> (Duration, usize) {
    request(addr, "GET", path)
}

/// `method path` over a fresh connection, without a body; returns the time
/// to the last byte and the response's size.
fn request(addr: SocketAddr, method: &str, path: &str) -> (Duration, usize) {
    let began = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect to the endpoint");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let took = began.elapsed();
    assert!(
        response.starts_with(b"HTTP/1.1 2"),
        "{method} {path}: {}",
        String::from_utf8_lossy(&response[..response.len().min(300)])
    );
    (took, response.len())
}

fn endpoint(variant: &str, stacks: usize) {
    let depth = usize::BITS - stacks.saturating_sub(1).leading_zeros();
    let mut live = Vec::with_capacity(stacks);
    // Record this thread's allocations exactly, so each stack is sampled.
    memprof::set_thread_rate(Some(1));
    for bits in 0..stacks as u32 {
        step(bits, depth, &mut live);
    }
    memprof::set_thread_rate(None);
    let recorded = memprof::counters().stacks;
    let handle = memprof::serve("127.0.0.1:0").expect("start the endpoint");
    let addr = handle.local_addr();
    for path in [
        "/heap",
        "/heap?format=folded",
        "/flamegraph",
        "/flamegraph?base=1",
    ] {
        if path.contains("base=") {
            // A kept snapshot to diff against (the same stacks: a
            // differential flamegraph of no change still pairs every one).
            request(
                addr,
                "POST",
                &format!("{}/snapshots", memprof::http::PREFIX),
            );
        }
        let path = format!("{}{path}", memprof::http::PREFIX);
        let (first, bytes) = get(addr, &path);
        let mut later: Vec<Duration> = (0..9).map(|_| get(addr, &path).0).collect();
        later.sort();
        println!(
            "peers workload=endpoint variant={variant} stacks={recorded} depth={depth} path={path} bytes={bytes} first_ms={:.1} median_ms={:.1} max_ms={:.1}",
            first.as_secs_f64() * 1e3,
            later[later.len() / 2].as_secs_f64() * 1e3,
            later[later.len() - 1].as_secs_f64() * 1e3,
        );
    }
    phases(variant, recorded);
    black_box(&live);
}

/// Where a view's time goes, without HTTP: the median (and the fastest) of 15 runs of
/// taking the snapshot, folding it, rendering the flamegraph from a snapshot and
/// writing pprof from one.
fn phases(variant: &str, stacks: u64) {
    use memprof::export::{flamegraph, pprof};
    use memprof::Kind;
    fn median(mut f: impl FnMut()) -> (f64, f64) {
        let mut runs: Vec<Duration> = (0..15)
            .map(|_| {
                let began = Instant::now();
                f();
                began.elapsed()
            })
            .collect();
        runs.sort();
        (
            runs[runs.len() / 2].as_secs_f64() * 1e3,
            runs[0].as_secs_f64() * 1e3,
        )
    }
    let snapshot = memprof::snapshot();
    let options = flamegraph::FlamegraphOptions::for_kind(Kind::InuseSpace);
    let take = median(|| drop(black_box(memprof::snapshot())));
    let folded = median(|| {
        let mut out = Vec::new();
        snapshot.write_folded(&mut out, Kind::InuseSpace).unwrap();
        black_box(out);
    });
    let svg = median(|| {
        let mut out = Vec::new();
        flamegraph::write_flamegraph(&snapshot, Kind::InuseSpace, &options, &mut out).unwrap();
        black_box(out);
    });
    let proto = median(|| {
        let mut out = Vec::new();
        pprof::write_pprof(&snapshot, &pprof::PprofOptions::default(), &mut out).unwrap();
        black_box(out);
    });
    println!(
        "peers workload=endpoint-phases variant={variant} stacks={stacks} snapshot_ms={:.1} folded_ms={:.1} flamegraph_ms={:.1} pprof_ms={:.1} (fastest: {:.1} {:.1} {:.1} {:.1})",
        take.0, folded.0, svg.0, proto.0, take.1, folded.1, svg.1, proto.1
    );
}
