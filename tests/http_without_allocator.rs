//! Without `MemProf` as the global allocator the endpoint says so first:
//! `serve()` on stderr with the line to add, a `warning` in every JSON
//! answer, a first line in every text answer, a header on the rest.
//! (This binary keeps the default global allocator on purpose.)

use std::process::Command;
use std::sync::OnceLock;

const CHILD: &str = "MEMPROF_WITHOUT_ALLOCATOR_CHILD";

fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let handle = memprof::serve("127.0.0.1:0").unwrap();
        let url = handle.url();
        handle.detach();
        url
    })
}

#[test]
fn every_view_says_first_that_memprof_sees_nothing() {
    for path in ["/top", "/leaks", "/doctor", "/stats", "/allocator"] {
        let reply = memprof_dev::get(&format!("{}{path}", url()));
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let warning = reply.json()["warning"].as_str().unwrap_or("").to_owned();
        assert!(
            warning.contains("#[global_allocator]") && warning.contains("memprof::MemProf"),
            "{path}: {}",
            reply.text()
        );
    }
    for path in [
        "/top?format=text",
        "/doctor?format=text",
        "/leaks?format=text",
    ] {
        let text = memprof_dev::get(&format!("{}{path}", url())).text();
        assert!(
            text.starts_with("WARNING: MemProf is not the global allocator"),
            "{path}: {text}"
        );
    }
    // What cannot carry a member or a line (pprof, a JSON array) carries
    // the header.
    for path in ["/heap", "/snapshots"] {
        let reply = memprof_dev::get(&format!("{}{path}", url()));
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.header("x-memprof-warning").is_some(), "{path}");
    }
    let page = memprof_dev::get(url()).text();
    assert!(
        page.contains("id=\"warning\""),
        "the page has a place for it"
    );
}

#[test]
fn serve_says_on_stderr_which_line_to_add() {
    if std::env::var_os(CHILD).is_some() {
        let _handle = memprof::serve("127.0.0.1:0").unwrap();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "serve_says_on_stderr_which_line_to_add",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("memprof: MemProf is not the global allocator")
            && stderr.contains("static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();"),
        "{stderr}"
    );
}
