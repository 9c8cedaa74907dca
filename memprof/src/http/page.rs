//! `GET /`: the page a person opens during an incident: the previous run
//! when the dump directory holds one (its last dump, whether the kernel
//! OOM-killed it, its flamegraph and a differential against the live heap),
//! memory over time (SVG plots drawn by a small hand-written script, the
//! heap's peak marked on them and linked to its flamegraph), doctor
//! findings, the top stacks, leak candidates, and links to the rest.
//!
//! The page is static, embedded at compile time (`assets/page.html` and
//! `assets/page.js`), and needs nothing from a network: it polls the JSON
//! routes every 5 s. All links and fetches are relative to the routes, so
//! it works wherever the router is nested.
//!
//! Its Content-Security-Policy allows exactly the page's own inline scripts
//! and style, named by their SHA-256 (computed from the embedded page, so it
//! cannot drift from it), fetches to its own origin, and nothing else: no
//! other script, style, frame, form target or plugin, and no framing by
//! other pages.
//!
//! Behind a token the page itself is served without one (it is static and
//! holds nothing of the process); it asks for the token, keeps it in the
//! tab's `sessionStorage` and sends it as `Authorization: Bearer` on each of
//! its fetches, and fetches what its links point at the same way.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// The whole page: the HTML head and body, then the script inline.
const PAGE: &str = concat!(
    include_str!("assets/page.html"),
    include_str!("assets/page.js"),
    "</script>\n</body>\n</html>\n"
);

/// The page's Content-Security-Policy.
static POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = content_security_policy(PAGE);
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// The policy for `page`: its inline `<script>` and `<style>` elements by
/// hash, its own origin for fetches and images.
fn content_security_policy(page: &str) -> String {
    let hashes = |tag: &str| -> String {
        inline_elements(page, tag)
            .map(|body| {
                let digest = Sha256::digest(body.as_bytes());
                format!(
                    " 'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            })
            .collect()
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src 'self'; \
         base-uri 'self'; form-action 'none'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style")
    )
}

/// The text of every `<tag>...</tag>` element without attributes in `page`.
fn inline_elements<'a>(page: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = page;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let body = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(body)
    })
}

/// The page.
pub(crate) async fn index() -> Response {
    let mut response = Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, POLICY.clone());
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_each_inline_element() {
        let page = "<head><script>a()</script><style>b{}</style></head><script>c()</script>";
        let scripts: Vec<&str> = inline_elements(page, "script").collect();
        assert_eq!(scripts, ["a()", "c()"]);
        let policy = content_security_policy(page);
        // As `printf 'a()' | openssl dgst -sha256 -binary | base64` says.
        assert!(
            policy.contains("script-src 'sha256-qVpDBgj7bpq5hMAcGp3AOc79J3Y1Z4HvySTwKrWDoy4=' "),
            "{policy}"
        );
        assert_eq!(policy.matches("'sha256-").count(), 3, "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        let real = content_security_policy(PAGE);
        assert_eq!(
            real.matches("'sha256-").count(),
            PAGE.matches("<script>").count() + PAGE.matches("<style>").count()
        );
    }
}
