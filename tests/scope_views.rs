//! Views by scope over real HTTP: `/heap`, `/flamegraph`, `/snapshots/{id}`
//! and `/diff` keep one scope's stacks with `scope=`; pprof samples carry
//! the scope and its labels (and `go tool pprof -tagfocus` selects by
//! them); `/leaks` names each candidate's scope; `/scopes` lists the
//! figures per scope; `/metrics` keeps its scope series bounded.
//!
//! The tests read process-wide scope figures, so they run one at a time.

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use memprof::history::HistoryConfig;
use memprof_dev::{go_pprof_top, Reply};
use serde_json::Value;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const ALPHA: &str = "route=GET /alpha";
const BETA: &str = "route=GET /beta";
const BLOCK: usize = 64 * 1024;

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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

fn get(path: &str) -> Reply {
    memprof_dev::get(&format!("{}{path}", url()))
}

/// `s` percent-encoded for a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[inline(never)]
fn alpha_route_allocation() -> Blocks {
    (0..16).map(|_| black_box(vec![1u8; BLOCK])).collect()
}

#[inline(never)]
fn beta_route_allocation() -> Blocks {
    (0..8).map(|_| black_box(vec![2u8; BLOCK])).collect()
}

/// Blocks kept live.
type Blocks = Vec<Vec<u8>>;

/// 16 blocks in scope `route=GET /alpha` and 8 in `ingest/route=GET /beta`,
/// recorded exactly and kept for the whole file.
fn two_routes() -> &'static (Blocks, Blocks) {
    static KEPT: OnceLock<(Blocks, Blocks)> = OnceLock::new();
    KEPT.get_or_init(|| {
        let previous = memprof::set_thread_rate(Some(1));
        let alpha = memprof::scope(ALPHA, alpha_route_allocation);
        let beta = memprof::scope("ingest", || memprof::scope(BETA, beta_route_allocation));
        memprof::set_thread_rate(previous);
        (alpha, beta)
    })
}

/// The bytes `n` blocks and their outer vector take.
fn route_bytes(n: usize) -> f64 {
    (n * BLOCK + n * std::mem::size_of::<Vec<u8>>()) as f64
}

fn stack_functions(stack: &Value) -> String {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(";")
}

/// `/heap?format=json&scope=filter`: its stacks' functions, scope paths
/// and in-use total.
fn heap_json(filter: &str) -> (Vec<String>, Vec<String>, f64, Value) {
    let reply = get(&format!("/heap?format=json&scope={}", enc(filter)));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    let stacks = json["stacks"].as_array().unwrap();
    let functions = stacks.iter().map(stack_functions).collect();
    let scopes = stacks
        .iter()
        .map(|s| s["scope"]["path"].as_str().unwrap_or("<none>").to_string())
        .collect();
    let total = json["totals"]["inuse_bytes"].as_f64().unwrap();
    (functions, scopes, total, json)
}

#[test]
fn heap_and_flamegraph_keep_one_scopes_stacks() {
    let _serial = serial();
    two_routes();

    // A path from the root keeps the scope and what is nested in it.
    let (functions, scopes, total, _) = heap_json("ingest");
    assert!(functions
        .iter()
        .any(|f| f.contains("beta_route_allocation")));
    assert!(!functions
        .iter()
        .any(|f| f.contains("alpha_route_allocation")));
    assert!(
        scopes.iter().all(|s| s == "ingest/route=GET /beta"),
        "{scopes:?}"
    );
    assert_eq!(total, route_bytes(8));

    // A label keeps its scope wherever it is nested.
    let (functions, _, total, _) = heap_json(BETA);
    assert!(functions
        .iter()
        .any(|f| f.contains("beta_route_allocation")));
    assert_eq!(total, route_bytes(8), "{functions:?}");
    let (functions, scopes, total, _) = heap_json(ALPHA);
    assert!(functions
        .iter()
        .any(|f| f.contains("alpha_route_allocation")));
    assert!(!functions
        .iter()
        .any(|f| f.contains("beta_route_allocation")));
    assert!(scopes.iter().all(|s| s == ALPHA), "{scopes:?}");
    assert_eq!(total, route_bytes(16));

    // A name not at the root, or a part of one, keeps nothing.
    for filter in ["route=GET", "route=GET /alph", "beta"] {
        let (functions, _, total, _) = heap_json(filter);
        assert!(
            functions.is_empty() && total == 0.0,
            "{filter}: {functions:?}"
        );
    }

    let folded = get(&format!("/heap?format=folded&scope={}", enc(ALPHA))).text();
    assert!(folded.contains("alpha_route_allocation"), "{folded}");
    assert!(
        folded
            .lines()
            .all(|l| l.starts_with("[scope route=GET /alpha];")),
        "one [scope] frame per scope name, slashes in it kept: {folded}"
    );
    let svg = get(&format!("/flamegraph?scope={}", enc(ALPHA))).text();
    assert!(svg.contains("alpha_route_allocation"), "{svg}");
    assert!(!svg.contains("beta_route_allocation"));
    assert!(
        svg.contains("scope=route=GET /alpha"),
        "the title names the scope"
    );

    // A kept snapshot and a diff take the filter too.
    let created = memprof_dev::post(&format!("{}/snapshots", url())).json();
    let id = created["id"].as_u64().unwrap();
    let folded = get(&format!("/snapshots/{id}?format=folded&scope=ingest")).text();
    assert!(folded.contains("beta_route_allocation") && !folded.contains("alpha_route"));
    let diff = get(&format!("/diff?base={id}&format=folded&scope=ingest")).text();
    assert!(!diff.contains("alpha_route"), "{diff}");
}

