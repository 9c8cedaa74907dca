//! Headless Chromium loads the page from the endpoint and runs its script:
//! the dumped DOM must hold the plots with data drawn, the doctor's
//! findings and the top stacks; behind a token, it asks for the token and
//! its fetches carry it. The memory plot marks the heap's peak, or says
//! beside it that the peak is older than the plot. A flamegraph's script
//! draws boxes with short names and keeps the full ones in the titles.
//!
//! Skips with a note when Chromium is missing, unless
//! `MEMPROF_REQUIRE_CLIENTS=1` (set by `.ci/run`), where it fails.

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use memprof::history::HistoryConfig;
use memprof::http::{serve_with, EndpointConfig};
use memprof_dev::chromium::{self, dump_dom};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// The tests that start the history sampler and a server: one at a time,
/// since the sampler, its window and the heap's peak are the process's.
static ONE_SERVER_TEST: Mutex<()> = Mutex::new(());

fn one_server_test() -> MutexGuard<'static, ()> {
    ONE_SERVER_TEST
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

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
    let Some(binary) = chromium::find() else {
        return;
    };
    let _serial = one_server_test();
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

/// 64 MiB from one function, in exact mode: the heap's peak.
#[inline(never)]
fn page_test_peak() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..64).map(|_| black_box(vec![3u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `hh:mm:ss` of a time in milliseconds since the Unix epoch, in UTC (the
/// zone Chromium runs in here).
fn clock_utc(unix_ms: u64) -> String {
    let s = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The page's line beside the memory plot about the peak: its state and
/// its link.
fn peak_note(dom: &str, peak: &memprof::history::Peak) -> (String, String) {
    let note = chromium::element(dom, "id=\"peak-note\"")
        .unwrap_or_else(|| panic!("no peak note in\n{dom}"));
    let state = chromium::attribute(note, "data-state").unwrap();
    assert_eq!(
        chromium::attribute(note, "data-unix-ms").as_deref(),
        Some(peak.taken_at_unix_ms.to_string().as_str()),
        "{note}"
    );
    let link = chromium::opening_tag(note, "id=\"peak-flamegraph\"")
        .unwrap_or_else(|| panic!("no link to the peak's flamegraph in {note}"));
    assert_eq!(
        chromium::attribute(link, "href").as_deref(),
        Some("flamegraph?at=peak"),
        "{link}"
    );
    (state, chromium::text(note))
}

/// A process rises to a 64 MiB peak and frees it: the memory plot marks
/// the peak at the kept profile's time and bytes, linking its flamegraph;
/// once the history's window has moved past it, the page says so beside
/// the plot instead of drawing it.
#[test]
fn chromium_marks_the_heap_peak_on_the_memory_plot() {
    let Some(binary) = chromium::find() else {
        return;
    };
    let _serial = one_server_test();
    let interval = Duration::from_millis(100);
    let history = memprof::history::start(HistoryConfig::default().interval(interval)).unwrap();
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let peak_bytes = (64 << 20) as f64;
    // A tick in the middle of building the structure keeps a peak the
    // rest does not pass by the rule's step (10%, at least 8 MiB).
    let within_step = peak_bytes * 0.75;
    let structure = page_test_peak();
    wait_for("the peak to be kept", || {
        memprof::peak().is_some_and(|p| {
            p.snapshot
                .stacks
                .iter()
                .filter(|s| s.mentions("page_test_peak"))
                .map(|s| s.estimates.inuse_bytes)
                .sum::<f64>()
                >= within_step
        })
    });
    drop(black_box(structure));
    let peak = memprof::peak().unwrap();
    wait_for("the history to see the fall", || {
        history
            .points(None)
            .last()
            .is_some_and(|p| p.heap.inuse_bytes < peak.heap_bytes - peak_bytes / 2.0)
    });

    let dom = dump_dom(&binary, &endpoint.url());
    let marker = chromium::element(&dom, "data-mark=\"peak\"")
        .unwrap_or_else(|| panic!("no peak marker on the plot in\n{dom}"));
    let tag = chromium::opening_tag(marker, "data-mark").unwrap();
    let attribute =
        |name: &str| chromium::attribute(tag, name).unwrap_or_else(|| panic!("no {name} in {tag}"));
    assert_eq!(attribute("data-unix-ms"), peak.taken_at_unix_ms.to_string());
    let bytes: f64 = attribute("data-bytes").parse().unwrap();
    assert_eq!(bytes, peak.heap_bytes, "{tag}");
    assert!(bytes >= within_step, "{tag}");
    assert_eq!(attribute("href"), "flamegraph?at=peak");
    let label = chromium::text(marker);
    assert!(
        label.starts_with("peak ")
            && label.contains(" MiB at ")
            && label.contains(&clock_utc(peak.taken_at_unix_ms)),
        "{label}"
    );
    let (state, text) = peak_note(&dom, &peak);
    assert_eq!(state, "drawn", "{text}");
    // The link opens the peak's flamegraph: the structure freed since.
    let flamegraph =
        memprof::unsampled(|| memprof_dev::get(&format!("{}/flamegraph?at=peak", endpoint.url())));
    assert_eq!(flamegraph.status, 200);
    assert!(flamegraph.text().contains("page_test_peak"));

    // A window of three points, all after the fall: the peak is older than
    // the plot.
    let history = memprof::history::start(
        HistoryConfig::default()
            .interval(interval)
            .window(interval * 3),
    )
    .unwrap();
    wait_for("the window to move past the peak", || {
        history
            .points(None)
            .first()
            .is_some_and(|p| p.unix_ms > peak.taken_at_unix_ms)
    });
    let dom = dump_dom(&binary, &endpoint.url());
    assert!(
        !dom.contains("data-mark=\"peak\""),
        "a peak before the window is not drawn\n{dom}"
    );
    assert!(
        dom.contains("data-series=\"heap\""),
        "the plot is drawn\n{dom}"
    );
    let (state, text) = peak_note(&dom, &peak);
    assert_eq!(state, "before-window", "{text}");
    assert!(text.contains("before this plot's window"), "{text}");
    memprof::history::start(HistoryConfig::default().interval(interval)).unwrap();
}

#[test]
fn chromium_draws_flamegraph_boxes_with_short_names() {
    let Some(binary) = chromium::find() else {
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
