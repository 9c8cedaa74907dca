//! A real OOM kill: a child process in a child memory cgroup with a small
//! limit allocates until the kernel kills it, and the kernel-log reader
//! (`memprof::host::OomLog`) must name its pid.
//!
//! Needs root and a memory controller (cgroup v1 `memory.limit_in_bytes`, or
//! v2 `memory.max` where the test's own cgroup may enable the controller for
//! a child); elsewhere it says why on stderr and passes without running. CI
//! runs as root on a v1 machine, where it runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use memprof::host::OomLog;

#[path = "common/cgroup.rs"]
mod cgroup;
use cgroup::{is_root, limited_cgroup};

/// Set in the child: the cgroup directory it moves itself into before it
/// allocates.
const HOG_ENV: &str = "MEMPROF_TEST_OOM_HOG_CGROUP";
const LIMIT_BYTES: u64 = 64 << 20;
/// The child gives up (and the test fails) after this much, far above the
/// limit, so a limit that does not hold cannot exhaust the machine.
const HOG_MAX_BYTES: usize = 1 << 30;

/// The child: joins the cgroup, then touches 1 MiB blocks until killed.
#[test]
fn oom_hog_child() {
    let Some(dir) = std::env::var_os(HOG_ENV) else {
        return;
    };
    cgroup::join(Path::new(&dir));
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while blocks.len() * (1 << 20) < HOG_MAX_BYTES {
        blocks.push(vec![0x5a; 1 << 20]);
    }
    eprintln!("not killed after {} MiB", blocks.len());
}

#[test]
fn kernel_log_names_the_oom_victim() {
    if !is_root() {
        eprintln!("skipped: creating a memory cgroup needs root");
        return;
    }
    let cgroup = match limited_cgroup("memprof-oom-test", LIMIT_BYTES) {
        Ok(cgroup) => cgroup,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "oom_hog_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOG_ENV, &cgroup.0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child was not OOM-killed within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    let log = OomLog::read("/").expect("root reads /dev/kmsg");
    let kill = log
        .kills
        .iter()
        .rev()
        .find(|k| k.pid == pid)
        .unwrap_or_else(|| panic!("no kill of pid {pid} in {log:#?}"));
    // The heap it grew, near the limit (RSS and the group's charge differ by
    // a few pages either way).
    assert!(
        kill.anon_rss_bytes >= LIMIT_BYTES / 2 && kill.rss_bytes() <= 2 * LIMIT_BYTES,
        "{kill:?}"
    );
    assert!(kill.age_seconds.is_some_and(|age| age < 60.0), "{kill:?}");
    // The summary line is rate-limited by the kernel (with the header); when
    // it was written it names this cgroup.
    if let Some(memcg) = kill.memcg() {
        let name = cgroup.0.file_name().unwrap().to_string_lossy().into_owned();
        assert!(memcg.ends_with(&name), "{memcg} is not {name}: {kill:?}");
        assert_eq!(kill.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    }
}
