//! Real clients against the endpoint: `go tool pprof` reads `/heap`, and
//! `promtool check metrics` accepts `/metrics`.
//!
//! When a client is missing the test prints a note and passes, unless
//! `MEMPROF_REQUIRE_CLIENTS` is set (as CI does), in which case it fails.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use memprof::http::{serve_with, EndpointConfig};
use memprof_dev::{client, go_pprof_top};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memprof-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fetch(url: &str) -> Vec<u8> {
    let mut response = ureq::get(url).call().unwrap();
    response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .unwrap()
}

/// Keeps 64 MiB live from a function `go tool pprof` must name.
#[inline(never)]
fn pprof_client_test_allocation() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..64).map(|_| black_box(vec![7u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

/// A pprof -top figure (`1.50kB`, `64MB`, `512B`) in bytes; pprof's kB and
/// MB are binary (1024-based).
fn pprof_bytes(figure: &str) -> f64 {
    let units = [
        ("GB", 1u64 << 30),
        ("MB", 1 << 20),
        ("kB", 1 << 10),
        ("B", 1),
    ];
    for (unit, scale) in units {
        if let Some(number) = figure.strip_suffix(unit) {
            return number.parse::<f64>().unwrap_or(0.0) * scale as f64;
        }
    }
    0.0
}

#[test]
fn go_tool_pprof_reads_heap() {
    let Some(go) = client("go") else { return };
    let live = pprof_client_test_allocation();
    let server = serve_with("127.0.0.1:0", EndpointConfig::default()).unwrap();
    let home = temp_dir("pprof");

    // Straight from the URL, as an SRE would.
    let url = format!("{}/heap", server.url());
    let top = go_pprof_top(&go, &home, &url, &[]);
    let line = top
        .lines()
        .find(|l| l.contains("pprof_client_test_allocation"))
        .unwrap_or_else(|| panic!("function missing from pprof -top:\n{top}"));
    // pprof scales units to the table ("64MB", "65537.50kB"): the cum
    // column (the fourth) holds the 64 MiB the function keeps live.
    let cum = line.split_whitespace().nth(3).unwrap_or("");
    assert!(pprof_bytes(cum) >= 60.0 * 1024.0 * 1024.0, "{line}");
    assert!(top.contains("inuse_space"), "{top}");

    // And from a downloaded file, with another sample type.
    let file = home.join("alloc.pb.gz");
    std::fs::write(&file, fetch(&format!("{url}?kind=alloc_space"))).unwrap();
    let top = go_pprof_top(&go, &home, file.to_str().unwrap(), &[]);
    assert!(top.contains("pprof_client_test_allocation"), "{top}");
    assert!(top.contains("alloc_space"), "{top}");

    std::fs::remove_dir_all(&home).ok();
    drop(live);
}

#[test]
fn promtool_accepts_metrics() {
    let Some(promtool) = client("promtool") else {
        return;
    };
    let server = serve_with("127.0.0.1:0", EndpointConfig::default()).unwrap();
    // A scope gives the labelled families something to show.
    let kept = memprof::scope("promtool \"quoted\" scope", || {
        black_box(vec![0u8; 1 << 16])
    });
    let metrics = fetch(&format!("{}/metrics", server.url()));
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&metrics).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("memprof_heap_inuse_bytes "), "{text}");
    drop(kept);
    std::thread::sleep(Duration::from_millis(1));
}
