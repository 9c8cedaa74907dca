//! Headless Chromium for the page tests: finding it, loading a page with
//! its scripts run and dumping the DOM, and reading elements out of that
//! dump.
//!
//! Each load gets its own throw-away profile directory, so tests in one
//! binary can load pages at the same time.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one load may take before Chromium is killed and the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium binary to drive, or `None` (having said why) if the test
/// should skip; panics if it is missing and clients are required
/// ([`crate::clients_required`]).
pub fn find() -> Option<String> {
    let candidates = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "/usr/bin/chromium",
    ];
    let found = candidates
        .iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|c| c.to_string());
    if found.is_none() {
        assert!(
            !crate::clients_required(),
            "MEMPROF_REQUIRE_CLIENTS=1 but chromium is not installed"
        );
        eprintln!("note: chromium not found; skipping this page test");
    }
    found
}

/// Loads `url` in headless Chromium (in UTC, so times on the page read as
/// the test computes them), lets its scripts run for 10 s of virtual time
/// and returns the DOM; kills Chromium and panics after [`TIMEOUT`].
pub fn dump_dom(binary: &str, url: &str) -> String {
    static LOADS: AtomicU64 = AtomicU64::new(0);
    let profile = std::env::temp_dir().join(format!(
        "memprof-chromium-{}-{}",
        std::process::id(),
        LOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    dom
}

/// The opening tag (`<tag ...>`) of the first element in `dom` whose tag
/// contains `needle` (an attribute as serialized: `id="peak-note"`).
pub fn opening_tag<'a>(dom: &'a str, needle: &str) -> Option<&'a str> {
    let at = dom.find(needle)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    Some(&dom[start..=end])
}

/// The whole element (up to its closing tag) of the first element in `dom`
/// whose opening tag contains `needle`; elements of the same name nested
/// inside it are not counted, so use it on leaf-like elements.
pub fn element<'a>(dom: &'a str, needle: &str) -> Option<&'a str> {
    let tag = opening_tag(dom, needle)?;
    let start = tag.as_ptr() as usize - dom.as_ptr() as usize;
    let name: String = tag[1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let close = format!("</{name}>");
    let end = start + dom[start..].find(&close)? + close.len();
    Some(&dom[start..end])
}

/// The value of attribute `name` in an opening `tag`, unescaped for `&amp;`
/// and `&quot;`.
pub fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// An `element`'s text without its tags: what a reader sees, with
/// `&amp;`, `&lt;` and `&gt;` unescaped.
pub fn text(element: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in element.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
