//! The memprof demo: a small axum service with the profiler on, driving its
//! own traffic so there is something to see.
//!
//! It has the three things memprof is for:
//!
//! * request churn: `/api/report` builds a JSON report and drops it;
//! * a slow leak: `/api/session` remembers every session id forever;
//! * a fragmentation pattern: a background job allocates many small blocks
//!   and frees five of every six, pinning mostly-empty slabs.
//!
//! Run it with `cargo run --release --example demo` and open the URLs it
//! prints. Flags: `--addr HOST:PORT` for the endpoint (default
//! 127.0.0.1:6060), `--seconds N` to stop after N seconds.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// Sessions are remembered and never forgotten: the leak.
#[derive(Default)]
struct AppState {
    sessions: Mutex<HashMap<u64, Vec<u8>>>,
}

#[tokio::main]
async fn main() {
    let (endpoint_addr, seconds) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("demo: {message}\nusage: demo [--addr HOST:PORT] [--seconds N]");
            std::process::exit(2);
        }
    };
    let endpoint = match memprof::serve(endpoint_addr.as_str()) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("demo: cannot start the memprof endpoint on {endpoint_addr}: {e}");
            std::process::exit(1);
        }
    };

    let state = Arc::new(AppState::default());
    let app = Router::new()
        .route("/api/report", get(report))
        .route("/api/session", get(session))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the service");
    let service_addr = listener.local_addr().expect("service address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let base = endpoint.url();
    println!("memprof demo: service on http://{service_addr}, profiler endpoint on {base}");
    println!();
    println!("  open in a browser:   {base}/");
    println!("  leak candidates:     curl '{base}/leaks?format=text'");
    println!("  flamegraph:          curl -o heap.svg '{base}/flamegraph'");
    println!("  go tool pprof:       go tool pprof -top '{base}/heap'");
    println!("  allocator detail:    curl '{base}/allocator?format=text'");
    println!("  what is wrong:       curl '{base}/doctor?format=text'");
    println!("  Prometheus metrics:  curl '{base}/metrics'");
    println!();
    println!("endpoint: {base}");

    std::thread::Builder::new()
        .name("fragmenter".into())
        .spawn(fragmentation_job)
        .expect("start the fragmentation job");
    std::thread::Builder::new()
        .name("traffic".into())
        .spawn(move || traffic(service_addr))
        .expect("start the traffic");

    match seconds {
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        },
    }
    let kept = state.sessions.lock().map(|s| s.len()).unwrap_or(0);
    println!("demo: done; {kept} sessions leaked");
}

fn parse_args() -> Result<(String, Option<u64>), String> {
    let mut addr = std::env::var("MEMPROF_ADDR").unwrap_or_else(|_| "127.0.0.1:6060".to_string());
    let mut seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                seconds = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seconds: `{value}` is not a number"))?,
                );
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((addr, seconds))
}

/// Request churn: a report built and dropped per request.
async fn report(Query(query): Query<HashMap<String, String>>) -> Json<serde_json::Value> {
    Json(build_report(
        query
            .get("rows")
            .and_then(|r| r.parse().ok())
            .unwrap_or(200),
    ))
}

#[inline(never)]
fn build_report(rows: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..rows.min(10_000))
        .map(
            |i| serde_json::json!({ "id": i, "name": format!("row {i}"), "tags": ["a", "b", "c"] }),
        )
        .collect();
    let total = rows.len();
    serde_json::json!({ "rows": rows.len(), "sample": rows.into_iter().take(3).collect::<Vec<_>>(), "total": total })
}

/// The leak: each session keeps 32 KiB forever.
async fn session(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> String {
    let id = query.get("id").and_then(|i| i.parse().ok()).unwrap_or(0);
    remember_session(&state, id);
    format!("session {id}\n")
}

#[inline(never)]
fn remember_session(state: &AppState, id: u64) {
    let profile = vec![(id % 251) as u8; 32 * 1024];
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(id, profile);
    }
}

/// Fragmentation: a warm-up fills 60 MB of 100-byte blocks and keeps one in
/// six, as a cache that loads everything and keeps what was asked for would.
/// The survivors pin slabs that are five-sixths empty, which nothing of
/// another size can use. Then churn of other sizes runs on top.
fn fragmentation_job() {
    let pinned = fragment_heap(600_000);
    loop {
        let burst: Vec<Vec<u8>> = (0..2_000).map(|i| vec![0u8; 512 + i % 1024]).collect();
        drop(burst);
        std::thread::sleep(Duration::from_secs(1));
        std::hint::black_box(&pinned);
    }
}

// Separate heap blocks are the point: they are what fragments.
#[allow(clippy::vec_box)]
#[inline(never)]
fn fragment_heap(blocks: usize) -> Vec<Box<[u8; 100]>> {
    let all: Vec<Box<[u8; 100]>> = (0..blocks).map(|i| Box::new([i as u8; 100])).collect();
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| i % 6 == 0)
        .map(|(_, b)| b)
        .collect()
}

/// Drives the service: mostly reports (churn), some new sessions (leak).
fn traffic(service: SocketAddr) {
    let started = Instant::now();
    let mut session = 0u64;
    loop {
        for _ in 0..20 {
            let _ = get_path(service, "/api/report?rows=300");
        }
        session += 1;
        let _ = get_path(service, &format!("/api/session?id={session}"));
        // About 20 sessions a second: 640 KiB/s leaked.
        let elapsed = started.elapsed().as_millis() as u64;
        let due = session * 50;
        if due > elapsed {
            std::thread::sleep(Duration::from_millis(due - elapsed));
        }
    }
}

fn get_path(addr: SocketAddr, path: &str) -> std::io::Result<usize> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(response.len())
}
