//! The `memprof` binary against this machine's real /proc: each subcommand
//! exits 0 with its headers, `--json` parses, bad input exits 2 with a
//! message and no panic.
#![cfg(feature = "cli")]

use std::process::{Command, Output};

fn memprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memprof"))
        .args(args)
        .output()
        .expect("run the memprof binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = memprof(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn json(args: &[&str]) -> serde_json::Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

#[test]
fn host_shows_its_sections() {
    let text = ok(&["host"]);
    for header in [
        "MEMORY",
        "PRESSURE",
        "SETTINGS",
        "ZONES",
        "CGROUP",
        "OOM KILLS",
    ] {
        assert!(text.contains(header), "{header} missing from:\n{text}");
    }
    let value = json(&["host", "--json"]);
    assert!(
        value["host"]["meminfo"]["mem_total_bytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(value.get("cgroup").is_some());
}

#[test]
fn oom_lists_the_kernel_logs_kills_or_why_not() {
    let text = ok(&["oom"]);
    assert!(text.starts_with("OOM KILLS\n"), "{text}");
    assert!(text.contains("counters: host oom_kill "), "{text}");
    let value = json(&["oom", "--json"]);
    let log = &value["kernel_log"];
    assert!(
        log["kills"].is_array() || log["unavailable"].is_string(),
        "{value}"
    );
    assert!(value["counters"]["host_oom_kill"].is_u64(), "{value}");
}

#[test]
fn top_lists_processes_by_pss() {
    let text = ok(&["top", "-n", "5"]);
    let header = text.lines().next().unwrap_or("");
    for column in ["PID", "User", "Command", "Swap", "USS", "PSS", "RSS"] {
        assert!(header.contains(column), "{column} missing from {header:?}");
    }
    let value = json(&["top", "-n", "3", "--json"]);
    let rows = value["processes"].as_array().expect("processes");
    assert!(!rows.is_empty() && rows.len() <= 3, "{value}");
    let pss: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["pss_bytes"].as_u64())
        .collect();
    assert!(
        pss.windows(2).all(|w| w[0] >= w[1]),
        "sorted by PSS: {pss:?}"
    );
}

/// Whether this test runs as root (real uid 0).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

#[test]
fn top_shows_whole_program_names_and_true_hints() {
    // A program with a long path and a long name (the kernel's `comm`
    // keeps only its first 15 bytes): the name must show whole.
    let dir = std::env::temp_dir().join(format!(
        "memprof-cli-test-{}/a-directory-with-a-rather-long-name",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("memprof-cli-named-sleeper");
    let _ = std::fs::remove_file(&program);
    std::os::unix::fs::symlink("/bin/sleep", &program).unwrap();
    let mut child = Command::new(&program).arg("30").spawn().unwrap();
    let pid = child.id().to_string();
    let text = ok(&["top", "-n", "100000"]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pid.as_str()))
        .unwrap_or_else(|| panic!("pid {pid} not listed:\n{text}"));
    assert!(row.contains("memprof-cli-named-sleeper"), "{row}");
    // The operator's own terminal: whole command lines are shown.
    assert!(row.contains("a-directory-with-a-rather-long-name"), "{row}");
    assert!(row.trim_end().ends_with(" 30"), "{row}");
    if running_as_root() {
        assert!(!text.contains("run as root"), "{text}");
    }
}

#[test]
fn watch_own_pid() {
    let pid = std::process::id().to_string();
    let text = ok(&["watch", &pid, "--interval", "0.2", "--count", "3"]);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("RSS") && lines[0].contains("PSS") && lines[0].contains("SWAP"));
    let text = ok(&["watch", &pid, "--interval", "0.1", "--count", "2", "--json"]);
    let samples: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(samples.len(), 2);
    assert!(samples[0]["rss_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(samples[1]["rss_growth_bytes_per_minute"].is_number());
}

#[test]
fn doctor_on_the_host_and_a_process() {
    let text = ok(&["doctor", "--interval", "0.2"]);
    assert!(
        text.starts_with("memprof doctor: host and cgroup"),
        "{text}"
    );
    let pid = std::process::id().to_string();
    let value = json(&["doctor", "--pid", &pid, "--interval", "0.2", "--json"]);
    let findings = value["findings"].as_array().expect("findings");
    for f in findings {
        assert!(f["rule"].is_string() && f["severity"].is_string() && f["advice"].is_string());
        assert!(
            !f["rule"].as_str().unwrap_or("").starts_with("allocator-"),
            "allocator rules are skipped for other processes: {f}"
        );
    }
    assert_eq!(value["pid"].as_u64(), Some(u64::from(std::process::id())));
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["top", "-n", "zero"],
        &["top", "-n"],
        &["watch"],
        &["watch", "notapid"],
        &["watch", "4294967295"],
        &["watch", "1", "--interval", "0"],
        &["watch", "1", "--count", "-1"],
        &["doctor", "--pid", "999999999"],
        &["doctor", "--interval", "soon"],
        &["host", "--frobnicate"],
        &["host", "extra"],
        &["top", "--interval", "1"],
    ];
    for args in cases {
        let out = memprof(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("memprof: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let help = ok(&["--help"]);
    assert!(help.contains("memprof watch <pid>"));
}
