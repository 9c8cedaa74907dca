//! `GET /`: the page a person opens during an incident: memory over time
//! (SVG plots drawn by a small hand-written script), doctor findings, the
//! top stacks, leak candidates, and links to the rest.
//!
//! The page is static, embedded at compile time (`assets/page.html` and
//! `assets/page.js`), and needs nothing from a network: it polls the JSON
//! routes every 5 s. All links and fetches are relative to the routes, so
//! it works wherever the router is nested.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

/// The whole page: the HTML head and body, then the script inline.
const PAGE: &str = concat!(
    include_str!("assets/page.html"),
    include_str!("assets/page.js"),
    "</script>\n</body>\n</html>\n"
);

/// The page.
pub(crate) async fn index() -> Response {
    let mut response = Html(PAGE).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
