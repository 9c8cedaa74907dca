//! A real axum service with three routes behind `memprof::tower::RouteScopeLayer`,
//! on 127.0.0.1 with a multi-thread tokio runtime, and clients that drive it
//! over HTTP from several threads: shared by the route-scope tests (one
//! allocator setup per file).
//!
//! * `POST /leak` keeps [`LEAK`] bytes per request in a global vector
//!   (given room for every request first, so only the block is kept);
//! * `GET /churn` allocates [`CHURN_REQUEST_BYTES`] bytes and frees them;
//! * `GET /cache/{key}` fills a cache bounded to [`CACHE_ENTRIES`] entries
//!   of [`CACHE_ENTRY`] bytes.

// Each test file uses part of this module.
#![allow(dead_code)]
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;

pub const LEAK: usize = 32 * 1024;
pub const CHURN: usize = 256 * 1024;
/// What one `GET /churn` allocates itself: the block, 32 words (`word-0`
/// to `word-31`, 214 bytes) and their vector (32 `String`s of 24 bytes).
pub const CHURN_REQUEST_BYTES: usize = CHURN + 214 + 32 * 24;
pub const CACHE_ENTRIES: usize = 64;
pub const CACHE_ENTRY: usize = 8 * 1024;
/// Distinct keys the clients ask the cache for.
pub const CACHE_KEYS: u64 = 1000;

static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static CACHE: Mutex<Option<HashMap<u64, Vec<u8>>>> = Mutex::new(None);

async fn leak() -> String {
    let mut leaked = LEAKED.lock().unwrap();
    leaked.push(vec![7; LEAK]);
    leaked.len().to_string()
}

async fn churn() -> String {
    let block = vec![1u8; CHURN];
    let words: Vec<String> = (0..32).map(|i| format!("word-{i}")).collect();
    let sum = block.iter().map(|&b| b as usize).sum::<usize>() + words.len();
    tokio::task::yield_now().await;
    drop((block, words));
    sum.to_string()
}

async fn cache(Path(key): Path<u64>) -> String {
    let mut cache = CACHE.lock().unwrap();
    let cache = cache.as_mut().expect("made before serving");
    cache
        .entry(key)
        .or_insert_with(|| vec![key as u8; CACHE_ENTRY]);
    if cache.len() > CACHE_ENTRIES {
        let evict = *cache.keys().find(|&&k| k != key).unwrap();
        cache.remove(&evict);
    }
    cache.len().to_string()
}

/// Starts the service on `workers` worker threads, with room in the leak
/// vector for `leaks` requests and the cache made (both outside any route).
pub fn start(workers: usize, leaks: usize) -> (tokio::runtime::Runtime, SocketAddr) {
    LEAKED.lock().unwrap().reserve(leaks);
    *CACHE.lock().unwrap() = Some(HashMap::with_capacity(2 * CACHE_ENTRIES));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app = Router::new()
        .route("/leak", post(leak))
        .route("/churn", get(churn))
        .route("/cache/{key}", get(cache))
        .layer(memprof::tower::RouteScopeLayer::new());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (runtime, addr)
}

/// Sends `rounds` rounds of one request to each route (and one to a path no
/// route matches every tenth round) from `clients` threads at once, with
/// distinct cache keys; returns the leak requests answered.
pub fn drive(addr: SocketAddr, clients: usize, rounds: usize) -> usize {
    std::thread::scope(|threads| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                threads.spawn(move || {
                    let agent = memprof_dev::agent();
                    let url = |path: &str| format!("http://{addr}{path}");
                    let mut leaks = 0;
                    for round in 0..rounds {
                        let reply = memprof_dev::reply(agent.post(url("/leak")).send_empty());
                        assert_eq!(reply.status, 200, "{}", reply.text());
                        leaks += 1;
                        let reply = memprof_dev::reply(agent.get(url("/churn")).call());
                        assert_eq!(reply.status, 200, "{}", reply.text());
                        let key = (round * clients + client) as u64 % CACHE_KEYS;
                        let reply =
                            memprof_dev::reply(agent.get(url(&format!("/cache/{key}"))).call());
                        assert_eq!(reply.status, 200, "{}", reply.text());
                        if round % 10 == 0 {
                            let reply = memprof_dev::reply(agent.get(url("/no/such/route")).call());
                            assert_eq!(reply.status, 404);
                        }
                    }
                    leaks
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// The figures of scope `path`, or a panic listing the scopes there are.
pub fn scope(path: &str) -> memprof::ScopeStats {
    memprof::scopes()
        .into_iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            let paths: Vec<String> = memprof::scopes().into_iter().map(|s| s.path).collect();
            panic!("no scope {path:?}; scopes: {paths:?}")
        })
}
