//! The main job works: the demo starts its endpoint, and within half a
//! minute the endpoint names its leak, sees its fragmentation and serves a
//! profile of its churn.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo_binary() -> std::path::PathBuf {
    // Tests live in <target>/<profile>/deps; cargo builds examples next door.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("demo")
}

fn get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The leak candidates' keys, most suspicious first.
fn leak_sites(endpoint: &str) -> Vec<String> {
    let leaks: serde_json::Value =
        serde_json::from_str(&get(&format!("{endpoint}/leaks"))).unwrap();
    leaks["candidates"]
        .as_array()
        .unwrap_or_else(|| panic!("/leaks has candidates: {leaks}"))
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect()
}

/// The rules of the doctor's findings: `/doctor` answers an object whose
/// `findings` is the list.
fn doctor_rules(endpoint: &str) -> Vec<String> {
    let doctor: serde_json::Value =
        serde_json::from_str(&get(&format!("{endpoint}/doctor"))).unwrap();
    doctor["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("/doctor is an object with findings: {doctor}"))
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn demo_shows_its_leak_fragmentation_and_churn() {
    let binary = demo_binary();
    assert!(
        binary.exists(),
        "{} is built by cargo test",
        binary.display()
    );
    let mut child = Command::new(&binary)
        .args(["--addr", "127.0.0.1:0", "--seconds", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let demo = KillOnDrop(child);
    let mut endpoint = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("endpoint: ") {
            endpoint = Some(url.to_string());
            break;
        }
    }
    let endpoint = endpoint.expect("the demo prints its endpoint");

    // The leak shows once the history holds enough points past the leak
    // finder's minimum age, and the fragmentation once the background job
    // has pinned its slabs; the warm-up's one-time rise drops out of the
    // candidates once its growth has stopped for the finder's window. Wait
    // for all three, a bounded time (the demo runs a minute), then check
    // what was seen.
    let deadline = Instant::now() + Duration::from_secs(50);
    let (sites, rules) = loop {
        let sites = leak_sites(&endpoint);
        let rules = doctor_rules(&endpoint);
        let leak_named = sites.iter().take(2).any(|k| k.contains("remember_session"));
        let fragmentation_seen = rules.iter().any(|r| r == "allocator-fragmentation");
        let warm_up_cleared = !sites.iter().any(|k| k.contains("fragment_heap"));
        if (leak_named && fragmentation_seen && warm_up_cleared) || Instant::now() >= deadline {
            break (sites, rules);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        sites.iter().take(2).any(|k| k.contains("remember_session")),
        "the session leak is among the first two candidates: {sites:#?}"
    );
    for key in &sites {
        assert!(!key.contains("build_report"), "churn is not a leak: {key}");
        assert!(
            !key.contains("fragment_heap"),
            "a one-time warm-up is not a leak: {key}"
        );
    }
    assert!(
        rules.iter().any(|r| r == "allocator-fragmentation"),
        "doctor sees the fragmentation: {rules:?}"
    );

    let folded = get(&format!("{endpoint}/heap?format=folded&kind=alloc_space"));
    assert!(
        folded.contains("build_report"),
        "the churn shows in allocated space"
    );
    drop(demo);
}
