//! The `memprof` binary reading what processes leave behind: memprof's own
//! pprof, a Go program's heap profile, hostile files, a synthetic dump
//! directory, differential flamegraphs and diffs.
#![cfg(all(feature = "cli", feature = "jemalloc"))]

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flate2::write::GzEncoder;
use flate2::Compression;

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

/// What a run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args`.
fn memprof(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    run_within(args, None)
}

/// Runs the binary with `args`, within `address_space` bytes of virtual
/// memory if given (`RLIMIT_AS`): past it an allocation fails and the
/// binary aborts instead of exiting with its code.
fn run_within(args: &[&dyn AsRef<std::ffi::OsStr>], address_space: Option<u64>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memprof"));
    command.args(args.iter().map(|a| a.as_ref()));
    if let Some(bytes) = address_space {
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit is async-signal-safe and `limit` is a copy
        // the closure owns; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let out = command
        .stdin(Stdio::null())
        .output()
        .expect("run the memprof binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let run = memprof(args);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.stdout
}

fn json(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "memprof-cli-profiles-{}-{name}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Keeps 32 MiB live from a function the report must name.
#[inline(never)]
fn cli_report_test_allocation() -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let blocks = (0..32).map(|_| black_box(vec![7u8; 1 << 20])).collect();
    memprof::set_thread_rate(previous);
    blocks
}

/// This process's heap profile as `/heap` serves it, written to `path`.
fn write_own_pprof(path: &Path) {
    let live = cli_report_test_allocation();
    let snapshot = memprof::snapshot();
    let file = File::create(path).unwrap();
    memprof::export::pprof::write_pprof(
        &snapshot,
        &memprof::export::pprof::PprofOptions::default(),
        file,
    )
    .unwrap();
    drop(live);
}

#[test]
fn report_names_the_top_stack_of_memprofs_own_pprof() {
    let dir = temp_dir("own");
    let file = dir.join("heap.pb.gz");
    write_own_pprof(&file);
    let value = json(&[&"report", &file, &"--json", &"--top", &"3"]);
    let top = &value["top"][0];
    assert!(
        top["site"]
            .as_str()
            .unwrap_or("")
            .contains("cli_report_test_allocation"),
        "{value}"
    );
    assert!(
        top["inuse_bytes"].as_f64().unwrap_or(0.0) >= (32 << 20) as f64,
        "{top}"
    );
    assert_eq!(value["format"], "pprof");
    assert!(value["top"].as_array().unwrap().len() <= 3);
    let text = ok(&[&"report", &file]);
    let first = text
        .lines()
        .find(|l| l.trim_start().starts_with("1. "))
        .unwrap_or_else(|| panic!("no first stack:\n{text}"));
    assert!(
        first.contains("32.0 MiB") || first.contains("MiB"),
        "{text}"
    );
    let at = text
        .lines()
        .skip_while(|l| *l != first)
        .nth(1)
        .unwrap_or("");
    assert!(at.contains("cli_report_test_allocation"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

/// `go` on PATH, or `None` (with a note) when it is missing and CI did not
/// require it (`MEMPROF_REQUIRE_CLIENTS`), as `memprof_dev::client` finds it.
fn go() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("go"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("MEMPROF_REQUIRE_CLIENTS").is_none(),
            "go is not installed and MEMPROF_REQUIRE_CLIENTS is set"
        );
        eprintln!("note: go not found on PATH; skipping the Go heap profile check");
    }
    found
}

const GO_PROGRAM: &str = r#"package main

import (
	"os"
	"runtime"
	"runtime/pprof"
)

var keep [][]byte

//go:noinline
func memprofGoLeakyFunction() {
	for i := 0; i < 48; i++ {
		keep = append(keep, make([]byte, 1<<20))
	}
}

func main() {
	runtime.MemProfileRate = 1
	memprofGoLeakyFunction()
	runtime.GC()
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		panic(err)
	}
	f.Close()
	runtime.KeepAlive(keep)
}
"#;

#[test]
fn report_reads_a_go_heap_profile() {
    let Some(go) = go() else { return };
    let dir = temp_dir("go");
    std::fs::write(dir.join("main.go"), GO_PROGRAM).unwrap();
    let mut build = Command::new(go);
    build
        .args(["build", "-o", "leaky", "main.go"])
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off");
    if std::env::var_os("HOME").is_none() {
        build.env("GOCACHE", dir.join("gocache"));
    }
    let built = build.output().unwrap();
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let profile = dir.join("go-heap.pb.gz");
    let ran = Command::new(dir.join("leaky"))
        .arg(&profile)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );

    let value = json(&[&"report", &profile, &"--json"]);
    let types: Vec<&str> = value["sample_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    let top = &value["top"][0];
    assert_eq!(
        top["frames"][0].as_str(),
        Some("main.memprofGoLeakyFunction"),
        "{value}"
    );
    assert!(
        top["inuse_bytes"].as_f64().unwrap_or(0.0) >= (40 << 20) as f64,
        "{top}"
    );
    let text = ok(&[&"report", &profile]);
    assert!(text.contains("main.memprofGoLeakyFunction"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A field `profile.proto` does not have (100, length-delimited) of `len`
/// bytes: a reader skips it without keeping it.
fn unknown_field(len: usize) -> Vec<u8> {
    let mut bytes = vec![0xa2, 0x06]; // key: field 100, wire type 2
    let mut n = len as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.resize(bytes.len() + len, 0);
    bytes
}

/// A run the binary must refuse: exit code 2, one `memprof: ` message
/// naming the file and containing `what`, no panic, within an address
/// space of `address_space` bytes (the binary reads a small profile in
/// 32 MiB).
fn refused(file: &Path, what: &str, address_space: u64) {
    let run = run_within(&[&"report", &file], Some(address_space));
    assert_eq!(run.code, Some(2), "{}: {}", file.display(), run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("memprof: {}: ", file.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(what), "{what:?} not in {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn hostile_files_are_refused_with_bounded_memory() {
    let dir = temp_dir("hostile");
    let good = dir.join("good.pb.gz");
    write_own_pprof(&good);
    let bytes = std::fs::read(&good).unwrap();
    const SMALL: u64 = 128 << 20;

    let truncated = dir.join("truncated.pb.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    refused(&truncated, "not a complete gzip stream", SMALL);

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..64 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let garbage = dir.join("random.pb");
    std::fs::write(&garbage, &random).unwrap();
    refused(&garbage, "not a pprof profile", SMALL);

    // 600 MiB of a field profile.proto does not have, in 1 MiB gzip
    // members: the cap while inflating stops it, and nothing it read is
    // kept.
    let member = gzip(&unknown_field((1 << 20) - 4));
    let bomb = dir.join("bomb.pb.gz");
    let mut out = std::io::BufWriter::new(File::create(&bomb).unwrap());
    for _ in 0..600 {
        out.write_all(&member).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 4 << 20);
    refused(
        &bomb,
        "decompresses to more than 512 MiB (it was read that far)",
        SMALL,
    );
    // A string index far past the table: one function's name.
    let mut profile = memprof::export::pprof::read_pprof(&bytes[..]).unwrap();
    profile.function[0].name = i64::MAX;
    let broken = dir.join("broken-index.pb");
    std::fs::write(&broken, prost::Message::encode_to_vec(&profile)).unwrap();
    refused(
        &broken,
        &format!("function 1's name is string {}", i64::MAX),
        SMALL,
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn flamegraph_with_base_colours_the_difference() {
    let dir = temp_dir("flame");
    let before = dir.join("before.folded");
    let after = dir.join("after.folded");
    std::fs::write(&before, "main;grew 1000\nmain;shrank 9000\n").unwrap();
    std::fs::write(&after, "main;grew 9000\nmain;shrank 1000\n").unwrap();
    let svg_path = dir.join("diff.svg");
    ok(&[&"flamegraph", &after, &"--base", &before, &"-o", &svg_path]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let title = |name: &str| {
        let start = svg
            .find(&format!("<title>{name} ("))
            .unwrap_or_else(|| panic!("{name} not drawn"));
        svg[start..start + svg[start..].find("</title>").unwrap()].to_string()
    };
    // The title carries the change; the box is red for growth, blue for
    // shrinkage (inferno's differential palette).
    assert!(title("grew").ends_with("; +80.00%)"), "{}", title("grew"));
    assert!(
        title("shrank").ends_with("; -80.00%)"),
        "{}",
        title("shrank")
    );
    let fill = |name: &str| {
        let start = svg.find(&format!("<title>{name} (")).unwrap();
        let rest = &svg[start..];
        let at = rest.find("fill=\"rgb(").unwrap() + "fill=\"rgb(".len();
        let rgb: Vec<u32> = rest[at..rest[at..].find(')').unwrap() + at]
            .split(',')
            .map(|c| c.trim().parse().unwrap())
            .collect();
        rgb
    };
    let (grew, shrank) = (fill("grew"), fill("shrank"));
    assert!(grew[0] == 255 && grew[2] < 255, "grew: {grew:?}");
    assert!(shrank[2] == 255 && shrank[0] < 255, "shrank: {shrank:?}");

    let plain = dir.join("plain.svg");
    ok(&[&"flamegraph", &after, &"-o", &plain]);
    let plain = std::fs::read_to_string(&plain).unwrap();
    assert!(plain.contains("<title>grew (9,000 bytes, 90.00%)</title>"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn diff_puts_the_grown_stack_first() {
    let dir = temp_dir("diff");
    let (a, b) = (dir.join("a.folded"), dir.join("b.folded"));
    std::fs::write(&a, "main;grows 100\nmain;shrinks 5000\nmain;gone 50\n").unwrap();
    std::fs::write(&b, "main;grows 1100\nmain;shrinks 100\nmain;new 10\n").unwrap();
    let value = json(&[&"diff", &a, &b, &"--json"]);
    let rows: Vec<(String, String, f64)> = value["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["change"].as_str().unwrap().to_string(),
                r["key"].as_str().unwrap().to_string(),
                r["delta"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("grown", "main;grows", 1000.0),
        ("new", "main;new", 10.0),
        ("shrunk", "main;shrinks", -4900.0),
        ("gone", "main;gone", -50.0),
    ];
    let expected: Vec<(String, String, f64)> = expected
        .iter()
        .map(|(c, k, d)| (c.to_string(), k.to_string(), *d))
        .collect();
    assert_eq!(rows, expected);
    let text = ok(&[&"diff", &a, &b]);
    let first = text
        .lines()
        .find(|l| l.starts_with("grown") || l.starts_with("shrunk"))
        .unwrap_or("");
    assert!(
        first.starts_with("grown  +1000 B (100 B -> 1.07 KiB)"),
        "{text}"
    );
    assert!(text.contains("gone   -50 B (50 B -> 0 B)"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

/// A dump directory as the brief lays it out: two dumps, one with a broken
/// summary, one without any, a temporary one and a stray file.
fn dump_dir() -> PathBuf {
    let dir = temp_dir("dumps");
    let dump = |id: &str, summary: Option<&str>| {
        let d = dir.join(id);
        std::fs::create_dir_all(&d).unwrap();
        if let Some(summary) = summary {
            std::fs::write(d.join("summary.json"), summary).unwrap();
        }
        d
    };
    let limit = dump(
        "20261206T095537Z-4242-limit",
        Some(
            r#"{"trigger":"limit","detail":"cgroup usage passed 90% of its limit",
            "time_unix":1796550937,"pid":4242,"comm":"leaky-svc","heap_bytes":943718400,
            "rss_bytes":1073741824,"cgroup_usage_bytes":1932735283,
            "cgroup_limit_bytes":2147483648,"future_field":{"x":1},
            "findings":[{"rule":"cgroup-near-limit","severity":"critical","title":"the cgroup is at 90% of its limit"}],
            "leak_candidates":[{"rank":1,"site":"parse_batch <- main","inuse_bytes":1048576,
            "growth_bytes_per_second":524288,"summary":"parse_batch holds 1.0 MiB, growing 30 MiB/min"}]}"#,
        ),
    );
    write_own_pprof(&limit.join("heap.pb.gz"));
    dump(
        "20261206T090000Z-4242-peak",
        Some(r#"{"trigger":"peak","time_unix":1796547600,"pid":4242}"#),
    );
    dump("20261206T100000Z-4243-request", Some("{\"trigger\": \"req"));
    dump("20261206T100500Z-4243-exit", None);
    dump(".20261206T101000Z-4243-limit.tmp", None);
    std::fs::write(dir.join("notes.txt"), "not a dump").unwrap();
    dir
}

#[test]
fn dumps_lists_a_directory_and_report_reads_a_dump() {
    let dir = dump_dir();
    let text = ok(&[&"dumps", &dir]);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("2026")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows[0].starts_with("20261206T100500Z-4243-exit") && rows[0].contains("unreadable"));
    assert!(
        rows[1].starts_with("20261206T100000Z-4243-request")
            && rows[1].contains("unreadable: ")
            && rows[1].contains("summary.json: not JSON"),
        "{}",
        rows[1]
    );
    let limit = rows[2];
    for part in [
        "limit",
        "2026-12-06 09:55:37 UTC",
        "4242",
        "900 MiB",
        "1.00 GiB",
        "1.80 GiB/2.00 GiB (90%)",
    ] {
        assert!(limit.contains(part), "{part:?} not in {limit}");
    }
    assert!(rows[3].contains("peak"), "{}", rows[3]);
    assert!(text.contains("note: notes.txt skipped"), "{text}");
    assert!(
        text.contains("note: .20261206T101000Z-4243-limit.tmp skipped"),
        "{text}"
    );

    let value = json(&[&"dumps", &dir, &"--json"]);
    let dumps = value["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 4);
    assert_eq!(dumps[2]["cgroup_limit_bytes"], 2_147_483_648u64);
    assert!(dumps[2]["files"]["pprof"].is_string());
    assert!(dumps[1]["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(dumps[0]["trigger"], "exit", "from the id");

    let dump = dir.join("20261206T095537Z-4242-limit");
    let text = ok(&[&"report", &dump]);
    for part in [
        "trigger: limit (cgroup usage passed 90% of its limit)",
        "2026-12-06 09:55:37 UTC pid 4242 (leaky-svc)",
        "cgroup 1.80 GiB/2.00 GiB (90%)",
        "critical cgroup-near-limit: the cgroup is at 90% of its limit",
        "LEAK CANDIDATES",
        "1. parse_batch <- main\n     parse_batch holds 1.0 MiB, growing 30 MiB/min",
        "cli_report_test_allocation",
    ] {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
    let value = json(&[&"report", &dump, &"--json"]);
    assert_eq!(value["summary"]["future_field"]["x"], 1);
    assert_eq!(value["leak_candidates"][0]["rank"], 1);

    let broken = dir.join("20261206T100000Z-4243-request");
    std::fs::write(broken.join("heap.folded"), "main;a 10\n").unwrap();
    let run = memprof(&[&"report", &broken]);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(
        run.stderr.starts_with("memprof: ") && run.stderr.contains("summary.json: not JSON"),
        "{}",
        run.stderr
    );
    // The profile alone still draws.
    let svg = dir.join("out.svg");
    ok(&[&"flamegraph", &broken, &"-o", &svg]);
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("<title>a (10 bytes"));
    std::fs::remove_dir_all(dir).ok();
}
