//! The bearer token over real HTTP on loopback: the scheme in any case, a
//! blank token refused rather than taken for none, the page served without
//! the token (it asks for it) while every route needs it.

use std::time::Duration;

use memprof::http::{serve_with, EndpointConfig};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn status(url: &str, authorization: Option<&str>) -> u16 {
    let mut request = memprof_dev::agent().get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    memprof_dev::reply(request.call()).status
}

#[test]
fn bearer_scheme_in_any_case_and_only_the_whole_token() {
    let endpoint = serve_with("127.0.0.1:0", EndpointConfig::default().token("s3cret")).unwrap();
    let stats = format!("{}/stats", endpoint.url());
    for accepted in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "Bearer   s3cret",
    ] {
        assert_eq!(status(&stats, Some(accepted)), 200, "{accepted:?}");
    }
    for refused in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Bearer S3CRET",
        "Basic s3cret",
        "s3cret",
        "Bearer",
        "Bearer ",
    ] {
        assert_eq!(status(&stats, Some(refused)), 401, "{refused:?}");
    }
    assert_eq!(status(&stats, None), 401);
    assert_eq!(
        status(&format!("{}/no/such/route", endpoint.url()), None),
        401,
        "routes are not mapped without the token"
    );
    assert_eq!(
        status(&format!("{}/allocator/purge", endpoint.url()), None),
        401
    );
}

#[test]
fn blank_tokens_are_refused_at_bind() {
    for blank in ["", " ", "\t \t", " s3cret", "s3cret\n"] {
        let refused = serve_with("127.0.0.1:0", EndpointConfig::default().token(blank));
        let error = refused
            .err()
            .unwrap_or_else(|| panic!("{blank:?} accepted"));
        let text = format!("{error:?}");
        assert!(text.contains("MEMPROF_TOKEN"), "{blank:?}: {text}");
    }
}

/// A router built with a blank token (an app nesting it) refuses every
/// request rather than serving without one.
#[test]
fn router_with_a_blank_token_refuses_every_request() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest(
        "/m",
        memprof::http::router_with(EndpointConfig::default().token("")),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    let stats = format!("http://{addr}/m/stats");
    assert_eq!(status(&stats, None), 401);
    assert_eq!(status(&stats, Some("Bearer ")), 401);
    assert_eq!(status(&stats, Some("Bearer x")), 401);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn the_page_loads_without_the_token_and_asks_for_it() {
    let endpoint = serve_with("127.0.0.1:0", EndpointConfig::default().token("s3cret")).unwrap();
    let page = memprof_dev::get(&endpoint.url());
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("id=\"token-form\""), "{html}");
    // Its requests carry the token from the tab's sessionStorage.
    assert!(html.contains("sessionStorage"), "{html}");
    assert!(html.contains("\"Bearer \""), "{html}");
    // Only the page: its JSON routes still need the token.
    assert_eq!(status(&format!("{}/doctor", endpoint.url()), None), 401);
    let post = memprof_dev::post(&endpoint.url());
    assert_eq!(post.status, 401, "only GET and HEAD of the page");
}