#[test]
fn an_unknown_scope_is_an_empty_profile_with_a_note_and_a_bad_one_a_400() {
    let _serial = serial();
    two_routes();
    let reply = get("/heap?format=json&scope=no-such-scope");
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["stacks"].as_array().unwrap().len(), 0);
    let note = json["note"].as_str().unwrap();
    assert!(
        note.contains("no scope entered matches scope=no-such-scope"),
        "{note}"
    );
    assert!(reply.header("x-memprof-note").is_some());
    let svg = get("/flamegraph?scope=no-such-scope");
    assert_eq!(svg.status, 200);
    assert!(svg.text().contains("no scope entered matches"));
    let pprof = get("/heap?scope=no-such-scope");
    let profile = memprof::export::pprof::read_pprof(&pprof.body[..]).unwrap();
    assert!(profile.sample.is_empty());
    let comments: Vec<&str> = profile
        .comment
        .iter()
        .map(|&i| profile.string_table[i as usize].as_str())
        .collect();
    assert!(
        comments.iter().any(|c| c.contains("no scope entered")),
        "{comments:?}"
    );
    // A scope that exists gets no note, even with nothing to show.
    let reply = get(&format!(
        "/heap?format=json&kind=alloc_space&scope={}",
        enc(ALPHA)
    ));
    assert!(reply.json().get("note").is_none());

    for path in ["/heap", "/flamegraph", "/snapshots/1", "/diff", "/scopes"] {
        for bad in ["", "%0A", &"x".repeat(5000)] {
            let reply = get(&format!("{path}?scope={bad}"));
            assert_eq!(reply.status, 400, "{path} scope={bad:.9}: {}", reply.text());
            assert_eq!(reply.json()["parameter"], "scope", "{path}");
        }
    }
}

