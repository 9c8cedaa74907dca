//! The directory's parts over real files in a temporary directory: a dump
//! written and read back, retention, what a scan ignores, what a start
//! removes. Global state (the settings, the watcher) is tested end to end
//! in `tests/dumps.rs`, one child process per setting.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dir::{self, DumpEntry};
use super::id::format_id;
use super::summary::{Summary, FORMAT};
use super::writer::{self, tmp_name};
use crate::profile::{Estimates, Snapshot, StackProfile};
use crate::stack::Frame;

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("memprof-dump-unit-{}-{name}", std::process::id()));
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

fn stack(names: &[&str], bytes: f64) -> StackProfile {
    let mut s = StackProfile::allocated(names.iter().map(|n| Frame::named(*n)).collect(), 0.0);
    s.estimates = Estimates {
        inuse_bytes: bytes,
        inuse_objects: 1.0,
        alloc_bytes: bytes,
        alloc_objects: 1.0,
    };
    s
}

fn snapshot(stacks: usize) -> Snapshot {
    let stacks = (0..stacks)
        .map(|i| {
            stack(
                &[&format!("leaf_{i}"), "app::handle", "main"],
                (1000 * (i + 1)) as f64,
            )
        })
        .collect();
    Snapshot::of_stacks(1_796_551_200_000, stacks)
}

fn summary(id: &str, pid: u32, time_unix: u64) -> Summary {
    Summary {
        format: FORMAT.to_owned(),
        version: 1,
        id: id.to_owned(),
        trigger: "peak".to_owned(),
        detail: "made up".to_owned(),
        time_unix,
        pid,
        heap_bytes: 1.0,
        ..Summary::default()
    }
}

/// Writes a dump of `stacks` stacks at `time_unix` by `pid`; its id.
fn write_one(dir: &Path, pid: u32, time_unix: u64, stacks: usize) -> String {
    let id = format_id(time_unix, pid, "peak", 0);
    writer::write(dir, &id, &snapshot(stacks), &summary(&id, pid, time_unix)).unwrap();
    id
}

#[test]
fn a_dump_reads_back_whole() {
    let tmp = TempDir::new("roundtrip");
    let id = write_one(&tmp.0, 42, 1_796_551_200, 3);
    assert!(!tmp.0.join(tmp_name(&id)).exists());
    let scan = dir::scan(&tmp.0).unwrap();
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    let [entry] = &scan.entries[..] else {
        panic!("{:?}", scan.entries)
    };
    assert_eq!((entry.id.as_str(), entry.pid), (id.as_str(), 42));
    assert_eq!(entry.files.flamegraph, format!("dumps/{id}/flamegraph"));
    let folded = fs::read_to_string(tmp.0.join(&id).join("heap.folded")).unwrap();
    assert_eq!(
        folded.lines().next(),
        Some("main;app::handle;leaf_2 3000"),
        "largest first: {folded}"
    );
    let pprof = fs::read(tmp.0.join(&id).join("heap.pb.gz")).unwrap();
    let profile = crate::export::pprof::read_pprof(&pprof[..]).unwrap();
    assert_eq!(profile.sample.len(), 3);
    let bytes: u64 = ["summary.json", "heap.pb.gz", "heap.folded"]
        .iter()
        .map(|f| fs::metadata(tmp.0.join(&id).join(f)).unwrap().len())
        .sum();
    assert_eq!(entry.bytes, bytes);
}

#[test]
fn retention_removes_the_oldest_first_and_keeps_the_rest() {
    let tmp = TempDir::new("retention");
    let ids: Vec<String> = (0..5)
        .map(|i| write_one(&tmp.0, 100 + i, 1_796_551_200 + u64::from(i), 2))
        .collect();
    fs::write(tmp.0.join("README"), "not a dump").unwrap();
    let mut entries = dir::scan(&tmp.0).unwrap().entries;
    assert_eq!(entries.len(), 5);
    dir::retain(&tmp.0, &mut entries, 3, u64::MAX);
    let left: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(left, [&ids[4], &ids[3], &ids[2]]);
    assert!(!tmp.0.join(&ids[0]).exists() && !tmp.0.join(&ids[1]).exists());
    let hidden = fs::read_dir(&tmp.0).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')
    });
    assert_eq!(hidden.count(), 0, "nothing half removed is left");
    // Bytes: room for two of these dumps only.
    let per_dump = entries[0].bytes;
    dir::retain(&tmp.0, &mut entries, 20, 2 * per_dump + per_dump / 2);
    assert_eq!(entries.len(), 2);
    assert!(!tmp.0.join(&ids[2]).exists());
    // The newest stays even when it alone is over the bytes.
    dir::retain(&tmp.0, &mut entries, 20, 1);
    assert_eq!(entries.len(), 1);
    assert!(tmp.0.join(&ids[4]).exists());
    assert!(
        tmp.0.join("README").exists(),
        "foreign files are never removed"
    );
}

