//! The flight recorder end to end: dumps written to a real directory by a
//! real process, served over loopback, killed mid-write, denied a
//! directory or disk space, asked for by a signal and at exit.
//!
//! The dump settings are per process, so each case runs in a child: this
//! test binary again, running only [`CHILD_TEST`] with [`MODE`] set and
//! `MEMPROF_DUMP_*` in its environment. The child panics (and so fails)
//! on what it checks itself; the parent checks the directory it leaves.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use memprof_dev::{get, post};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const MODE: &str = "MEMPROF_DUMPS_TEST_MODE";
const CHILD_TEST: &str = "child";

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("memprof-dumps-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A `peak` floor no test process reaches: a test process's RSS (its
/// symbol caches) may pass the default 64 MiB, which would add `peak`
/// dumps to those a test counts.
fn no_peaks() -> PathBuf {
    PathBuf::from("64GiB")
}

fn child_command(mode: &str, env: &[(&str, &Path)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(MODE, mode);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the child in `mode` to the end; panics with its output if it
/// failed.
fn run_child(mode: &str, env: &[(&str, &Path)]) -> Output {
    let out = child_command(mode, env).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child {mode} failed: {text}");
    out
}

/// The child: one case, chosen by [`MODE`].
#[test]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    match mode.as_str() {
        "http" => child_http(),
        "unwritable" => child_unwritable(),
        "fsize" => child_fsize(),
        "writer-loop" => child_writer_loop(),
        "peak" => child_peak(),
        "signal" => child_signal(),
        "exit" => child_exit(),
        "exit_fork" => child_exit_fork(),
        "cost" => child_cost(),
        other => panic!("unknown mode {other}"),
    }
}

/// Allocates `blocks` blocks of `size` bytes from a function whose name
/// the profile shows, every allocation sampled.
#[inline(never)]
fn held_by_flight_recorder_test(blocks: usize, size: usize) -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let held = (0..blocks)
        .map(|_| black_box(vec![0x3c_u8; size]))
        .collect();
    memprof::set_thread_rate(previous);
    held
}

