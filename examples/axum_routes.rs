//! Memory by route: each request of an axum service runs in a scope named
//! after the route it matched (`route=GET /users/{id}`), so
//! `memprof::scopes()`, `/debug/memprof/stats` and the flamegraphs (a
//! `[scope route=...]` root frame) say which endpoint holds the memory.
//!
//! `cargo run --release --example axum_routes`, then
//! `curl -X POST localhost:3000/users/7/sessions` a few times and
//! `curl localhost:3000/memory`.

use std::sync::Mutex;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use memprof::InScope;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// A session store that is never cleaned: the leak to find.
static SESSIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}\n")
}

async fn new_session(Path(id): Path<u64>) -> String {
    // Work the route hands to another task keeps the route's scope when
    // given one where the task is created: `route=POST .../audit`.
    tokio::spawn(async move { format!("audit {id}").len() }.in_scope("audit"))
        .await
        .expect("audit task");
    let mut sessions = SESSIONS.lock().expect("sessions");
    sessions.push(format!("session of user {id}: {}", "x".repeat(4096)));
    format!("{} sessions\n", sessions.len())
}

/// Every scope's figures as JSON (estimates; exact at `MEMPROF_RATE=1`).
async fn memory() -> Json<Vec<memprof::ScopeStats>> {
    Json(memprof::scopes())
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/users/{id}/sessions", post(new_session))
        // After the routes it covers; routes added later are not scoped.
        .layer(memprof::tower::RouteScopeLayer::new())
        .route("/memory", get(memory))
        .nest("/debug/memprof", memprof::http::router())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!(
        "serving on http://{}/ (per-route memory at /memory, memprof at /debug/memprof/)",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app()).await.expect("serve");
}
