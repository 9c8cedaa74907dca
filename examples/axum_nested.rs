//! Nesting memprof's views into an existing axum application, next to its
//! own routes, on the port it already serves.
//!
//! `cargo run --release --example axum_nested`, then
//! `curl localhost:3000/debug/memprof/heap?format=folded`.
//!
//! The views carry no authentication of their own in this form: put them
//! behind whatever guards your admin routes (or use `memprof::serve`, which
//! refuses a public address without `MEMPROF_TOKEN`).

use axum::routing::get;
use axum::Router;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

#[tokio::main]
async fn main() {
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .nest("/debug/memprof", memprof::http::router());

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!(
        "serving on http://{}/ with memprof at /debug/memprof/",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
}
