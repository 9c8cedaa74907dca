//! Saying first that memprof sees nothing, when `MemProf` is not the global
//! allocator.
//!
//! Without `#[global_allocator] static ALLOC: memprof::MemProf = ...` the
//! endpoint still answers, but every profile is empty and the doctor, the
//! leak view and the top stacks read as "nothing wrong". So while `MemProf`
//! does not serve the process, every answer says so before anything else:
//! a `warning` member in JSON objects, a first line in text, and an
//! `X-Memprof-Warning` header on everything (pprof and SVG included); the
//! page shows the warning above its plots.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::sample::NOT_GLOBAL_ALLOCATOR;

/// The header every answer carries while `MemProf` does not serve the
/// process.
pub(crate) const WARNING_HEADER: &str = "x-memprof-warning";

/// The largest body rewritten to carry the warning; larger ones (a full
/// profile) carry the header only.
const MAX_REWRITTEN_BYTES: usize = 16 << 20;

/// Whether `MemProf` serves the process. Once it has, it always will; until
/// then each request asks again (one small allocation).
pub(crate) fn profiled() -> bool {
    static SEEN: AtomicBool = AtomicBool::new(false);
    if SEEN.load(Ordering::Relaxed) {
        return true;
    }
    let serves = crate::sample::serves_global_allocator();
    if serves {
        SEEN.store(true, Ordering::Relaxed);
    }
    serves
}

/// Middleware: adds the warning to every answer while [`profiled`] is false.
pub(crate) async fn warn_when_unprofiled(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if profiled() {
        return response;
    }
    with_warning(response).await
}

async fn with_warning(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(
        WARNING_HEADER,
        HeaderValue::from_static("MemProf is not the global allocator: profiles are empty"),
    );
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let is_json = content_type.starts_with("application/json");
    let is_text = content_type.starts_with("text/plain");
    if !is_json && !is_text {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = to_bytes(body, MAX_REWRITTEN_BYTES).await else {
        // Too large to rewrite, or failed mid-way: the header says it.
        return Response::from_parts(parts, Body::empty());
    };
    let rewritten = if is_json {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut object)) => {
                object.insert("warning".to_owned(), NOT_GLOBAL_ALLOCATOR.into());
                serde_json::to_vec(&object).unwrap_or_else(|_| bytes.to_vec())
            }
            _ => bytes.to_vec(),
        }
    } else {
        let mut text = format!("WARNING: {NOT_GLOBAL_ALLOCATOR}\n\n").into_bytes();
        text.extend_from_slice(&bytes);
        text
    };
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rewritten))
}
