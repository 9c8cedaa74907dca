//! Every route of the endpoint over real HTTP: formats, bad parameters,
//! 404/405, tokens, and the refusal to serve publicly without a token.

use std::hint::black_box;
use std::time::Duration;

use memprof::export::pprof::read_pprof;
use memprof::http::{serve_with, EndpointConfig, EndpointHandle, ServeError};
use memprof::Snapshot;
use memprof_dev::{agent, get, post, reply};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn start() -> (EndpointHandle, String) {
    start_with(EndpointConfig::default())
}

fn start_with(config: EndpointConfig) -> (EndpointHandle, String) {
    let handle = serve_with("127.0.0.1:0", config).unwrap();
    let url = handle.url();
    (handle, url)
}

/// Keeps 8 MiB live from a function the profiles must name.
#[inline(never)]
fn routes_test_allocation() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..8).map(|_| black_box(vec![1u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

#[test]
fn heap_in_every_format_and_kind() {
    let live = routes_test_allocation();
    let (_server, url) = start();

    let pprof = get(&format!("{url}/heap"));
    assert_eq!(pprof.status, 200);
    assert_eq!(pprof.content_type, "application/octet-stream");
    assert_eq!(&pprof.body[..2], &[0x1f, 0x8b], "gzipped");
    let profile = read_pprof(&pprof.body[..]).unwrap();
    let strings = &profile.string_table;
    assert_eq!(strings[0], "");
    assert_eq!(strings[profile.default_sample_type as usize], "inuse_space");
    assert!(strings.iter().any(|s| s.contains("routes_test_allocation")));

    let alloc = read_pprof(&get(&format!("{url}/heap?kind=alloc_objects")).body[..]).unwrap();
    assert_eq!(
        alloc.string_table[alloc.default_sample_type as usize],
        "alloc_objects"
    );

    for kind in [
        "inuse_space",
        "inuse_objects",
        "alloc_space",
        "alloc_objects",
    ] {
        let folded = get(&format!("{url}/heap?format=folded&kind={kind}"));
        assert_eq!(folded.status, 200, "{kind}");
        assert!(folded.content_type.starts_with("text/plain"));
        let text = folded.text();
        let line = text
            .lines()
            .find(|l| l.contains("routes_test_allocation"))
            .unwrap_or_else(|| panic!("{kind}: {text}"));
        let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        if kind.ends_with("space") {
            assert!(value >= 8 << 20, "{kind}: {line}");
        } else {
            assert!(value >= 8, "{kind}: {line}");
        }
    }

    let svg = get(&format!("{url}/heap?format=svg&kind=inuse_space"));
    assert_eq!(svg.status, 200);
    assert_eq!(svg.content_type, "image/svg+xml");
    assert!(svg.text().contains("routes_test_allocation"));

    let json = get(&format!("{url}/heap?format=json"));
    assert_eq!(json.content_type, "application/json");
    let snapshot = Snapshot::load(&json.body[..]).unwrap();
    assert!(snapshot
        .stacks
        .iter()
        .any(|s| s.mentions("routes_test_allocation")));
    drop(live);
}

/// Keeps 1 MiB live, allocated before the delta window opens.
#[inline(never)]
fn allocated_before_the_delta() -> Vec<u8> {
    let previous = memprof::set_thread_rate(Some(1));
    let block = black_box(vec![3u8; 1 << 20]);
    memprof::set_thread_rate(previous);
    block
}

#[inline(never)]
fn allocated_during_the_delta() -> usize {
    let previous = memprof::set_thread_rate(Some(1));
    let mut total = 0;
    for _ in 0..16 {
        total += black_box(vec![2u8; 64 << 10]).len();
    }
    memprof::set_thread_rate(previous);
    total
}

#[test]
fn heap_delta_over_seconds_shows_what_happened_meanwhile() {
    let (_server, url) = start();
    let before_only = allocated_before_the_delta();
    let request = {
        let url = url.clone();
        std::thread::spawn(move || {
            get(&format!(
                "{url}/heap?format=folded&kind=alloc_space&seconds=1"
            ))
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    allocated_during_the_delta();
    let delta = request.join().unwrap();
    assert_eq!(delta.status, 200);
    let text = delta.text();
    let line = text
        .lines()
        .find(|l| l.contains("allocated_during_the_delta"))
        .unwrap_or_else(|| panic!("{text}"));
    let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value, 16 * (64 << 10), "exact at rate 1: {line}");
    assert!(
        !text.contains("allocated_before_the_delta"),
        "allocated before the window: {text}"
    );

    let pprof = get(&format!("{url}/heap?seconds=1"));
    let profile = read_pprof(&pprof.body[..]).unwrap();
    assert_eq!(profile.duration_nanos, 1_000_000_000);
    drop(before_only);
}

#[test]
fn flamegraph_plain_and_differential() {
    let live = routes_test_allocation();
    let (_server, url) = start();
    let svg = get(&format!("{url}/flamegraph"));
    assert_eq!(svg.status, 200);
    assert_eq!(svg.content_type, "image/svg+xml");
    let text = svg.text();
    assert!(text.contains("routes_test_allocation"));
    assert!(text.contains("memprof inuse_space"));
    assert!(get(&format!("{url}/flamegraph?kind=alloc_objects"))
        .text()
        .contains("memprof alloc_objects"));

    let id = post(&format!("{url}/snapshots")).json()["id"]
        .as_u64()
        .unwrap();
    let more = routes_test_allocation();
    let diff = get(&format!("{url}/flamegraph?base={id}"));
    assert_eq!(diff.status, 200, "{}", diff.text());
    let text = diff.text();
    assert!(text.contains(&format!("since snapshot {id}")));
    assert!(text.contains("routes_test_allocation"));
    drop((live, more));
}

#[test]
fn snapshots_are_kept_bounded_and_served() {
    let live = routes_test_allocation();
    let (_server, url) = start_with(EndpointConfig::default().max_snapshots(2));
    let first = post(&format!("{url}/snapshots"));
    assert_eq!(first.status, 201, "{}", first.text());
    let id = first.json()["id"].as_u64().unwrap();
    assert_eq!(
        first.location.as_deref(),
        Some(format!("snapshots/{id}").as_str())
    );
    assert!(first.json()["totals"]["inuse_bytes"].as_f64().unwrap() >= (8 << 20) as f64);

    let json = get(&format!("{url}/snapshots/{id}"));
    assert_eq!(json.status, 200);
    assert_eq!(
        Snapshot::load(&json.body[..]).unwrap().taken_at_unix_ms,
        first.json()["taken_at_unix_ms"].as_u64().unwrap()
    );
    let folded = get(&format!(
        "{url}/snapshots/{id}?format=folded&kind=inuse_objects"
    ));
    assert!(folded.text().contains("routes_test_allocation"));
    let svg = get(&format!("{url}/snapshots/{id}?format=svg"));
    assert!(svg.text().contains(&format!("snapshot {id}")));
    let pprof = get(&format!("{url}/snapshots/{id}?format=pprof"));
    let profile = read_pprof(&pprof.body[..]).unwrap();
    let strings = &profile.string_table;
    assert_eq!(strings[profile.default_sample_type as usize], "inuse_space");
    assert!(
        strings.iter().any(|s| s.contains("routes_test_allocation")),
        "the kept snapshot's stacks: {strings:?}"
    );

    let second = post(&format!("{url}/snapshots")).json()["id"]
        .as_u64()
        .unwrap();
    let third = post(&format!("{url}/snapshots")).json()["id"]
        .as_u64()
        .unwrap();
    assert!(id < second && second < third);
    assert_eq!(
        get(&format!("{url}/snapshots/{id}")).status,
        404,
        "oldest dropped"
    );
    let list = get(&format!("{url}/snapshots")).json();
    // The kept snapshots, then the peak's profile (id "peak") once the
    // history sampler has kept one.
    let ids: Vec<&serde_json::Value> = list.as_array().unwrap().iter().map(|s| &s["id"]).collect();
    let kept: Vec<u64> = ids.iter().filter_map(|id| id.as_u64()).collect();
    assert_eq!(kept, [second, third]);
    assert!(ids[kept.len()..].iter().all(|id| *id == "peak"), "{list}");

    for missing in ["999999", "abc", "-1", "0", "%FF", "99999999999999999999999"] {
        let r = get(&format!("{url}/snapshots/{missing}"));
        assert_eq!(r.status, 404, "{missing}");
        assert!(r.json()["error"].as_str().unwrap().contains("snapshot"));
    }
    drop(live);
}

#[test]
fn diff_between_snapshots_and_to_now() {
    let (_server, url) = start();
    let base = post(&format!("{url}/snapshots")).json()["id"]
        .as_u64()
        .unwrap();
    let live = routes_test_allocation();
    let to = post(&format!("{url}/snapshots")).json()["id"]
        .as_u64()
        .unwrap();

    let json = get(&format!("{url}/diff?base={base}&to={to}"));
    assert_eq!(json.status, 200, "{}", json.text());
    let diff = json.json();
    let entry = diff["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["key"]
                .as_str()
                .unwrap()
                .contains("routes_test_allocation")
        })
        .expect("grown stack in the diff");
    let grew = entry["after"]["inuse_bytes"].as_f64().unwrap()
        - entry["before"]["inuse_bytes"].as_f64().unwrap();
    assert!(grew >= (8 << 20) as f64, "{entry}");

    let text = get(&format!("{url}/diff?base={base}&to={to}&format=text"));
    assert_eq!(text.status, 200, "{}", text.text());
    assert!(text.content_type.starts_with("text/plain"));
    let text = text.text();
    assert!(
        text.starts_with(&format!("snapshot {base} to snapshot {to}: inuse_space")),
        "{text}"
    );
    // Sites name functions without their paths: the blocks' site is a
    // closure in this file.
    let row = text
        .lines()
        .position(|l| l.starts_with("  at ") && l.contains("(http_routes.rs:"))
        .unwrap_or_else(|| panic!("no grown stack in\n{text}"));
    // At least the 8 MiB this test kept (tests running alongside may add to
    // the same stack).
    let change = text.lines().nth(row - 1).unwrap();
    assert!(
        change.starts_with('+') && change.contains(" MiB ("),
        "{change}\n{text}"
    );
    let alloc = get(&format!(
        "{url}/diff?base={base}&to={to}&format=text&kind=alloc_objects"
    ))
    .text();
    assert!(alloc.contains(": alloc_objects"), "{alloc}");

    let folded = get(&format!("{url}/diff?base={base}&to={to}&format=folded")).text();
    let line = folded
        .lines()
        .find(|l| l.contains("routes_test_allocation"))
        .unwrap();
    let columns: Vec<&str> = line.rsplitn(3, ' ').collect();
    assert!(columns[0].parse::<u64>().unwrap() > columns[1].parse::<u64>().unwrap());

    let svg = get(&format!(
        "{url}/diff?base={base}&format=svg&kind=alloc_space"
    ));
    assert_eq!(svg.status, 200);
    assert!(svg.text().contains(&format!("snapshot {base} to now")));

    let pprof = get(&format!("{url}/diff?base={base}&to={to}&format=pprof"));
    let profile = read_pprof(&pprof.body[..]).unwrap();
    assert!(profile
        .string_table
        .iter()
        .any(|s| s.contains("routes_test_allocation")));

    assert_eq!(get(&format!("{url}/diff?base=424242")).status, 404);
    assert_eq!(
        get(&format!("{url}/diff?base={base}&to=424242")).status,
        404
    );
    drop(live);
}

#[test]
fn stats_metrics_and_page() {
    let (_server, url) = start();
    let stats = get(&format!("{url}/stats"));
    assert_eq!(stats.status, 200);
    assert_eq!(stats.content_type, "application/json");
    let stats = stats.json();
    assert!(stats["rate"].as_u64().is_some());
    assert!(stats["sampler"]["samples_taken"].as_u64().is_some());
    let unwinder = stats["unwinder"].as_str().unwrap_or_default();
    assert!(
        ["verifying", "frame_pointers", "dwarf", "framehop"].contains(&unwinder),
        "the stack walker is reported: {unwinder}"
    );
    assert!(stats["heap"]["inuse_bytes"].as_f64().is_some());

    let metrics = get(&format!("{url}/metrics"));
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .content_type
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text();
    for family in [
        "memprof_sample_rate_bytes",
        "memprof_samples_taken_total",
        "memprof_samples_dropped_total",
        "memprof_live_samples",
        "memprof_stacks",
        "memprof_profiler_bytes",
        "memprof_heap_inuse_bytes",
        "memprof_heap_alloc_bytes_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family}:\n{text}"
        );
    }

    let page = get(&url);
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    // Links are relative (the page sets its base from its own path).
    assert!(page.text().contains("href=\"flamegraph\""));
    let slash = get(&format!("{url}/"));
    assert_eq!(slash.status, 308);
    assert_eq!(slash.location.as_deref(), Some("/debug/memprof"));
    let root = get(&url.replace("/debug/memprof", "/"));
    assert_eq!(root.status, 307);
    assert_eq!(root.location.as_deref(), Some("/debug/memprof"));
    // A client that does not follow redirects still learns where to go.
    for r in [slash, root] {
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.json()["location"], "/debug/memprof", "{}", r.text());
    }
}

#[test]
fn bad_parameters_get_400_naming_them() {
    let (_server, url) = start();
    let base = post(&format!("{url}/snapshots")).json()["id"]
        .as_u64()
        .unwrap();
    let cases = [
        ("heap?format=xml", "format"),
        ("heap?format=", "format"),
        ("heap?kind=bogus", "kind"),
        ("heap?kind=", "kind"),
        ("heap?kind=%FF%FE", "kind"),
        ("heap?seconds=0", "seconds"),
        ("heap?seconds=301", "seconds"),
        ("heap?seconds=abc", "seconds"),
        ("heap?seconds=-1", "seconds"),
        ("heap?seconds=1.5", "seconds"),
        ("heap?seconds=99999999999999999999999", "seconds"),
        ("heap?knd=alloc_space", "knd"),
        ("flamegraph?format=svg", "format"),
        ("flamegraph?kind=inuse", "kind"),
        ("flamegraph?base=x", "base"),
        ("flamegraph?base=", "base"),
        ("flamegraph?seconds=1&base=1", "seconds"),
        ("snapshots?x=1", "x"),
        ("diff", "base"),
        ("diff?base=abc", "base"),
        ("diff?base=1&to=x", "to"),
        ("diff?base=1&format=gif", "format"),
        ("stats?verbose=1", "verbose"),
        ("metrics?name[]=x", "name[]"),
        ("heap?kind=inuse_space&kind=alloc_space", "kind"),
        ("heap?format=folded&format=folded", "format"),
        ("diff?base=1&base=2", "base"),
    ];
    for (path, parameter) in cases {
        let r = get(&format!("{url}/{path}"));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.content_type, "application/json", "{path}");
        let body = r.json();
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(!body["error"].as_str().unwrap().is_empty(), "{path}");
        assert!(!body["expected"].as_str().unwrap().is_empty(), "{path}");
    }
    let r = get(&format!("{url}/snapshots/{base}?format=txt"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["expected"], "one of json, folded, svg, pprof");
    let r = post(&format!("{url}/snapshots?kind=x"));
    assert_eq!(
        (r.status, r.json()["parameter"].as_str()),
        (400, Some("kind"))
    );

    let repeated = get(&format!("{url}/heap?kind=inuse_space&kind=alloc_space")).json();
    assert!(
        repeated["error"].as_str().unwrap().contains("2 times"),
        "{repeated}"
    );
    assert!(
        repeated["expected"].as_str().unwrap().contains("once"),
        "{repeated}"
    );
    // A route without parameters says so; others list what they take.
    let none = get(&format!("{url}/stats?x=1")).json();
    assert_eq!(
        none["expected"], "no parameters (this route takes none)",
        "{none}"
    );
    let some = get(&format!("{url}/heap?bogus=1")).json();
    assert_eq!(
        some["expected"],
        "one of the parameters format, kind, seconds, trim, limit, min_share, at, scope",
        "{some}"
    );
}

#[test]
fn unknown_routes_404_and_wrong_methods_405() {
    let (_server, url) = start();
    for path in [
        "nope",
        "heap/extra",
        "snapshots/1/2",
        "../etc/passwd",
        "HEAP",
    ] {
        let r = get(&format!("{url}/{path}"));
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"].is_string());
    }
    for outside in ["/elsewhere", "/debug", "/debug/memprofx"] {
        let r = get(&url.replace("/debug/memprof", outside));
        assert_eq!(r.status, 404, "{outside}");
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains(outside) && error.contains("/debug/memprof"),
            "{error}"
        );
    }

    let a = agent();
    let cases = [
        reply(a.post(format!("{url}/heap")).send_empty()),
        reply(a.put(format!("{url}/snapshots")).send_empty()),
        reply(a.delete(format!("{url}/stats")).call()),
        reply(a.post(format!("{url}/snapshots/1")).send_empty()),
        reply(a.post(format!("{url}/metrics")).send_empty()),
    ];
    for r in cases {
        assert_eq!(r.status, 405, "{}", r.text());
        assert!(r.json()["error"].is_string());
    }
}

#[test]
fn a_token_guards_every_route() {
    let (_server, url) = start_with(EndpointConfig::default().token("s3cret"));
    let a = agent();
    let with = |path: &str, value: Option<&str>| {
        let target = if path.is_empty() {
            url.clone()
        } else {
            format!("{url}/{path}")
        };
        let mut request = a.get(target);
        if let Some(value) = value {
            request = request.header("Authorization", value);
        }
        reply(request.call())
    };
    // The page itself ("") is served without the token: it asks for it
    // (tests/http_token.rs).
    for path in [
        "heap?format=folded",
        "stats",
        "metrics",
        "nope",
        "heap?kind=bad",
    ] {
        let none = with(path, None);
        assert_eq!(none.status, 401, "{path}");
        assert!(none.json()["error"].as_str().unwrap().contains("Bearer"));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "s3cret",
            "Basic s3cret",
        ] {
            assert_eq!(with(path, Some(wrong)).status, 401, "{path} {wrong}");
        }
    }
    assert_eq!(with("stats", Some("Bearer s3cret")).status, 200);
    assert_eq!(
        with("heap?format=folded", Some("Bearer s3cret")).status,
        200
    );
    assert_eq!(with("nope", Some("Bearer s3cret")).status, 404);
    assert_eq!(with("heap?kind=bad", Some("Bearer s3cret")).status, 400);
    let created = reply(
        a.post(format!("{url}/snapshots"))
            .header("Authorization", "Bearer s3cret")
            .send_empty(),
    );
    assert_eq!(created.status, 201);
}

#[test]
fn public_addresses_need_a_token() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        match serve_with(addr, EndpointConfig::default().without_token()) {
            Err(e @ ServeError::PublicWithoutToken(_)) => {
                let message = e.to_string();
                assert!(message.contains("MEMPROF_TOKEN"), "{message}");
                assert!(message.contains("loopback"), "{message}");
            }
            other => panic!("{addr}: expected a refusal, got {other:?}"),
        }
    }
    let guarded = serve_with("0.0.0.0:0", EndpointConfig::default().token("t")).unwrap();
    assert!(guarded.local_addr().ip().is_unspecified());
    drop(guarded);
    assert!(matches!(
        serve_with("not an address", EndpointConfig::default()),
        Err(ServeError::InvalidAddress { .. })
    ));
    let taken = serve_with("127.0.0.1:0", EndpointConfig::default()).unwrap();
    assert!(matches!(
        serve_with(taken.local_addr(), EndpointConfig::default()),
        Err(ServeError::Bind(..))
    ));
}

#[test]
fn shutdown_stops_the_endpoint() {
    let (server, url) = start();
    assert_eq!(get(&format!("{url}/stats")).status, 200);
    let addr = server.local_addr();
    let started = std::time::Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
