//! The flight recorder against a real OOM kill: a service built with
//! memprof, serving its endpoint with `MEMPROF_DUMP_DIR` set and nothing
//! more, leaks from a distinctively named function in a 200 MiB memory
//! cgroup until the kernel kills it. The `limit` dumps it wrote on the way
//! must be on disk, whole, with the leaking function on top; a second
//! start with the same directory (this test's own process) must serve the
//! killed run as the previous run, OOM-killed, at `/dumps` and `/doctor`.
//!
//! Needs root and a memory controller (see `common/cgroup.rs`); elsewhere
//! it says why on stderr and passes without running. CI runs as root on
//! this machine kind (cgroup v1), where it runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memprof::host::OomLog;

#[path = "common/cgroup.rs"]
mod cgroup;
use cgroup::{is_root, limited_cgroup};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// Set in the child: the cgroup directory it moves itself into.
const SERVICE_ENV: &str = "MEMPROF_TEST_OOM_DUMP_CGROUP";
const LIMIT_BYTES: u64 = 200 << 20;
/// The child gives up (and the test fails) after this much, far above the
/// limit, so a limit that does not hold cannot exhaust the machine.
const LEAK_MAX_BYTES: usize = 1 << 30;
/// 1 MiB every 60 ms: about 16 MiB a second, so the limit is reached in
/// some 12 s and each of the watcher's once-a-second looks sees the use
/// rise by 8% of the limit.
const LEAK_STEP: Duration = Duration::from_millis(60);

/// The leak: a batch parser that keeps every batch.
#[inline(never)]
fn parse_batch_and_keep_it_forever(kept: &mut Vec<Vec<u8>>) {
    kept.push(std::hint::black_box(vec![0x5a; 1 << 20]));
}

/// The service: joins the cgroup, serves the endpoint (which starts the
/// dump watcher, as `MEMPROF_DUMP_DIR` is set), and leaks until killed.
#[test]
fn oom_dump_service_child() {
    let Some(dir) = std::env::var_os(SERVICE_ENV) else {
        return;
    };
    cgroup::join(Path::new(&dir));
    let _endpoint = memprof::serve("127.0.0.1:0").expect("the endpoint");
    let mut kept = Vec::new();
    while kept.len() * (1 << 20) < LEAK_MAX_BYTES {
        parse_batch_and_keep_it_forever(&mut kept);
        std::thread::sleep(LEAK_STEP);
    }
    eprintln!("not killed after {} MiB", kept.len());
}

/// A whole dump's summary, after checking its pprof and folded files
/// parse.
fn read_whole_dump(dir: &Path) -> serde_json::Value {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap())
            .unwrap_or_else(|e| panic!("{name}: summary.json: {e}"));
    assert_eq!(summary["format"], "memprof-dump", "{name}");
    let pprof = std::fs::read(dir.join("heap.pb.gz")).unwrap();
    memprof::export::pprof::read_pprof(&pprof[..])
        .unwrap_or_else(|e| panic!("{name}: heap.pb.gz: {e}"));
    let folded = std::fs::read_to_string(dir.join("heap.folded")).unwrap();
    for line in folded.lines() {
        let (_, count) = line.rsplit_once(' ').unwrap();
        count
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{name}: {line:?}: {e}"));
    }
    summary
}

/// `GET path` on the router, in this process; the body as JSON.
fn get_json(path: &str) -> serde_json::Value {
    use tower::ServiceExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = memprof::http::router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    })
}

#[test]
fn a_limit_dump_outlives_the_oom_kill_and_the_next_start_reports_it() {
    if !is_root() {
        eprintln!("skipped: creating a memory cgroup needs root");
        return;
    }
    let cgroup = match limited_cgroup("memprof-oom-dump-test", LIMIT_BYTES) {
        Ok(cgroup) => cgroup,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let dumps: PathBuf =
        std::env::temp_dir().join(format!("memprof-oom-dumps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dumps);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "oom_dump_service_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERVICE_ENV, &cgroup.0)
        .env("MEMPROF_DUMP_DIR", &dumps)
        .env_remove("MEMPROF_DUMP_LIMIT_THRESHOLDS")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(40);
    let (status, seen_dead) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, SystemTime::now());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the service was not OOM-killed within 40 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}: {stderr}");

    // Every dump on disk is whole; the limit dumps were written before the
    // kill, the last one with the leak on top.
    let log = OomLog::read("/").ok();
    let kill = log
        .as_ref()
        .and_then(|log| log.kills.iter().rev().find(|k| k.pid == pid).cloned());
    let killed_at = kill
        .as_ref()
        .and_then(|k| k.unix_seconds)
        .unwrap_or_else(|| seen_dead.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
    let mut limit_dumps = Vec::new();
    for entry in std::fs::read_dir(&dumps).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let summary = read_whole_dump(&entry.path());
        assert_eq!(summary["pid"], pid, "{name}");
        if summary["trigger"] == "limit" {
            limit_dumps.push((name, summary));
        }
    }
    limit_dumps.sort_by(|a, b| a.0.cmp(&b.0));
    let (last_id, last) = limit_dumps
        .last()
        .unwrap_or_else(|| panic!("no limit dump in {}: {stderr}", dumps.display()));
    let written_at = last["time_unix_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        written_at <= killed_at + 1.0,
        "{written_at} after {killed_at}"
    );
    let folded = std::fs::read_to_string(dumps.join(last_id).join("heap.folded")).unwrap();
    let top = folded.lines().next().unwrap_or_default();
    assert!(top.contains("parse_batch_and_keep_it_forever"), "{top}");
    let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / (1 << 20) as f64;
    println!(
        "{} limit dumps; the last, {last_id} ({}), was written {:.2} s before the kill \
         ({}), seeing a heap of {:.1} MiB and a cgroup usage of {:.1} MiB (working set \
         {:.1} MiB) against the {} MiB limit",
        limit_dumps.len(),
        last["detail"].as_str().unwrap_or_default(),
        killed_at - written_at,
        if kill.is_some() {
            "kernel log time"
        } else {
            "seen by the test"
        },
        mib(&last["heap_bytes"]),
        mib(&last["cgroup_usage_bytes"]),
        mib(&last["cgroup"]["working_set_bytes"]),
        LIMIT_BYTES >> 20
    );

    // The next start: this process, with the same directory.
    memprof::Config::new()
        .dumps(memprof::config::DumpSettings::from_env().dir(&dumps))
        .apply()
        .unwrap();
    let listing = get_json("/dumps");
    let previous = &listing["previous_run"];
    assert_eq!(previous["pid"], pid, "{listing}");
    assert_eq!(previous["last_dump"]["current_run"], false);
    let doctor = get_json("/doctor");
    let finding = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "previous-run-oom-killed");
    if log.is_some() {
        assert_eq!(previous["oom_killed"], true, "{listing}");
        assert_eq!(previous["oom_kill"]["pid"], pid);
        let finding = finding.unwrap_or_else(|| panic!("no finding in {doctor}"));
        let title = finding["title"].as_str().unwrap();
        assert!(
            title.starts_with(&format!(
                "the previous process (pid {pid}) was OOM-killed at"
            )) && title.contains("parse_batch_and_keep_it_forever"),
            "{title}"
        );
        println!("doctor: {title}");
    } else {
        eprintln!("the kernel log cannot be read: oom_killed is unknown");
        assert_eq!(previous["oom_killed"], serde_json::Value::Null, "{listing}");
    }
    let _ = std::fs::remove_dir_all(&dumps);
}
