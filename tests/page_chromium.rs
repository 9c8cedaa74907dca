//! Headless Chromium loads the page from the endpoint and runs its script:
//! the dumped DOM must hold the plots with data drawn, the doctor's
//! findings and the top stacks; behind a token, it asks for the token and
//! its fetches carry it. A flamegraph's script draws boxes with short
//! names and keeps the full ones in the titles.
//!
//! Skips with a note when Chromium is missing, unless
//! `MEMPROF_REQUIRE_CLIENTS=1` (set by `.ci/run`), where it fails.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memprof::history::HistoryConfig;
use memprof::http::{serve_with, EndpointConfig};
use memprof_dev::{chromium, dump_dom};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

#[inline(never)]
fn page_test_allocation() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..4).map(|_| black_box(vec![1u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

/// 16 MiB in 8 KiB blocks at the default rate: a sampled estimate, shown
/// with its margin.
#[inline(never)]
fn page_test_sampled() -> Vec<Vec<u8>> {
    (0..2048).map(|_| black_box(vec![2u8; 8192])).collect()
}

#[test]
fn chromium_renders_plots_findings_and_stacks() {
    let Some(binary) = chromium() else {
        if memprof_dev::clients_required() {
            panic!("MEMPROF_REQUIRE_CLIENTS=1 but chromium is not installed");
        }
        eprintln!("note: chromium not found; skipping the page test");
        return;
    };
    let live = page_test_allocation();
    let sampled = page_test_sampled();
    let history =
        memprof::history::start(HistoryConfig::default().interval(Duration::from_millis(100)))
            .unwrap();
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while history.points(None).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    // With the trailing slash, as a person would type it: the endpoint
    // redirects to the prefix, and the page's relative links must follow.
    let dom = dump_dom(&binary, &format!("{}/", endpoint.url()));
    assert!(dom.contains("<svg"), "no plot in\n{dom}");
    for series in ["allocated", "active", "resident", "retained", "rss"] {
        let marker = format!("data-series=\"{series}\"");
        let at = dom
            .find(&marker)
            .unwrap_or_else(|| panic!("no {marker} in\n{dom}"));
        // The path of the series has points drawn: `d="M... L..."`.
        let path_start = dom[..at].rfind("<path").unwrap();
        let path = &dom[path_start..at];
        assert!(
            path.contains("d=\"M") && path.contains(" L"),
            "{series} drawn: {path}"
        );
    }
    assert!(dom.contains("id=\"findings\""), "{dom}");
    assert!(
        dom.contains("class=\"finding "),
        "findings list filled in\n{dom}"
    );
    assert!(
        dom.contains("class=\"stack\""),
        "top stacks filled in\n{dom}"
    );
    assert!(dom.contains("page_test_allocation"), "{dom}");
    assert!(
        dom.contains("title=\"") && dom.contains(" live samples\"") && dom.contains("\u{b1} "),
        "a sampled row shows its margin\n{dom}"
    );
    assert!(dom.contains("MiB"), "human units\n{dom}");
    assert!(
        dom.contains("<span id=\"status\" class=\"\">updated "),
        "every fetch succeeded\n{dom}"
    );
    assert!(
        dom.contains("<form id=\"token-form\" hidden=\"\">"),
        "{dom}"
    );

    // Behind a token: the page asks for it, and with it (handed over in
    // the address's fragment) every fetch carries it.
    let token = "page-s3cret";
    let guarded = serve_with("127.0.0.1:0", EndpointConfig::default().token(token)).unwrap();
    let asking = dump_dom(&binary, &guarded.url());
    assert!(asking.contains("<form id=\"token-form\">"), "{asking}");
    assert!(
        asking.contains("<span id=\"status\" class=\"error\">update failed: ")
            && asking.contains("HTTP 401"),
        "{asking}"
    );
    let dom = dump_dom(&binary, &format!("{}#token={token}", guarded.url()));
    assert!(
        dom.contains("<span id=\"status\" class=\"\">updated "),
        "every fetch carried the token\n{dom}"
    );
    assert!(dom.contains("data-series=\"rss\""), "{dom}");
    assert!(dom.contains("class=\"stack\""), "{dom}");
    assert!(
        dom.contains("<form id=\"token-form\" hidden=\"\">"),
        "{dom}"
    );
    assert!(
        !dom.contains(token),
        "the token is nowhere in the page\n{dom}"
    );
    drop((live, sampled));
}

#[test]
fn chromium_draws_flamegraph_boxes_with_short_names() {
    let Some(binary) = chromium() else {
        if memprof_dev::clients_required() {
            panic!("MEMPROF_REQUIRE_CLIENTS=1 but chromium is not installed");
        }
        eprintln!("note: chromium not found; skipping the flamegraph test");
        return;
    };
    let full = "std::collections::hash::map::HashMap<alloc::string::String, \
                alloc::vec::Vec<u8>>::insert";
    let folded = format!("main;{full} 1000\nmain;other 500\n");
    let options =
        memprof::export::flamegraph::FlamegraphOptions::for_kind(memprof::Kind::InuseSpace);
    let mut svg = Vec::new();
    memprof::export::flamegraph::write_folded_flamegraph(folded.as_bytes(), &options, &mut svg)
        .unwrap();
    let file = std::env::temp_dir().join(format!("memprof-flamegraph-{}.svg", std::process::id()));
    std::fs::write(&file, &svg).unwrap();
    let dom = dump_dom(&binary, &format!("file://{}", file.display()));
    let _ = std::fs::remove_file(&file);

    let escaped = |s: &str| s.replace('<', "&lt;").replace('>', "&gt;");
    let short = escaped("std::collections::hash::map::HashMap<String, Vec<u8>>::insert");
    let at = dom
        .find(&format!("data-label=\"{short}\""))
        .unwrap_or_else(|| panic!("no labelled box in\n{dom}"));
    let group = &dom[at..at + dom[at..].find("</g>").unwrap()];
    assert!(
        group.contains(&format!("<title>{} (1,000 bytes", escaped(full))),
        "the title keeps the full name: {group}"
    );
    assert!(
        group.contains(&format!(">{short}</text>")),
        "after the script ran, the box shows the short name: {group}"
    );
}
