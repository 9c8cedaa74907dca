//! `GET /`: the web page.
//!
//! A placeholder listing the routes until the real page (plots, doctor
//! findings, top stacks) lands here; it only needs to replace [`index`].

use axum::extract::OriginalUri;
use axum::response::Html;

/// The page. Links are absolute, built from the path the page was reached
/// at, so they work wherever the router is nested.
pub(crate) async fn index(OriginalUri(uri): OriginalUri) -> Html<String> {
    let base = escape(uri.path().trim_end_matches('/'));
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>memprof</title></head>\n\
         <body><h1>memprof</h1>\n<ul>\n\
         <li><a href=\"{base}/flamegraph\">flamegraph</a> (in-use bytes; \
         <a href=\"{base}/flamegraph?kind=alloc_space\">allocated bytes</a>)</li>\n\
         <li><a href=\"{base}/heap?format=folded\">heap, folded stacks</a>, \
         <a href=\"{base}/heap?format=json\">JSON</a>, \
         <a href=\"{base}/heap\">pprof</a> (<code>go tool pprof URL</code>)</li>\n\
         <li><a href=\"{base}/snapshots\">snapshots</a> (POST to take one), \
         <code>{base}/diff?base=ID</code></li>\n\
         <li><a href=\"{base}/stats\">stats</a></li>\n\
         <li><a href=\"{base}/metrics\">metrics</a> (Prometheus)</li>\n\
         </ul></body></html>\n"
    ))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
