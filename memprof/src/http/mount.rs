//! What [`super::serve`] answers around the routes it mounts at
//! [`PREFIX`]: `/` and `PREFIX/` redirect to the page, with a JSON body
//! that says where for clients that do not follow redirects; any other path
//! outside the prefix is a JSON 404. The same guard as the routes' checks
//! `Host` and marks them `nosniff`.

use std::net::SocketAddr;

use axum::extract::OriginalUri;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::error::ApiError;
use super::serve::PREFIX;
use super::{guard, router_with, routes, EndpointConfig};

/// The app [`super::serve`] runs on `local`: the routes under [`PREFIX`]
/// and the answers around them.
pub(crate) fn served_app(config: EndpointConfig, local: SocketAddr) -> Router {
    let config = config.bound_to(local);
    let guard = guard::Guard::new(&config.hosts, config.bound);
    Router::new()
        .route(
            "/",
            get(|| async { to_page(StatusCode::TEMPORARY_REDIRECT) }),
        )
        .route(
            &format!("{PREFIX}/"),
            get(|| async { to_page(StatusCode::PERMANENT_REDIRECT) }),
        )
        .fallback(outside)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .nest(PREFIX, router_with(config))
}

#[derive(Serialize)]
struct Moved {
    location: &'static str,
}

/// A redirect to the page, saying where in its body too.
fn to_page(status: StatusCode) -> Response {
    (
        status,
        [(header::LOCATION, PREFIX)],
        Json(Moved { location: PREFIX }),
    )
        .into_response()
}

/// A path outside [`PREFIX`].
async fn outside(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!(
        "no route {}: the endpoint serves {PREFIX} and the routes under it \
         (GET {PREFIX} for the page, which links them)",
        uri.path()
    ))
}