fn child_http() {
    let held = held_by_flight_recorder_test(16, 256 * 1024);
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let ep = endpoint.url();
    let created = post(&format!("{ep}/dumps"));
    assert_eq!(created.status, 201, "{}", created.text());
    let entry = created.json();
    let id = entry["id"].as_str().unwrap().to_owned();
    assert_eq!(entry["trigger"], "request");
    assert_eq!(created.location.as_deref(), Some(&*format!("dumps/{id}")));

    let listing = get(&format!("{ep}/dumps")).json();
    for key in [
        "dir",
        "enabled",
        "error",
        "written",
        "failed",
        "dumps",
        "previous_run",
    ] {
        assert!(listing.get(key).is_some(), "{key} in {listing}");
    }
    assert_eq!(listing["enabled"], true);
    assert_eq!(listing["error"], serde_json::Value::Null, "{listing}");
    assert_eq!(
        (&listing["written"], &listing["failed"]),
        (&1.into(), &0.into())
    );
    assert_eq!(listing["previous_run"], serde_json::Value::Null);
    let dump = &listing["dumps"][0];
    assert_eq!(dump["id"], id.as_str());
    assert_eq!(dump["current_run"], true);
    assert_eq!(dump["pid"], std::process::id());
    for key in [
        "detail",
        "time_unix",
        "comm",
        "heap_bytes",
        "rss_bytes",
        "cgroup_usage_bytes",
        "cgroup_limit_bytes",
        "bytes",
    ] {
        assert!(dump.get(key).is_some(), "{key} in {dump}");
    }
    assert_eq!(dump["files"]["pprof"], format!("dumps/{id}/heap.pb.gz"));
    let notes = listing["notes"].to_string();
    assert!(notes.contains("notes.txt"), "{listing}");

    // Every file the listing names is served, and parses.
    let summary = get(&format!(
        "{ep}/{}",
        dump["files"]["summary"].as_str().unwrap()
    ));
    assert_eq!(summary.status, 200);
    let summary = summary.json();
    assert_eq!(summary["trigger"], "request");
    assert_eq!(summary["detail"], "POST /debug/memprof/dumps");
    assert!(summary["top_stacks"][0]["function"]
        .as_str()
        .unwrap()
        .contains("held_by_flight_recorder_test"));
    let pprof = get(&format!("{ep}/dumps/{id}/heap.pb.gz"));
    assert_eq!(pprof.status, 200);
    let profile = memprof::export::pprof::read_pprof(&pprof.body[..]).unwrap();
    assert!(!profile.sample.is_empty());
    let folded = get(&format!("{ep}/dumps/{id}/heap.folded")).text();
    assert!(
        folded
            .lines()
            .next()
            .unwrap()
            .contains("held_by_flight_recorder_test"),
        "{folded}"
    );
    for url in [
        format!("{ep}/dumps/{id}/flamegraph"),
        format!("{ep}/dumps/{id}/flamegraph?base=current"),
    ] {
        let svg = get(&url);
        assert_eq!(svg.status, 200, "{url}: {}", svg.text());
        assert_eq!(svg.content_type, "image/svg+xml");
        assert!(svg.text().contains("held_by_flight_recorder_test"), "{url}");
    }
    assert_eq!(
        get(&format!("{ep}/dumps/{id}/flamegraph?base=1")).status,
        400
    );

    // Only listed dumps' files, by their names.
    let dir = PathBuf::from(std::env::var_os("MEMPROF_DUMP_DIR").unwrap());
    fs::write(dir.join(&id).join("secret"), "not served").unwrap();
    for path in [
        format!("dumps/{id}/secret"),
        format!("dumps/{id}/..%2F..%2Fetc%2Fpasswd"),
        format!("dumps/{id}/%2E%2E"),
        "dumps/..%2F..%2Fetc/passwd".to_owned(),
        "dumps/%2E%2E/summary.json".to_owned(),
        "dumps/notes.txt/summary.json".to_owned(),
        "dumps/20261206T100000Z-1-link/summary.json".to_owned(),
        "dumps/20261206T100000Z-1-peak/summary.json".to_owned(),
        format!("dumps/{id}%2F..%2F{id}/summary.json"),
    ] {
        let reply = get(&format!("{ep}/{path}"));
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        assert!(!reply.text().contains("not served") && !reply.text().contains("root:"));
    }
    let text = get(&format!("{ep}/dumps?format=text")).text();
    assert!(text.contains(&id) && text.contains("request"), "{text}");
    let stats = get(&format!("{ep}/stats")).json();
    assert_eq!(stats["dumps"]["written"], 1, "{}", stats["dumps"]);
    drop(held);
}

#[test]
fn post_writes_a_dump_the_listing_serves_and_nothing_else_is_served() {
    let tmp = TempDir::new("http");
    fs::write(tmp.0.join("notes.txt"), "an operator's notes").unwrap();
    // A link out of the directory, named like a dump.
    std::os::unix::fs::symlink("/etc", tmp.0.join("20261206T100000Z-1-link")).unwrap();
    run_child(
        "http",
        &[
            ("MEMPROF_DUMP_DIR", &tmp.0),
            ("MEMPROF_DUMP_PEAK_FLOOR", &no_peaks()),
        ],
    );
    assert!(tmp.0.join("notes.txt").exists());
}

