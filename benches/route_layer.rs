//! CPU per request of an axum service with `memprof::tower::RouteScopeLayer`
//! against the same service without it, paired in one run.
//!
//! Two routers serve the same W3-style route (`POST /order/{user}`: parse a
//! JSON body, bump a per-user counter, answer a JSON object of ~30 fields,
//! as `benches/peers/src/w3.rs` does), one with the layer and one without,
//! on one tokio worker each side of a blocking keep-alive client thread.
//! Windows of requests alternate between the two; each window's CPU time is
//! the whole process's (`getrusage`), so the client's share is in both.
//! Prints the median CPU per request of each and the median paired ratio.
//!
//! `cargo bench --bench route_layer`; without `--bench` (as under `cargo
//! test`) one short smoke round.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

type Counters = Arc<Mutex<HashMap<String, u64>>>;

async fn order(
    State(counters): State<Counters>,
    Path(user): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let seen = {
        let mut map = counters.lock().unwrap();
        let n = map.entry(user.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let id = body["id"].as_u64().unwrap_or(0);
    let mut out = Map::new();
    out.insert("user".into(), json!(user));
    out.insert("seen".into(), json!(seen));
    for k in 0..28 {
        out.insert(format!("field_{k:02}"), json!(format!("value-{k}-{id}")));
    }
    Json(Value::Object(out))
}

fn app(layer: bool) -> Router {
    let router = Router::new()
        .route("/order/{user}", post(order))
        .with_state(Counters::default());
    if layer {
        router.layer(memprof::tower::RouteScopeLayer::new())
    } else {
        router
    }
}

fn cpu_micros() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF
    // is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// `requests` requests on one keep-alive connection; returns CPU µs per request.
fn window(stream: &mut TcpStream, addr: SocketAddr, requests: u64, base: u64) -> f64 {
    let mut buf = vec![0u8; 16 * 1024];
    let start = cpu_micros();
    for i in 0..requests {
        let body = format!("{{\"id\":{},\"items\":[1,2,3]}}", base + i);
        let request = format!(
            "POST /order/user-{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            i % 100,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut have = 0;
        loop {
            have += stream.read(&mut buf[have..]).unwrap();
            let text = &buf[..have];
            if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&text[..end]).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if have >= end + 4 + length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    break;
                }
            }
        }
    }
    (cpu_micros() - start) / requests as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, requests) = if bench { (41, 4000) } else { (1, 50) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addrs: Vec<SocketAddr> = [false, true]
        .into_iter()
        .map(|layer| {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            runtime.spawn(async move { axum::serve(listener, app(layer)).await.unwrap() });
            addr
        })
        .collect();
    let mut streams: Vec<TcpStream> = addrs
        .iter()
        .map(|&a| {
            let s = TcpStream::connect(a).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    // Warm both up.
    for k in 0..2 {
        window(&mut streams[k], addrs[k], requests / 4 + 1, 0);
    }
    let (mut without, mut with, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut cpu = [0.0; 2];
        for k in order {
            cpu[k] = window(
                &mut streams[k],
                addrs[k],
                requests,
                (round * requests as usize) as u64,
            );
        }
        without.push(cpu[0]);
        with.push(cpu[1]);
        ratios.push(cpu[1] / cpu[0]);
    }
    let (a, b) = (median(without), median(with));
    println!(
        "CPU per request, whole process ({rounds} alternating windows of {requests} requests, medians, rate {})",
        memprof::rate()
    );
    println!("  without the layer  {a:7.2} us");
    println!("  RouteScopeLayer    {b:7.2} us");
    println!("  paired ratio       {:7.3}", median(ratios));
}
