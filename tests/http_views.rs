//! The incident views over real HTTP: /history, /host, /allocator (and its
//! purge), /doctor, /leaks, /top, the page, the extended /stats and
//! /metrics, with their bad-parameter cases.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use memprof::history::HistoryConfig;
use memprof_dev::Reply;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn get(path: &str) -> Reply {
    memprof_dev::get(&format!("{}{path}", url()))
}

fn post(path: &str) -> Reply {
    memprof_dev::post(&format!("{}{path}", url()))
}

/// One endpoint for the whole file, with a fast history.
fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        memprof::history::start(
            HistoryConfig::default()
                .interval(Duration::from_millis(100))
                .window(Duration::from_secs(60)),
        )
        .unwrap();
        let handle = memprof::serve("127.0.0.1:0").unwrap();
        let url = handle.url();
        handle.detach();
        url
    })
}

fn keep_live() -> &'static Vec<Vec<u8>> {
    static LIVE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    LIVE.get_or_init(views_test_allocation)
}

#[inline(never)]
fn views_test_allocation() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..8).map(|_| black_box(vec![1u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

#[inline(never)]
fn twin_leaf(n: usize) -> Vec<u8> {
    black_box(vec![2u8; n])
}

#[inline(never)]
fn twin_middle(n: usize) -> Vec<u8> {
    black_box(twin_leaf(black_box(n)))
}

#[inline(never)]
fn twin_upper(n: usize) -> Vec<u8> {
    black_box(twin_middle(black_box(n)))
}

#[inline(never)]
fn twin_caller_one() -> Vec<u8> {
    black_box(twin_upper(black_box(300_000)))
}

// Its own body, so that the compiler does not fold it into the first.
#[inline(never)]
fn twin_caller_two() -> Vec<u8> {
    let mut v = black_box(twin_upper(black_box(310_000)));
    v[0] = 3;
    v
}

/// Two stacks whose sites (the leaf and its two callers) read the same:
/// they differ in the third caller.
fn keep_twins() -> &'static Vec<Vec<u8>> {
    static TWINS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    TWINS.get_or_init(|| {
        let previous = memprof::set_thread_rate(Some(1));
        let twins = vec![twin_caller_one(), twin_caller_two()];
        memprof::set_thread_rate(previous);
        twins
    })
}

/// Asserts a 400 with a JSON body naming `parameter`.
fn assert_bad(path: &str, parameter: &str) {
    let r = get(path);
    assert_eq!(r.status, 400, "{path}: {}", r.text());
    assert_eq!(r.json()["parameter"], parameter, "{path}: {}", r.text());
    assert!(r.json()["expected"].is_string(), "{path}");
}

fn wait_for_points(n: usize) -> serde_json::Value {
    for _ in 0..100 {
        let h = get("/history").json();
        if h["points"].as_array().unwrap().len() >= n {
            return h;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("history did not reach {n} points");
}

#[test]
fn history_series_and_parameters() {
    keep_live();
    let h = wait_for_points(3);
    assert_eq!(h["interval_ms"], 100);
    assert_eq!(h["capacity"], 600);
    assert!(h["sampler_cost_us"]["ticks"].as_u64().unwrap() >= 3);
    assert!(h["sampler_cost_us"]["max_us"].as_u64().unwrap() > 0);
    let points = h["points"].as_array().unwrap();
    let last = points.last().unwrap();
    assert!(last["allocator"]["allocated_bytes"].as_u64().unwrap() > 8 << 20);
    assert!(last["allocator"]["resident_bytes"].as_u64().unwrap() > 0);
    assert!(last["allocator"]["retained_bytes"].is_u64());
    assert!(last["process"]["rss_bytes"].as_u64().unwrap() > 8 << 20);
    assert!(last["heap"]["inuse_bytes"].as_f64().unwrap() >= (8 << 20) as f64);
    assert!(last.get("stacks").is_none(), "stacks only on request");

    let with_stacks = get("/history?stacks=true").json();
    let last = with_stacks["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(!last["stacks"].as_array().unwrap().is_empty());

    let since = last["unix_ms"].as_u64().unwrap();
    let newer = get(&format!("/history?since={since}")).json();
    for p in newer["points"].as_array().unwrap() {
        assert!(p["unix_ms"].as_u64().unwrap() > since);
    }
    let none = get(&format!("/history?since={}", u64::MAX)).json();
    assert!(none["points"].as_array().unwrap().is_empty());

    let text = get("/history?format=text");
    assert_eq!(text.status, 200);
    assert!(text.content_type.starts_with("text/plain"));
    assert!(text.text().contains("resident"), "{}", text.text());
    assert!(text.text().contains("MiB"), "{}", text.text());

    assert_bad("/history?since=yesterday", "since");
    assert_bad("/history?since=-1", "since");
    assert_bad("/history?stacks=maybe", "stacks");
    assert_bad("/history?format=svg", "format");
    assert_bad("/history?window=1", "window");
}

#[test]
fn host_view_and_top_bound() {
    let r = get("/host?top=3");
    assert_eq!(r.status, 200, "{}", r.text());
    let host = r.json();
    assert!(host["process"]["status"]["vm_rss_bytes"].as_u64().unwrap() > 0);
    assert!(host["host"]["meminfo"]["mem_total_bytes"].as_u64().unwrap() > 0);
    assert!(host.get("cgroup").is_some());
    let top = &host["top_processes"];
    if let Some(list) = top["processes"].as_array() {
        assert!(list.len() <= 3);
    }
    let skipped = get("/host?top=0").json();
    assert!(skipped["top_processes"]["unavailable"].is_string());

    let text = get("/host?format=text&top=2");
    assert_eq!(text.status, 200);
    let t = text.text();
    for section in [
        "PROCESS\n  rss ",
        "\nMEMORY\n",
        "\nCGROUP\n",
        "\nTOP PROCESSES BY PSS\n",
    ] {
        assert!(t.contains(section), "{section:?} in {t}");
    }

    assert_bad("/host?top=51", "top");
    assert_bad("/host?top=-1", "top");
    assert_bad("/host?top=many", "top");
    assert_bad("/host?format=pprof", "format");
    assert_bad("/host?pid=1", "pid");
}

#[test]
fn allocator_view_and_purge() {
    keep_live();
    let r = get("/allocator");
    assert_eq!(r.status, 200);
    let a = r.json();
    assert_eq!(a["available"], true, "{a}");
    assert!(a["totals"]["allocated_bytes"].as_u64().unwrap() > 8 << 20);
    assert!(
        a["ratios"]["allocator_fragmentation_ratio"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    assert!(!a["bins"].as_array().unwrap().is_empty());

    let text = get("/allocator?format=text").text();
    assert!(
        text.contains("allocated") && text.contains("fragmentation"),
        "{text}"
    );

    // Free a lot so there are dirty pages to purge.
    let garbage: Vec<Vec<u8>> = (0..64).map(|_| black_box(vec![7u8; 256 << 10])).collect();
    drop(garbage);
    let r = post("/allocator/purge");
    assert_eq!(r.status, 200, "{}", r.text());
    let p = r.json();
    let before = p["resident_before_bytes"].as_u64().unwrap();
    let after = p["resident_after_bytes"].as_u64().unwrap();
    assert!(before > 0 && after > 0);
    assert_eq!(
        p["released_bytes"].as_i64().unwrap(),
        before as i64 - after as i64
    );
    assert!(p["dirty_after_bytes"].as_u64().unwrap() <= p["dirty_before_bytes"].as_u64().unwrap());

    let text = post("/allocator/purge?format=text");
    assert_eq!(text.status, 200);
    assert!(
        text.text().starts_with("purged: resident "),
        "{}",
        text.text()
    );

    assert_eq!(get("/allocator/purge").status, 405);
    assert_bad("/allocator?format=svg", "format");
    assert_bad("/allocator?arena=0", "arena");
    let bad = post("/allocator/purge?now=1");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["parameter"], "now");
}

#[test]
fn doctor_json_and_text() {
    wait_for_points(2);
    let r = get("/doctor");
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    assert!(d["findings"].is_array());
    assert!(d["series_readings"].as_u64().unwrap() >= 2, "{d}");
    for f in d["findings"].as_array().unwrap() {
        assert!(["info", "warning", "critical"].contains(&f["severity"].as_str().unwrap()));
        assert!(f["title"].is_string() && f["advice"].is_string());
    }
    let text = get("/doctor?format=text");
    assert_eq!(text.status, 200);
    assert!(text.content_type.starts_with("text/plain"));
    let t = text.text();
    assert!(t.contains("findings") || t.contains("No findings"), "{t}");
    assert!(t.contains("readings spanning"), "{t}");
    assert_bad("/doctor?format=html", "format");
    assert_bad("/doctor?interval=5", "interval");
}

#[test]
fn leaks_view_and_bounds() {
    keep_live();
    let r = get("/leaks?min_age=0&limit=5");
    assert_eq!(r.status, 200, "{}", r.text());
    let l = r.json();
    assert_eq!(l["min_age_seconds"].as_f64().unwrap(), 0.0);
    assert!(l["candidates"].as_array().unwrap().len() <= 5);
    assert!(l["live_samples"].as_u64().unwrap() >= 8);
    let text = get("/leaks?format=text").text();
    assert!(text.contains("leak candidates"), "{text}");
    assert_bad("/leaks?min_age=86401", "min_age");
    assert_bad("/leaks?min_age=ten", "min_age");
    assert_bad("/leaks?limit=0", "limit");
    assert_bad("/leaks?limit=1001", "limit");
    assert_bad("/leaks?format=svg", "format");
}

#[test]
fn top_stacks_name_the_allocation() {
    keep_live();
    let r = get("/top?n=50");
    assert_eq!(r.status, 200);
    let t = r.json();
    assert_eq!(t["kind"], "inuse_space");
    let stacks = t["stacks"].as_array().unwrap();
    assert!(!stacks.is_empty() && stacks.len() <= 50);
    assert!(
        stacks.iter().any(|s| s["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("views_test_allocation"))),
        "{t}"
    );
    let text = get("/top?format=text&kind=alloc_space").text();
    assert!(text.starts_with("top stacks by alloc_space"), "{text}");

    // Stacks lead with the program's code (this file's function or its
    // closure); trim=none shows the allocator shim (`__rust_alloc`, whose
    // line is this file's #[global_allocator]) and std's frames first.
    let first_frames = |path: &str| -> Vec<String> {
        get(path).json()["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["frames"].to_string().contains("views_test_allocation"))
            .map(|s| s["frames"][0].as_str().unwrap().to_owned())
            .collect()
    };
    let trimmed = first_frames("/top?n=100");
    assert!(
        !trimmed.is_empty() && trimmed.iter().all(|f| f.contains("http_views.rs")),
        "{trimmed:?}"
    );
    let untrimmed = first_frames("/top?n=100&trim=none");
    assert!(
        !untrimmed.is_empty() && untrimmed.iter().all(|f| f.contains("alloc")),
        "{untrimmed:?}"
    );
    assert_bad("/top?trim=some", "trim");
    assert_bad("/leaks?trim=some", "trim");
    assert_bad("/heap?trim=all", "trim");

    // Two stacks through one leaf read differently, each with its margin.
    keep_twins();
    let t = get("/top?n=100").json();
    let twins: Vec<&serde_json::Value> = t["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let site = s["site"].as_str().unwrap();
            site.split(" <- ").next().unwrap().contains("twin_leaf")
        })
        .collect();
    assert_eq!(twins.len(), 2, "{t}");
    assert_ne!(twins[0]["site"], twins[1]["site"]);
    for twin in twins {
        let site = twin["site"].as_str().unwrap();
        assert!(site.contains(" via "), "{site}");
        assert!(twin["inuse_samples"].as_u64().unwrap() >= 1, "{twin}");
        // Recorded at rate 1: exact.
        assert_eq!(twin["inuse_bytes_margin_95"], 0.0, "{twin}");
    }
    assert_bad("/top?n=0", "n");
    assert_bad("/top?n=101", "n");
    assert_bad("/top?kind=bogus", "kind");
}

#[test]
fn stats_and_metrics_have_allocator_and_process() {
    keep_live();
    wait_for_points(1);
    let s = get("/stats").json();
    assert!(
        s["allocator"]["totals"]["allocated_bytes"]
            .as_u64()
            .unwrap()
            > 8 << 20
    );
    assert!(s["allocator"]["ratios"]["allocator_fragmentation_ratio"].is_f64());
    assert!(s["allocator_unavailable"].is_null());
    assert!(s["process"]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(s["sampler"].is_object() && s["heap"].is_object());

    let m = get("/metrics");
    assert_eq!(m.status, 200);
    let text = m.text();
    for family in [
        "memprof_allocator_available 1",
        "memprof_allocator_allocated_bytes ",
        "memprof_allocator_resident_bytes ",
        "memprof_allocator_retained_bytes ",
        "memprof_allocator_fragmentation_ratio ",
        "memprof_process_rss_bytes ",
        "memprof_host_memory_available_bytes ",
        "memprof_history_ticks_total ",
        "memprof_history_tick_seconds_total ",
    ] {
        assert!(text.contains(family), "{family} missing from\n{text}");
    }
}

#[test]
fn page_is_self_contained_and_relative() {
    let r = get("");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
    let page = r.text();
    for needle in [
        "plot-memory",
        "findings",
        "history?format=json",
        "setInterval(refresh",
        "data-series",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    assert!(
        !page.contains("http://") || !page.contains("src=\"http"),
        "no remote scripts"
    );
    assert!(!page.contains("href=\"/"), "links must be relative");
}