fn child_unwritable() {
    let endpoint = memprof::serve("127.0.0.1:0").unwrap();
    let ep = endpoint.url();
    let refused = post(&format!("{ep}/dumps"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("Not a directory"),
        "{}",
        refused.text()
    );
    let listing = get(&format!("{ep}/dumps")).json();
    let error = listing["error"].as_str().unwrap();
    assert!(
        error.starts_with("dump directory ") && !error.contains('\n'),
        "{error}"
    );
    assert_eq!(listing["failed"], 1);
    let stats = get(&format!("{ep}/stats")).json();
    assert_eq!(
        stats["dumps"]["error"].as_str(),
        Some(error),
        "{}",
        stats["dumps"]
    );
    assert_eq!(stats["dumps"]["failed"], 1);
}

#[test]
fn an_unusable_directory_is_one_line_in_stats_and_dumps_and_counted() {
    let tmp = TempDir::new("unwritable");
    let file = tmp.0.join("a-file");
    fs::write(&file, "x").unwrap();
    run_child("unwritable", &[("MEMPROF_DUMP_DIR", &file.join("dumps"))]);
}

fn set_file_size_limit(bytes: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn child_fsize() {
    // SAFETY: ignoring SIGXFSZ makes a write past the limit fail with
    // EFBIG instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let held = many_stacks(11);
    set_file_size_limit(16 * 1024);
    let err = memprof::dump::dump_now("a full disk").unwrap_err();
    assert!(err.to_string().contains("File too large"), "{err}");
    let status = memprof::dump::status();
    assert_eq!((status.written, status.failed), (0, 1));
    assert!(status.error.unwrap().contains("File too large"));
    let dir = PathBuf::from(std::env::var_os("MEMPROF_DUMP_DIR").unwrap());
    let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing is left of a failed dump: {left:?}"
    );
    // Space again: the next dump is written and the error is gone.
    set_file_size_limit(libc::RLIM_INFINITY);
    memprof::dump::dump_now("space again").unwrap();
    let status = memprof::dump::status();
    assert_eq!((status.written, status.failed, status.error), (1, 1, None));
    drop(held);
}

#[test]
fn a_full_disk_fails_the_dump_cleanly_and_the_program_goes_on() {
    let tmp = TempDir::new("fsize");
    run_child("fsize", &[("MEMPROF_DUMP_DIR", &tmp.0)]);
}

/// Keeps one sampled block from each of `2^depth` distinct stacks.
fn many_stacks(depth: u32) -> Vec<Vec<u8>> {
    let previous = memprof::set_thread_rate(Some(1));
    let mut held = Vec::with_capacity(1 << depth);
    memprof_dev::distinct_stacks::for_each(depth, &mut |_| held.push(black_box(vec![1u8; 64])));
    memprof::set_thread_rate(previous);
    held
}

fn child_writer_loop() {
    let _held = many_stacks(11);
    loop {
        let dump = memprof::dump::dump_now("in a loop").unwrap();
        println!("WROTE {}", dump.id);
    }
}

/// Checks that every dump-named directory holds a whole dump: a summary
/// that parses as memprof's, a pprof that decodes, folded lines that
/// parse. Returns how many there are.
fn check_every_dump_is_whole(dir: &Path) -> usize {
    let mut whole = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let summary: serde_json::Value =
            serde_json::from_slice(&fs::read(path.join("summary.json")).unwrap())
                .unwrap_or_else(|e| panic!("{name}: summary.json: {e}"));
        assert_eq!(summary["format"], "memprof-dump", "{name}");
        assert_eq!(summary["id"], name.as_str());
        let pprof = fs::read(path.join("heap.pb.gz")).unwrap();
        let profile = memprof::export::pprof::read_pprof(&pprof[..])
            .unwrap_or_else(|e| panic!("{name}: heap.pb.gz: {e}"));
        // The 1,000 largest of the 2,048 stacks, and the remainder.
        assert_eq!(profile.sample.len(), 1001, "{name}");
        let folded = fs::read_to_string(path.join("heap.folded")).unwrap();
        assert_eq!(folded.lines().count(), 1001, "{name}");
        for line in folded.lines() {
            let (_, count) = line.rsplit_once(' ').unwrap();
            count
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{name}: {line:?}: {e}"));
        }
        whole += 1;
    }
    whole
}

