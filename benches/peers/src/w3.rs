//! `w3`: an axum service under loopback load, in one process.
//!
//! The server is axum 0.8 on a tokio multi-thread runtime with
//! [`SERVER_WORKERS`] worker thread(s), listening on `127.0.0.1:0`. Its one
//! route, `POST /order`, does service-like work per request: parse the JSON
//! body, look up and update a per-user counter in a shared `HashMap`, and
//! answer with a `serde_json` object of a few dozen fields.
//!
//! The load generator is a current-thread tokio runtime on its own std
//! thread, driving [`CONNECTIONS`] keep-alive HTTP/1.1 connections (one
//! request in flight on each, hand-rolled over `TcpStream`), closed loop:
//! each connection sends its next request as soon as the previous response
//! is in. After [`WARMUP`], it counts the requests that complete within the
//! next `size` milliseconds and records each one's latency (send to last
//! byte of the response).
//!
//! It also reads the whole process's CPU time at the window's two ends (the
//! sum of every thread's time on a CPU, from `/proc/self/task/*/schedstat`,
//! in nanoseconds): on a saturated box throughput is CPU per request
//! answered, and CPU time leaves out the idle gaps (a missed wakeup, both
//! threads on one core) that requests/s also counts. On this 2-core VM it
//! spread nearly as widely between runs (60 rounds: the paired ratio's 95%
//! interval +-2.7%, requests/s +-3%), so it is a second reading, not a
//! sharper one.
//!
//! Printed: `peers workload=w3 variant=.. ops=<requests> ns=<window>
//! ns_per_op=<1e9/rps> rps=.. p50_us=.. p99_us=.. max_us=.. cpu_us=<CPU
//! time per request>` (`cpu_us=-` where schedstat is missing).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Concurrent keep-alive connections from the load generator.
pub const CONNECTIONS: usize = 8;
/// tokio worker threads of the server runtime (the box has 2 cores; the
/// load generator takes the other).
pub const SERVER_WORKERS: usize = 1;
/// Load before the measured window.
pub const WARMUP: Duration = Duration::from_millis(500);

type Counters = Arc<Mutex<HashMap<String, u64>>>;

async fn order(State(counters): State<Counters>, Json(body): Json<Value>) -> Json<Value> {
    let user = body["user"].as_str().unwrap_or("anonymous").to_string();
    let id = body["id"].as_u64().unwrap_or(0);
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let seen = {
        let mut map = counters.lock().expect("counter map poisoned");
        let n = map.entry(user.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let mut total = 0.0;
    let lines: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let qty = item["qty"].as_u64().unwrap_or(1);
            let price = item["price"].as_f64().unwrap_or(0.0);
            total += qty as f64 * price;
            json!({
                "line": k,
                "sku": item["sku"].as_str().unwrap_or("?").to_uppercase(),
                "qty": qty,
                "price": price,
                "subtotal": qty as f64 * price,
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("user".into(), json!(user));
    out.insert("seen".into(), json!(seen));
    out.insert("status".into(), json!("accepted"));
    out.insert("total".into(), json!(total));
    out.insert("currency".into(), json!("EUR"));
    out.insert("lines".into(), Value::Array(lines));
    for k in 0..24 {
        out.insert(format!("field_{k:02}"), json!(format!("value-{k}-{id}")));
    }
    out.insert(
        "meta".into(),
        json!({"server": "peers-w3", "trace": format!("{id:016x}"), "region": "eu-west-1"}),
    );
    Json(Value::Object(out))
}

fn request_body(conn: usize, i: u64) -> String {
    let items: Vec<Value> = (0..4u64)
        .map(|k| json!({"sku": format!("sku-{k}-{}", i % 97), "qty": k + 1, "price": 1.25 * k as f64}))
        .collect();
    json!({"id": i, "user": format!("user-{}", (i * 7 + conn as u64) % 1000), "items": items})
        .to_string()
}

/// Reads one HTTP/1.1 response (Content-Length framed) into `buf`; returns
/// its status line's code.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let (header_end, length) = loop {
        let n = stream.read(&mut chunk).await.expect("read a response");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..pos]).expect("ASCII headers");
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length header");
            break (pos + 4, length);
        }
    };
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.expect("read a response body");
        assert!(n > 0, "server closed the connection mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    std::str::from_utf8(&buf[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One closed-loop connection: requests until `end`; returns the latencies
/// (ns) of those that completed in `[start, end)`.
async fn connection(addr: SocketAddr, conn: usize, start: Instant, end: Instant) -> Vec<u64> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut latencies = Vec::with_capacity(200_000);
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut i = (conn as u64) << 32;
    loop {
        let body = request_body(conn, i);
        let request = format!(
            "POST /order HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send a request");
        let status = read_response(&mut stream, &mut buf).await;
        let done = Instant::now();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&buf));
        if done >= end {
            return latencies;
        }
        if done >= start {
            latencies.push((done - sent).as_nanos() as u64);
        }
        i += 1;
    }
}

/// CPU time of every thread of this process so far: the sum of the first
/// field (nanoseconds on a CPU) of each `/proc/self/task/*/schedstat`.
/// `None` where the kernel has no schedstat.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may exit between the listing and the read: skip it.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Result of one `w3` run.
pub struct Stats {
    pub requests: usize,
    pub window: Duration,
    /// The whole process's CPU time over the window.
    pub cpu: Option<Duration>,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Serves and loads for [`WARMUP`] plus `millis` ms; measures the latter.
pub fn run(millis: usize) -> Stats {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_WORKERS)
        .enable_all()
        .build()
        .expect("server runtime");
    let counters: Counters = Arc::default();
    let app = Router::new()
        .route("/order", post(order))
        .with_state(counters);
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    server.spawn(async move { axum::serve(listener, app).await.expect("axum serve") });

    let window = Duration::from_millis(millis as u64);
    let (mut latencies, cpu) = std::thread::spawn(move || {
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        client.block_on(async move {
            let start = Instant::now() + WARMUP;
            let end = start + window;
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|c| tokio::spawn(connection(addr, c, start, end)))
                .collect();
            let cpu = tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                let before = process_cpu();
                tokio::time::sleep_until(end.into()).await;
                Some(process_cpu()?.saturating_sub(before?))
            });
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("connection task panicked"));
            }
            (all, cpu.await.expect("CPU reading task panicked"))
        })
    })
    .join()
    .expect("load generator panicked");
    server.shutdown_timeout(Duration::from_millis(100));

    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1));
        Duration::from_nanos(latencies.get(i - 1).copied().unwrap_or(0))
    };
    Stats {
        requests: latencies.len(),
        window,
        cpu,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Prints the one machine-readable `w3` line.
pub fn report(variant: &str, s: &Stats) {
    let rps = s.requests as f64 / s.window.as_secs_f64();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let cpu_us = match s.cpu {
        Some(cpu) if s.requests > 0 => format!("{:.2}", us(cpu) / s.requests as f64),
        _ => "-".to_string(),
    };
    println!(
        "peers workload=w3 variant={variant} ops={} ns={} ns_per_op={:.2} rps={rps:.1} p50_us={:.1} p99_us={:.1} max_us={:.1} cpu_us={cpu_us} conns={CONNECTIONS}",
        s.requests,
        s.window.as_nanos(),
        1e9 / rps,
        us(s.p50),
        us(s.p99),
        us(s.max),
    );
}
