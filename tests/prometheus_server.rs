//! A real Prometheus server (Debian's `prometheus`) scrapes a service with
//! memprof's endpoint on loopback, evaluates `contrib/prometheus`'s rules
//! (with windows shortened to seconds), and answers through its HTTP API:
//! the heap series exists, it grows for a service that leaks, and the leak
//! alert reaches `pending` or `firing`.
//!
//! Skips with a note when `prometheus` is missing, unless
//! `MEMPROF_REQUIRE_CLIENTS=1` (set by `.ci/run`), where it fails.

use std::hint::black_box;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const TIMEOUT: Duration = Duration::from_secs(90);

/// Kills the server when the test ends, however it ends.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The contrib rules with their windows cut from minutes to seconds, so
/// that a test sees the leak alert within a minute. Panics if a rule this
/// edits is no longer written as expected.
fn rules_in_seconds() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/memprof.rules.yml");
    let rules = std::fs::read_to_string(path).unwrap();
    let edits = [
        (
            "deriv(memprof_heap_inuse_bytes[30m])",
            "deriv(memprof_heap_inuse_bytes[10s])",
        ),
        ("for: 1h", "for: 3s"),
    ];
    let mut edited = rules.clone();
    for (from, to) in edits {
        assert_eq!(
            edited.matches(from).count(),
            1,
            "the rules have one `{from}`"
        );
        edited = edited.replace(from, to);
    }
    edited
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(prometheus: &Path, target: &str) -> (Server, String) {
    let dir = std::env::temp_dir().join(format!("memprof-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("memprof.rules.yml"), rules_in_seconds()).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [memprof.rules.yml]\n\
             scrape_configs:\n  - job_name: service\n    \
             metrics_path: /debug/memprof/metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (Server { child, dir }, format!("http://{address}"))
}

/// `GET url`, or `None` while nothing listens there yet.
fn try_get(url: &str) -> Option<memprof_dev::Reply> {
    match memprof_dev::agent().get(url).call() {
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => None,
        result => Some(memprof_dev::reply(result)),
    }
}

/// Asks `query` of the server; the result vector, empty before data.
fn query(server: &str, query: &str) -> Vec<Value> {
    let url = format!("{server}/api/v1/query?query={}", encode(query));
    let Some(reply) = try_get(&url).filter(|r| r.status == 200) else {
        return Vec::new();
    };
    let json = reply.json();
    assert_eq!(json["status"], "success", "{json}");
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` every half second until it returns `Some`, or panics with
/// `what` and the server's log after [`TIMEOUT`].
fn wait_for<T>(server: &Server, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        if started.elapsed() > TIMEOUT {
            let log =
                std::fs::read_to_string(server.dir.join("prometheus.log")).unwrap_or_default();
            panic!("{what} not seen within {TIMEOUT:?}; prometheus log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Leaks 256 KiB every 50 ms (about 5 MiB/s) until told to stop.
#[inline(never)]
fn leak_steadily(stop: Arc<AtomicBool>, kept: Arc<Mutex<Vec<Vec<u8>>>>) {
    while !stop.load(Ordering::Relaxed) {
        kept.lock().unwrap().push(black_box(vec![7u8; 256 << 10]));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn prometheus_scrapes_the_heap_and_raises_the_leak_alert() {
    let Some(prometheus) = memprof_dev::client("prometheus") else {
        return;
    };
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let target = endpoint.url();
    let target = target
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let kept = Arc::new(Mutex::new(Vec::new()));
    let leaker = {
        let (stop, kept) = (Arc::clone(&stop), Arc::clone(&kept));
        std::thread::spawn(move || leak_steadily(stop, kept))
    };

    let (server, api) = start(&prometheus, &target);
    wait_for(&server, "the server ready", || {
        try_get(&format!("{api}/-/ready"))
            .is_some_and(|r| r.status == 200)
            .then_some(())
    });

    // The heap series, labelled with the scrape's job and instance.
    let first = wait_for(&server, "memprof_heap_inuse_bytes", || {
        query(&api, "memprof_heap_inuse_bytes").into_iter().next()
    });
    assert_eq!(first["metric"]["job"], "service", "{first}");
    assert_eq!(first["metric"]["instance"], target.as_str(), "{first}");
    let value = |sample: &Value| -> f64 { sample["value"][1].as_str().unwrap().parse().unwrap() };
    let start_bytes = value(&first);

    // It grows while the service leaks: 5 MiB/s, so 5 MiB within seconds.
    wait_for(&server, "heap growth of 5 MiB", || {
        let now = query(&api, "memprof_heap_inuse_bytes").into_iter().next()?;
        (value(&now) > start_bytes + 5.0 * 1048576.0).then_some(())
    });
    let slope = wait_for(&server, "the recorded heap slope", || {
        query(&api, "instance:memprof_heap_inuse_bytes:deriv30m")
            .into_iter()
            .next()
    });
    assert!(
        value(&slope) > 0.0,
        "a leaking heap's slope is positive: {slope}"
    );

    // The leak alert, pending then firing after its (shortened) `for`.
    let alert = wait_for(&server, "MemprofHeapGrowing firing", || {
        let reply = memprof_dev::get(&format!("{api}/api/v1/alerts"));
        let alerts = reply.json()["data"]["alerts"].as_array().cloned()?;
        alerts
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "MemprofHeapGrowing" && a["state"] == "firing")
    });
    assert_eq!(alert["labels"]["instance"], target.as_str(), "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("grows") && s.contains("B/s")),
        "{alert}"
    );

    stop.store(true, Ordering::Relaxed);
    leaker.join().unwrap();
    drop(server);
}