#[test]
fn a_writer_killed_at_any_moment_leaves_only_whole_dumps() {
    let tmp = TempDir::new("killed");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut killed_mid_write = 0;
    for round in 0..6 {
        let mut child = child_command("writer-loop", &[("MEMPROF_DUMP_DIR", &tmp.0)])
            .env("MEMPROF_DUMP_KEEP", "4")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let delay = Duration::from_millis(300 + u64::from(seed >> 8) % 900);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: {status:?}"
        );
        if fs::read_dir(&tmp.0)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        {
            killed_mid_write += 1;
        }
        check_every_dump_is_whole(&tmp.0);
    }
    println!("{killed_mid_write} of 6 kills left a temporary directory");
    // The next start removes the leftovers and keeps what is whole.
    memprof::Config::new()
        .dumps(
            memprof::config::DumpSettings::from_env()
                .dir(&tmp.0)
                .retention(4, u64::MAX),
        )
        .apply()
        .unwrap();
    let listing = memprof::dump::listing();
    let leftovers: Vec<String> = fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let whole = check_every_dump_is_whole(&tmp.0);
    assert!(
        (1..=4).contains(&whole),
        "{whole} dumps: {:?}",
        listing.dumps
    );
    assert_eq!(listing.dumps.len(), whole);
    let previous = listing.previous_run.expect("the killed writer's dumps");
    assert_ne!(previous.pid, std::process::id());
}

fn child_peak() {
    memprof::Config::new()
        .dumps(
            memprof::config::DumpSettings::from_env()
                .peak_step(0.10, 4 << 20)
                .min_interval(Duration::ZERO)
                .limit_thresholds(&[]),
        )
        .apply()
        .unwrap();
    memprof::dump::start().unwrap();
    let held = held_by_flight_recorder_test(32, 1 << 20);
    let deadline = Instant::now() + Duration::from_secs(10);
    let dump = loop {
        let listing = memprof::dump::listing();
        // The watcher may have taken the RSS at start for a first peak.
        let big = |d: &&memprof::dump::DumpEntry| {
            d.trigger == "peak" && d.heap_bytes >= 30.0 * (1 << 20) as f64
        };
        if let Some(d) = listing.dumps.iter().find(big) {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "no peak dump: {listing:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(dump.detail.contains("passed the previous high"), "{dump:?}");
    let dir = PathBuf::from(std::env::var_os("MEMPROF_DUMP_DIR").unwrap());
    let folded = fs::read_to_string(dir.join(&dump.id).join("heap.folded")).unwrap();
    assert!(
        folded
            .lines()
            .next()
            .unwrap()
            .contains("held_by_flight_recorder_test"),
        "{folded}"
    );
    drop(held);
}

#[test]
fn the_watcher_writes_a_peak_dump_when_the_heap_passes_its_high() {
    let tmp = TempDir::new("peak");
    run_child("peak", &[("MEMPROF_DUMP_DIR", &tmp.0)]);
}

fn child_signal() {
    memprof::dump::start().unwrap();
    // SAFETY: raise sends the signal to this thread; the handler start()
    // installed only sets a flag.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listing = memprof::dump::listing();
        if let Some(d) = listing.dumps.iter().find(|d| d.trigger == "request") {
            assert_eq!(d.detail, "SIGUSR2 received");
            return;
        }
        assert!(Instant::now() < deadline, "no dump: {listing:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_opt_in_signal_asks_for_a_dump() {
    let tmp = TempDir::new("signal");
    let signal = PathBuf::from("SIGUSR2");
    run_child(
        "signal",
        &[
            ("MEMPROF_DUMP_DIR", &tmp.0),
            ("MEMPROF_DUMP_SIGNAL", &signal),
        ],
    );
}

fn child_exit() {
    memprof::dump::start().unwrap();
    println!("returning from the test");
}

/// Starts dumps, then forks a child that exits normally (so it runs the
/// exit hooks it inherited) before this process exits itself.
fn child_exit_fork() {
    memprof::dump::start().unwrap();
    // SAFETY: the child only calls `exit`, which runs the inherited atexit
    // hooks; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::exit(0);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
    }
    println!("returning from the test");
}

#[test]
fn a_forked_child_leaves_the_exit_dump_to_the_process_that_asked() {
    let tmp = TempDir::new("exit-fork");
    let yes = PathBuf::from("1");
    run_child(
        "exit_fork",
        &[
            ("MEMPROF_DUMP_DIR", &tmp.0),
            ("MEMPROF_DUMP_ON_EXIT", &yes),
            ("MEMPROF_DUMP_PEAK_FLOOR", &no_peaks()),
        ],
    );
    let names: Vec<String> = fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() == 1 && names[0].ends_with("-exit"),
        "one exit dump, the asking process's: {names:?}"
    );
}

#[test]
fn an_exit_dump_is_written_when_asked_for() {
    let tmp = TempDir::new("exit");
    let yes = PathBuf::from("1");
    run_child(
        "exit",
        &[
            ("MEMPROF_DUMP_DIR", &tmp.0),
            ("MEMPROF_DUMP_ON_EXIT", &yes),
            ("MEMPROF_DUMP_PEAK_FLOOR", &no_peaks()),
        ],
    );
    let names: Vec<String> = fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() == 1 && names[0].ends_with("-exit"), "{names:?}");
    // Without the setting, no exit dump.
    let tmp = TempDir::new("no-exit");
    run_child(
        "exit",
        &[
            ("MEMPROF_DUMP_DIR", &tmp.0),
            ("MEMPROF_DUMP_PEAK_FLOOR", &no_peaks()),
        ],
    );
    assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 0);
}

