//! How deep stacks go: `MEMPROF_MAX_FRAMES` lets a 200-frame-deep
//! allocation be kept whole down to the thread's start, and a stack cut at
//! the limit ends in a `[truncated]` root frame instead of passing for a
//! complete one.
//!
//! The limit is read once per process, so each setting runs in a child:
//! this test binary again, running only the child test with `CHILD` set.

use std::process::Command;

use memprof::MemProf;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const CHILD: &str = "MEMPROF_STACK_DEPTH_TEST_CHILD";
const TEST: &str = "child_allocates_deep";
const DEPTH: usize = 200;

/// Recurses `depth` times through a frame that is neither inlined nor
/// tail-called, then allocates a block every time (each is sampled).
#[inline(never)]
fn deep_frame(depth: usize, kept: &mut Vec<Vec<u8>>) {
    if depth == 0 {
        kept.push(vec![1u8; 4096]);
    } else {
        deep_frame(depth - 1, kept);
    }
    std::hint::black_box(depth);
}

/// In a child: the frames of the stack that allocated in [`deep_frame`],
/// root first, one `FRAMES` line on stdout.
#[test]
fn child_allocates_deep() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let previous = memprof::set_thread_rate(Some(1));
    let mut kept = Vec::new();
    deep_frame(DEPTH, &mut kept);
    memprof::set_thread_rate(previous);
    let snapshot = memprof::snapshot();
    let stack = snapshot
        .stacks
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.function.contains("deep_frame")))
        .max_by(|a, b| a.estimates.inuse_bytes.total_cmp(&b.estimates.inuse_bytes))
        .expect("the deep allocation was sampled");
    let names: Vec<&str> = stack.frames.iter().rev().map(|f| &*f.function).collect();
    println!("FRAMES {}", names.join(";"));
    let mut folded = Vec::new();
    snapshot
        .write_folded(&mut folded, memprof::Kind::InuseSpace)
        .unwrap();
    let folded = String::from_utf8(folded).unwrap();
    let line = folded
        .lines()
        .find(|l| l.contains("deep_frame"))
        .unwrap_or_default();
    println!("FOLDED_ROOT {}", line.split(';').next().unwrap_or_default());
    drop(kept);
}

/// The sampled deep stack's frames, root first, in a child with
/// `MEMPROF_MAX_FRAMES` set to `max` (or unset), and its stderr.
fn deep_stack(max: Option<&str>) -> (Vec<String>, String) {
    let (frames, _, stderr) = deep_stack_and_folded_root(max);
    (frames, stderr)
}

/// As [`deep_stack`], with the root frame of the deep stack's folded line.
fn deep_stack_and_folded_root(max: Option<&str>) -> (Vec<String>, String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("MEMPROF_MAX_FRAMES");
    if let Some(max) = max {
        command.env("MEMPROF_MAX_FRAMES", max);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("FRAMES ").map(|(_, frames)| frames))
        .unwrap_or_else(|| panic!("MEMPROF_MAX_FRAMES={max:?}: no stack in {stdout}"));
    let frames = line.split(';').map(str::to_owned).collect();
    let folded_root = stdout
        .lines()
        .find_map(|l| {
            l.split_once("FOLDED_ROOT ")
                .map(|(_, root)| root.to_owned())
        })
        .unwrap_or_default();
    (
        frames,
        folded_root,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_deep_stack_is_whole_with_max_frames_256() {
    let (frames, stderr) = deep_stack(Some("256"));
    let deep = frames.iter().filter(|f| f.contains("deep_frame")).count();
    assert!(deep > DEPTH, "{deep} deep frames: {frames:?}");
    assert!(
        !frames.iter().any(|f| f == "[truncated]"),
        "marked truncated: {frames:?}"
    );
    // The test harness's frames lie below the test function.
    assert!(
        frames.iter().any(|f| f.contains("run_test")),
        "does not reach the harness: {frames:?}"
    );
    assert!(!stderr.contains("MEMPROF_MAX_FRAMES"), "{stderr}");
}

#[test]
fn a_deep_stack_cut_by_the_default_limit_ends_in_truncated() {
    let (frames, folded_root, _) = deep_stack_and_folded_root(None);
    assert_eq!(folded_root, "[truncated]", "the folded line's root");
    assert_eq!(
        frames.first().map(String::as_str),
        Some("[truncated]"),
        "root frame of {frames:?}"
    );
    assert!(!frames.iter().any(|f| f.contains("run_test")), "{frames:?}");
}

#[test]
fn a_bad_max_frames_is_said_and_the_default_kept() {
    for bad in ["0", "300", "lots"] {
        let (frames, stderr) = deep_stack(Some(bad));
        assert!(
            stderr.contains(&format!("MEMPROF_MAX_FRAMES=\"{bad}\"")),
            "{bad}: stderr {stderr:?}"
        );
        assert_eq!(frames.first().map(String::as_str), Some("[truncated]"));
    }
}
