//! The router without a socket: requests through `tower::ServiceExt::oneshot`,
//! for what a connection adds nothing to (parameters, formats, shapes of
//! answers, fallbacks). What needs a socket (limits, `serve`, real clients)
//! is tested in the workspace's `tests/http_*.rs`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

use super::{router_with, EndpointConfig};

/// A response, read whole.
struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Reply {
    /// The body of a text answer, after the warning the endpoint puts first
    /// when memprof is not the global allocator (as in these unit tests).
    fn text(&self) -> &str {
        match self.body.strip_prefix("WARNING: ") {
            Some(rest) => rest.split_once("\n\n").map_or("", |(_, text)| text),
            None => &self.body,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn app() -> Router {
    router_with(EndpointConfig::default())
}

fn call(app: &Router, method: Method, uri: &str) -> Reply {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            content_type,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    })
}

fn get(app: &Router, uri: &str) -> Reply {
    call(app, Method::GET, uri)
}

#[test]
fn every_view_answers_json_or_its_text_form() {
    let app = app();
    // (route, how its text form starts)
    let views = [
        ("/history", "history: "),
        ("/host?top=0", "PROCESS\n"),
        ("/allocator", "allocator statistics not available: "),
        ("/doctor", ""),
        ("/leaks", ""),
        ("/scopes", ""),
        ("/top", "top stacks by inuse_space (total "),
    ];
    for (route, text_start) in views {
        let json = get(&app, route);
        assert_eq!(json.status, StatusCode::OK, "{route}: {}", json.body);
        assert_eq!(json.content_type, "application/json", "{route}");
        assert!(json.json().is_object(), "{route}: {}", json.body);
        let separator = if route.contains('?') { '&' } else { '?' };
        let text = get(&app, &format!("{route}{separator}format=text"));
        assert_eq!(text.status, StatusCode::OK, "{route}: {}", text.body);
        assert_eq!(text.content_type, "text/plain; charset=utf-8", "{route}");
        assert!(
            text.text().starts_with(text_start),
            "{route}: {}",
            text.body
        );
        assert!(text.text().ends_with('\n'), "{route}: {:?}", text.body);
    }
    let doctor = get(&app, "/doctor?format=text");
    assert!(doctor.text().contains("(rates over "), "{}", doctor.body);
    let leaks = get(&app, "/leaks?format=text").body;
    assert!(
        leaks.contains(" leak candidates (min age 10 s, "),
        "{leaks}"
    );
}

#[test]
fn host_text_shows_the_host_and_processes_as_the_command_line_does() {
    let app = app();
    let reply = get(&app, "/host?top=2&format=text");
    let text = reply.text();
    let sections: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    assert_eq!(
        sections,
        [
            "PROCESS",
            "MEMORY",
            "PRESSURE (percent of time stalled on memory)",
            "SETTINGS",
            "ZONES (free memory; unusable index = share of free memory in blocks too small)",
            "CGROUP",
            "OOM KILLS",
            "TOP PROCESSES BY PSS",
        ],
        "{text}"
    );
    let header = "     PID User             Swap        USS        PSS        RSS  Program";
    assert!(text.contains(header), "{text}");
    assert!(text.contains("processes (totals over all read)"), "{text}");
}

#[test]
fn allocator_without_jemalloc_says_why_in_one_shape() {
    // These unit tests run on the system allocator: jemalloc does not serve
    // the process, and /allocator says so with 200 and a reason.
    let app = app();
    let body = get(&app, "/allocator").json();
    assert_eq!(body["available"], false, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not available"), "{body}");
    // `warning` (memprof is not the global allocator) comes and goes with
    // other unit tests in this binary that drive a `MemProf` directly.
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|&k| k != "warning")
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["available", "reason"], "{body}");
    let text = get(&app, "/allocator?format=text");
    assert_eq!(
        text.text(),
        format!("allocator statistics not available: {reason}\n")
    );
    // /stats and the history say the same, in the same words.
    let stats = get(&app, "/stats").json();
    assert_eq!(stats["allocator"], serde_json::Value::Null, "{stats}");
    assert_eq!(stats["allocator_unavailable"], reason, "{stats}");
    let status = crate::history::ensure_started().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while status.latest().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        status.status().allocator_unavailable.as_deref(),
        Some(reason),
        "{:?}",
        status.status()
    );
    let purge = call(&app, Method::POST, "/allocator/purge");
    assert_eq!(
        purge.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        purge.body
    );
}

#[test]
fn a_bad_parameter_is_a_400_naming_it() {
    let app = app();
    for (uri, parameter) in [
        ("/history?since=yesterday", "since"),
        ("/host?top=51", "top"),
        ("/allocator?format=svg", "format"),
        ("/doctor?interval=5", "interval"),
        ("/leaks?limit=0", "limit"),
        ("/top?kind=space", "kind"),
        ("/heap?seconds=0", "seconds"),
        ("/diff", "base"),
        ("/stats?x=1", "x"),
    ] {
        let reply = get(&app, uri);
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.body
        );
        let body = reply.json();
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
        assert!(
            body["error"].is_string() && body["expected"].is_string(),
            "{uri}: {body}"
        );
    }
    let kind = get(&app, "/top?kind=space").json();
    assert_eq!(
        kind["expected"],
        "one of inuse_space, inuse_objects, alloc_space, alloc_objects"
    );
}

#[test]
fn unknown_routes_and_methods() {
    let app = app();
    assert_eq!(get(&app, "/nowhere").status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/snapshots/99").status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/snapshots/x%FF").status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/allocator/purge").status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(&app, Method::DELETE, "/top").status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[test]
fn a_diff_answers_json_or_its_largest_changes_as_text() {
    let app = app();
    let first = call(&app, Method::POST, "/snapshots");
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let base = first.json()["id"].as_u64().unwrap();
    let second = call(&app, Method::POST, "/snapshots").json()["id"]
        .as_u64()
        .unwrap();
    let json = get(&app, &format!("/diff?base={base}&to={second}"));
    assert_eq!(json.content_type, "application/json");
    assert!(json.json()["entries"].is_array(), "{}", json.body);
    let text = get(&app, &format!("/diff?base={base}&to={second}&format=text"));
    assert_eq!(text.content_type, "text/plain; charset=utf-8");
    assert!(
        text.text().starts_with(&format!(
            "snapshot {base} to snapshot {second}: inuse_space "
        )),
        "{}",
        text.body
    );
}