fn child_cost() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = PathBuf::from(std::env::var_os("MEMPROF_DUMP_DIR").unwrap());
    let allocated = || memprof::jemalloc::stats().unwrap().totals.allocated_bytes;
    for (depth, stacks) in [(10, 1_000usize), (14, 10_000)] {
        let previous = memprof::set_thread_rate(Some(1));
        let mut held = Vec::with_capacity(stacks);
        for path in 0..stacks as u32 {
            memprof_dev::distinct_stacks::call_from(path, depth, &mut || {
                held.push(black_box(vec![1u8; 64]));
            });
        }
        memprof::set_thread_rate(previous);
        // The first dump symbolizes the stacks (the cache then serves the
        // next ones, as the watcher's later dumps are served).
        let started = Instant::now();
        memprof::dump::dump_now("first").unwrap();
        let first = started.elapsed();
        // The heap's high during the next dump, polled from another thread.
        let before = allocated();
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut high = 0;
                while !done.load(Ordering::Relaxed) {
                    high = high.max(allocated());
                    std::thread::sleep(Duration::from_millis(1));
                }
                high
            })
        };
        let started = Instant::now();
        let dump = memprof::dump::dump_now("measured").unwrap();
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let high = poller.join().unwrap();
        let size = |f: &str| fs::metadata(dir.join(&dump.id).join(f)).unwrap().len() / 1024;
        println!(
            "COST stacks={stacks} first_ms={:.0} ms={:.0} heap_high_above_before_kib={} \
             summary_kib={} pprof_kib={} folded_kib={}",
            first.as_secs_f64() * 1000.0,
            took.as_secs_f64() * 1000.0,
            high.saturating_sub(before) / 1024,
            size("summary.json"),
            size("heap.pb.gz"),
            size("heap.folded"),
        );
        drop(held);
    }
    // The watcher's own CPU: its thread's time on CPU (schedstat, ns)
    // over five seconds of ticks that write nothing.
    memprof::dump::start().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let cpu_ns = || -> u64 {
        for task in fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            if fs::read_to_string(task.join("comm")).unwrap().trim() == "memprof-dumps" {
                let stat = fs::read_to_string(task.join("schedstat")).unwrap();
                return stat.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("no memprof-dumps thread");
    };
    let before = cpu_ns();
    std::thread::sleep(Duration::from_secs(5));
    let per_second = (cpu_ns() - before) as f64 / 5.0;
    println!("COST watcher_cpu_us_per_second={:.0}", per_second / 1000.0);
}

#[test]
fn the_cost_of_a_dump_of_1k_and_10k_stacks() {
    let tmp = TempDir::new("cost");
    let out = run_child(
        "cost",
        &[
            ("MEMPROF_DUMP_DIR", &tmp.0),
            ("MEMPROF_DUMP_PEAK_FLOOR", &no_peaks()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("COST ").map(|at| &l[at..]))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in lines {
        println!("{line}");
    }
}