#[test]
fn pprof_samples_carry_scope_labels_that_go_tool_pprof_selects_by() {
    let _serial = serial();
    two_routes();
    let body = get("/heap").body;
    let profile = memprof::export::pprof::read_pprof(&body[..]).unwrap();
    let string = |i: i64| profile.string_table[i as usize].as_str();
    let labelled: Vec<Vec<(&str, &str)>> = profile
        .sample
        .iter()
        .map(|s| {
            s.label
                .iter()
                .map(|l| (string(l.key), string(l.str)))
                .collect()
        })
        .filter(|labels: &Vec<(&str, &str)>| !labels.is_empty())
        .collect();
    assert!(
        labelled.contains(&vec![
            ("scope", "ingest/route=GET /beta"),
            ("route", "GET /beta")
        ]),
        "{labelled:?}"
    );
    assert!(labelled.contains(&vec![("scope", ALPHA), ("route", "GET /alpha")]));

    let Some(go) = memprof_dev::client("go") else {
        return;
    };
    let home = std::env::temp_dir().join(format!("memprof-scope-pprof-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let file = home.join("heap.pb.gz");
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap();
    let everything = go_pprof_top(&go, &home, file, &[]);
    assert!(everything.contains("alpha_route_allocation") && everything.contains("beta_route"));
    for (focus, kept, dropped) in [
        (
            "-tagfocus=route=GET /alpha",
            "alpha_route_allocation",
            "beta_route_allocation",
        ),
        (
            "-tagfocus=scope=ingest",
            "beta_route_allocation",
            "alpha_route_allocation",
        ),
    ] {
        let top = go_pprof_top(&go, &home, file, &[focus]);
        assert!(top.contains(kept), "{focus}: {top}");
        assert!(!top.contains(dropped), "{focus}: {top}");
    }
    std::fs::remove_dir_all(&home).ok();
}

static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn leaky_route_allocation() {
    let entry = black_box(vec![3u8; 16 * 1024]);
    LEAKED.lock().unwrap().push(entry);
}

#[test]
fn leaks_name_each_candidates_scope() {
    let _serial = serial();
    url();
    // About 2 s of steady growth, recorded exactly, in one route's scope.
    for _ in 0..80 {
        let previous = memprof::set_thread_rate(Some(1));
        memprof::scope("route=GET /leaky", leaky_route_allocation);
        memprof::set_thread_rate(previous);
        std::thread::sleep(Duration::from_millis(25));
    }
    let report = get("/leaks?min_age=0&format=json").json();
    let candidates = report["candidates"].as_array().unwrap();
    let leak = candidates
        .iter()
        .find(|c| {
            c["site"]
                .as_str()
                .unwrap()
                .contains("leaky_route_allocation")
        })
        .unwrap_or_else(|| panic!("the leak is not a candidate: {report:#}"));
    assert_eq!(leak["scope"]["path"], "route=GET /leaky", "{leak:#}");
    assert_eq!(leak["scope"]["segments"][0], "route=GET /leaky");
    let text = get("/leaks?min_age=0&format=text").text();
    assert!(text.contains("  scope route=GET /leaky\n"), "{text}");
}

#[inline(never)]
fn scopes_view_allocation() -> (Vec<u8>, Vec<u8>) {
    let kept = black_box(vec![1u8; 10_000]);
    drop(black_box(vec![0u8; 5_000]));
    let inner = memprof::scope("inner", || black_box(vec![2u8; 2_000]));
    (kept, inner)
}

fn scope_row<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"]["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {report:#}"))
}

#[test]
fn scopes_lists_each_scopes_figures_and_survivors() {
    let _serial = serial();
    url();
    let previous = memprof::set_thread_rate(Some(1));
    let kept = memprof::scope("scopes-view", scopes_view_allocation);
    memprof::set_thread_rate(previous);

    let report = get("/scopes?min_age=0").json();
    let outer = scope_row(&report, "scopes-view");
    let figures = |row: &Value, names: &[&str]| -> Vec<f64> {
        names.iter().map(|n| row[n].as_f64().unwrap()).collect()
    };
    let names = [
        "alloc_bytes",
        "alloc_objects",
        "freed_bytes",
        "freed_objects",
        "inuse_bytes",
        "inuse_objects",
        "peak_bytes",
        "survivor_bytes",
        "survivor_objects",
        "inuse_bytes_margin_95",
    ];
    assert_eq!(
        figures(outer, &names),
        [17_000.0, 3.0, 5_000.0, 1.0, 12_000.0, 2.0, 15_000.0, 12_000.0, 2.0, 0.0],
        "{outer:#}"
    );
    assert_eq!(
        outer["inuse_error"]["samples"], 2,
        "nested samples count too"
    );
    assert_eq!(outer["entered"], 1);
    let inner = scope_row(&report, "scopes-view/inner");
    assert_eq!(inner["parent"], outer["id"]);
    assert_eq!(
        inner["scope"]["segments"],
        serde_json::json!(["scopes-view", "inner"])
    );
    assert_eq!(
        figures(inner, &["inuse_bytes", "survivor_bytes"]),
        [2_000.0, 2_000.0]
    );

    // Survivors are the live samples older than min_age.
    let young = get("/scopes?min_age=3600&scope=scopes-view").json();
    assert_eq!(young["scopes"].as_array().unwrap().len(), 2, "{young:#}");
    assert_eq!(scope_row(&young, "scopes-view")["survivor_bytes"], 0.0);

    let text = get("/scopes?format=text&min_age=0&scope=scopes-view").text();
    let row = text
        .lines()
        .find(|l| l.ends_with("  scopes-view"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("11.7 KiB") && row.contains("exact"), "{row}");
    assert!(text.contains("  scopes-view/inner"), "{text}");
    drop(kept);
}

#[test]
fn metrics_keep_at_most_a_hundred_scope_series() {
    let _serial = serial();
    url();
    two_routes();
    let previous = memprof::set_thread_rate(Some(1));
    let kept: Vec<Vec<u8>> = (0..130)
        .map(|i| {
            let name: &'static str = Box::leak(format!("metrics-cap-{i}").into_boxed_str());
            memprof::scope(name, || black_box(vec![0u8; 100 + i]))
        })
        .collect();
    memprof::set_thread_rate(previous);

    let metrics = get("/metrics").text();
    let net: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("memprof_scope_net_bytes{"))
        .collect();
    assert_eq!(net.len(), 101, "100 scopes and ~other: {net:#?}");
    let other = net
        .iter()
        .find(|l| l.contains("scope=\"~other\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no ~other: {net:#?}"));
    // The top-level scopes past the first hundred entered, summed.
    let mut scopes = memprof::scopes();
    scopes.sort_by_key(|s| s.id);
    let past_cap: f64 = scopes[100..]
        .iter()
        .filter(|s| s.parent == 0)
        .map(|s| s.net_bytes)
        .sum();
    assert!(past_cap > 0.0);
    assert_eq!(other, past_cap.round());
    drop(kept);
}
