//! Turning a handler's result into a response: the content types, the
//! blocking pool the work runs on, and [`answer`], the one place a view's
//! body becomes JSON or its text form as the request's `format` asks.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use super::params::Format;

pub(super) const JSON: &str = "application/json";
pub(super) const TEXT: &str = "text/plain; charset=utf-8";
pub(super) const FOLDED: &str = "text/plain; charset=utf-8";
pub(super) const SVG: &str = "image/svg+xml";

/// A view's body: JSON through serde, and a plain-text form for a terminal
/// (`format=text`). Each body type implements it beside its definition, so
/// its two forms are read and changed together.
pub(super) trait TextForm: Serialize {
    /// The body as aligned plain text, ending in a newline. Amounts are in
    /// binary units, as [`crate::doctor::format_bytes`] writes them.
    fn text(&self) -> String;
}

/// `body` as `format` asks: its text form for [`Format::Text`], JSON (200)
/// otherwise (views take only those two).
pub(super) fn answer<B: TextForm + ?Sized>(body: &B, format: Format) -> Result<Response, ApiError> {
    match format {
        Format::Text => Ok(with_type(body.text().into_bytes(), TEXT)),
        _ => json(StatusCode::OK, body),
    }
}

/// `value` as JSON with `status`.
pub(super) fn json<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = with_type(body, JSON);
    *response.status_mut() = status;
    Ok(response)
}

/// `body` with its `Content-Type`, status 200.
pub(super) fn with_type(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = Body::from(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Runs `f` on the blocking pool: snapshots symbolize, /proc is read, and
/// rendering and encoding are CPU work that must not hold up the runtime's
/// I/O.
pub(super) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}
