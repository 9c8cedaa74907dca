//! `GET /`: the page a person opens during an incident: memory over time
//! (SVG plots drawn by a small hand-written script), doctor findings, the
//! top stacks, leak candidates, and links to the rest.
//!
//! The page is static, embedded at compile time (`assets/page.html` and
//! `assets/page.js`), and needs nothing from a network: it polls the JSON
//! routes every 5 s. All links and fetches are relative to the routes, so
//! it works wherever the router is nested.
//!
//! Behind a token the page itself is served without one (it is static and
//! holds nothing of the process); it asks for the token, keeps it in the
//! tab's `sessionStorage` and sends it as `Authorization: Bearer` on each of
//! its fetches, and fetches what its links point at the same way.

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