#[test]
fn foreign_and_malformed_entries_are_noted_and_ignored() {
    let tmp = TempDir::new("foreign");
    let good = write_one(&tmp.0, 7, 1_796_551_200, 1);
    fs::write(tmp.0.join("notes.txt"), "hello").unwrap();
    fs::create_dir(tmp.0.join("lost+found")).unwrap();
    let garbage = tmp.0.join(format_id(1_796_551_100, 8, "limit", 0));
    fs::create_dir(&garbage).unwrap();
    fs::write(garbage.join("summary.json"), b"\x00\xff{not json").unwrap();
    let foreign = tmp.0.join(format_id(1_796_551_000, 9, "peak", 0));
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("summary.json"), br#"{"format": "other"}"#).unwrap();
    // A summary with a file missing.
    let partial = format_id(1_796_550_900, 10, "exit", 0);
    let partial_dir = tmp.0.join(&partial);
    fs::create_dir(&partial_dir).unwrap();
    let text = serde_json::to_vec(&summary(&partial, 10, 1_796_550_900)).unwrap();
    fs::write(partial_dir.join("summary.json"), text).unwrap();
    // A name that is a file.
    fs::write(tmp.0.join(format_id(1_796_550_800, 11, "peak", 0)), "x").unwrap();
    let scan = dir::scan(&tmp.0).unwrap();
    let ids: Vec<&str> = scan.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [good.as_str()]);
    assert_eq!(scan.notes.len(), 6, "{:#?}", scan.notes);
    for (needle, why) in [
        ("notes.txt", "not a dump's name"),
        ("lost+found", "not a dump's name"),
        ("-8-limit", "does not parse"),
        ("-9-peak", "not a memprof dump"),
        ("-10-exit", "heap.pb.gz"),
        ("-11-peak", "not a directory"),
    ] {
        assert!(
            scan.notes
                .iter()
                .any(|n| n.contains(needle) && n.contains(why)),
            "{needle}: {why} in {:#?}",
            scan.notes
        );
    }
}

#[test]
fn a_start_removes_killed_writers_leftovers_but_not_a_live_writers() {
    let tmp = TempDir::new("leftovers");
    let own = tmp_name(&format_id(1_796_551_200, std::process::id(), "peak", 0));
    // pid 1 runs (and as root may be signalled; otherwise EPERM says it runs).
    let live = tmp_name(&format_id(1_796_551_200, 1, "peak", 0));
    let dead = tmp_name(&format_id(1_796_551_200, u32::MAX - 1, "limit", 0));
    let removing = format!(".{}.removed", format_id(1_796_551_100, 1, "peak", 0));
    for name in [&own, &live, &dead, &removing] {
        fs::create_dir(tmp.0.join(name)).unwrap();
        fs::write(tmp.0.join(name).join("heap.folded"), "half").unwrap();
    }
    let notes = dir::prepare(&tmp.0).unwrap();
    assert!(!tmp.0.join(&own).exists() && !tmp.0.join(&dead).exists());
    assert!(!tmp.0.join(&removing).exists());
    assert!(tmp.0.join(&live).exists());
    assert_eq!(notes.len(), 3, "{notes:?}");
}

#[test]
fn a_missing_directory_is_created_and_an_impossible_one_is_an_error() {
    let tmp = TempDir::new("create");
    let nested = tmp.0.join("a/b/dumps");
    dir::prepare(&nested).unwrap();
    assert!(nested.is_dir());
    let file = tmp.0.join("plain-file");
    fs::write(&file, "x").unwrap();
    let err = dir::prepare(&file.join("dumps")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err}");
    // Writing into it fails the same way, leaving nothing.
    let id = format_id(1_796_551_200, 1, "peak", 0);
    let err = writer::write(&file, &id, &snapshot(1), &summary(&id, 1, 1)).unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err}");
}

#[test]
fn entries_say_which_run_wrote_them() {
    let s = summary("x", std::process::id(), 1);
    assert!(DumpEntry::of(&s, 0).current_run);
    let s = summary("x", std::process::id() + 1, 1);
    assert!(!DumpEntry::of(&s, 0).current_run);
}

#[test]
fn a_kill_counts_only_after_the_dump() {
    use crate::host::{LogClock, OomLog};
    let kill = "3,2,5000000,-;Memory cgroup out of memory: Killed process 42 (leaky) total-vm:1kB, anon-rss:204800kB, file-rss:1024kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0\n";
    let clock = LogClock {
        monotonic_usec: 6_000_000,
        unix_seconds: 1_000.0,
    };
    let log = OomLog::parse(kill.as_bytes(), Some(clock)).unwrap();
    // Killed at 999 s (boot 5 s, now 6 s at 1000 s).
    assert!(super::previous::kill_after(&log, 42, 990).is_some());
    assert!(super::previous::kill_after(&log, 42, 1005).is_none());
    assert!(super::previous::kill_after(&log, 43, 990).is_none());
}

#[test]
fn leading_function_skips_the_standard_library() {
    let frames: Vec<Arc<Frame>> = ["alloc::vec::Vec<T>::push", "app::parse_batch<u8>", "main"]
        .iter()
        .map(|n| Frame::named(*n))
        .collect();
    let f = super::summary::leading_function(&frames);
    assert_eq!(f, "app::parse_batch");
}
