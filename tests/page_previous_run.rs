//! The page's "previous run" panel in headless Chromium, against a real
//! server and a real dump directory: a child process (this binary, running
//! the ignored `previous_run_writes_a_dump`) writes a dump there and exits;
//! the server under test, started on the same directory, lists it as the
//! previous run, and the panel shows that run's pid, its last dump's
//! trigger, time and heap, whether it was OOM-killed, and links to its
//! flamegraph and to a differential against the live heap. With dumps off
//! the panel is one line saying how to turn them on; a directory that
//! cannot be used shows its error; a directory with no other run's dump
//! hides the panel.
//!
//! Skips with a note when Chromium is missing, unless
//! `MEMPROF_REQUIRE_CLIENTS=1` (set by `.ci/run`), where it fails.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use memprof::config::DumpSettings;
use memprof_dev::chromium::{self, dump_dom};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// 8 MiB from one function, in exact mode: what the previous run held.
#[inline(never)]
fn previous_run_held() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..8).map(|_| black_box(vec![7u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

/// The previous run: started with `MEMPROF_DUMP_DIR` set, it writes one
/// dump while holding [`previous_run_held`]'s blocks, and exits.
#[test]
#[ignore = "the child process of chromium_shows_the_previous_run"]
fn previous_run_writes_a_dump() {
    assert!(
        std::env::var_os("MEMPROF_DUMP_DIR").is_some(),
        "run by chromium_shows_the_previous_run with MEMPROF_DUMP_DIR set"
    );
    let held = previous_run_held();
    let dump = memprof::dump::dump_now("the previous run's last words").unwrap();
    println!("dump {}", dump.id);
    drop(held);
}

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "memprof-page-previous-run-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs [`previous_run_writes_a_dump`] in a child process writing to
/// `dir`; returns the child's pid.
fn previous_run(dir: &Path) -> u32 {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "previous_run_writes_a_dump",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MEMPROF_DUMP_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the previous run failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pid
}

fn use_dump_dir(dir: Option<&Path>) {
    let settings = match dir {
        Some(dir) => DumpSettings::from_env().dir(dir),
        None => DumpSettings::from_env().no_dir(),
    };
    memprof::Config::new().dumps(settings).apply().unwrap();
}

/// The panel's opening tag and its state, from a DOM.
fn panel(dom: &str) -> (&str, String) {
    let tag = chromium::opening_tag(dom, "id=\"previous-run\"")
        .unwrap_or_else(|| panic!("no previous-run panel in\n{dom}"));
    let state = chromium::attribute(tag, "data-state").unwrap();
    (tag, state)
}

/// The text of the panel's table row for `field`.
fn row(dom: &str, field: &str) -> String {
    let row = chromium::element(dom, &format!("data-field=\"{field}\""))
        .unwrap_or_else(|| panic!("no {field} row in\n{dom}"));
    chromium::text(row)
}

#[test]
fn chromium_shows_the_previous_run() {
    let Some(binary) = chromium::find() else {
        return;
    };
    use_dump_dir(None);
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let url = endpoint.url();
    let get = |path: &str| memprof::unsampled(|| memprof_dev::get(&format!("{url}/{path}")));

    // Dumps off: one line saying how to turn them on.
    let dom = dump_dom(&binary, &url);
    let (tag, state) = panel(&dom);
    assert_eq!(state, "off", "{tag}");
    assert!(!tag.contains("hidden"), "{tag}");
    let hint =
        chromium::element(&dom, "id=\"dumps-off\"").unwrap_or_else(|| panic!("no hint in\n{dom}"));
    assert!(chromium::text(hint).contains("MEMPROF_DUMP_DIR"), "{hint}");
    assert!(!dom.contains("data-field="), "no run shown\n{dom}");

    // A directory holding a dump of another process: the previous run.
    let dir = scratch("dumps");
    let pid = previous_run(&dir);
    use_dump_dir(Some(&dir));
    let listing = get("dumps").json();
    let run = &listing["previous_run"];
    assert_eq!(run["pid"], pid, "{listing}");
    let id = run["last_dump"]["id"].as_str().unwrap().to_owned();
    let dom = dump_dom(&binary, &url);
    let (tag, state) = panel(&dom);
    assert_eq!(state, "previous-run", "{tag}");
    assert!(!tag.contains("hidden"), "{tag}");
    assert!(
        dom.contains(&format!("<h2>Previous run: pid {pid}")),
        "the run's pid\n{dom}"
    );
    let table = chromium::opening_tag(&dom, "id=\"previous-run-dump\"").unwrap();
    assert_eq!(chromium::attribute(table, "data-id"), Some(id.clone()));
    let trigger = row(&dom, "trigger");
    assert!(
        trigger.contains("request: the previous run's last words"),
        "{trigger}"
    );
    let time = run["last_dump"]["time_unix"].as_u64().unwrap();
    let clock = format!(
        "{:02}:{:02}:{:02}",
        time / 3600 % 24,
        time / 60 % 60,
        time % 60
    );
    assert!(row(&dom, "time").contains(&clock), "written at {clock}");
    let heap = row(&dom, "heap");
    assert!(heap.contains("MiB"), "8 MiB held and more: {heap}");
    assert!(row(&dom, "rss").contains("MiB"), "{dom}");
    row(&dom, "cgroup");
    let killed = row(&dom, "oom_killed");
    let expected = match run["oom_killed"].as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    assert!(
        killed.starts_with(&format!("OOM-killed{expected}")),
        "{killed} for {}",
        run["oom_killed"]
    );
    let links = chromium::element(&dom, "id=\"previous-run-links\"").unwrap();
    let href = |name: &str| {
        let tag = chromium::opening_tag(links, &format!("data-link=\"{name}\""))
            .unwrap_or_else(|| panic!("no {name} link in {links}"));
        chromium::attribute(tag, "href").unwrap()
    };
    assert_eq!(href("flamegraph"), format!("dumps/{id}/flamegraph"));
    assert_eq!(
        href("differential"),
        format!("dumps/{id}/flamegraph?base=current")
    );
    // The links open the previous run's flamegraph (the differential is
    // as wide as the live heap, where the previous run's stacks are not).
    for link in [href("flamegraph"), href("differential")] {
        let reply = get(&link);
        assert_eq!(reply.status, 200, "{link}: {}", reply.text());
        assert_eq!(reply.content_type, "image/svg+xml", "{link}");
    }
    assert!(get(&href("flamegraph"))
        .text()
        .contains("previous_run_held"));
    assert!(
        dom.contains("<span id=\"status\" class=\"\">updated "),
        "every fetch succeeded\n{dom}"
    );

    // Dumps on, no other run's dump: the panel keeps quiet.
    let empty = scratch("empty");
    use_dump_dir(Some(&empty));
    let dom = dump_dom(&binary, &url);
    let (tag, state) = panel(&dom);
    assert_eq!(state, "quiet", "{tag}\n{}", get("dumps").text());
    assert!(tag.contains("hidden"), "{tag}");

    // A directory that cannot be used: its error.
    let file = scratch("not-a-dir").join("file");
    std::fs::write(&file, b"a file, not a directory").unwrap();
    use_dump_dir(Some(&file.join("dumps")));
    let error = get("dumps").json()["error"].as_str().unwrap().to_owned();
    let dom = dump_dom(&binary, &url);
    let (tag, state) = panel(&dom);
    assert_eq!(state, "error", "{tag}");
    assert!(!tag.contains("hidden"), "{tag}");
    let shown = chromium::element(&dom, "id=\"dumps-error\"")
        .unwrap_or_else(|| panic!("no error shown in\n{dom}"));
    assert_eq!(chromium::text(shown), format!("Dumps: {error}"));

    use_dump_dir(None);
    for dir in [dir, empty, file.parent().unwrap().to_owned()] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
