//! Exact mode on a program with hundreds of thousands of distinct call
//! stacks, at the default stack cap: every stack is kept (none lands under
//! `[stack table full]`), and the in-use bytes of each are exact.
//!
//! `MEMPROF_RATE=1` is read before `main`, so the program runs as a child:
//! this test binary again, running only the child test with `CHILD` set.

use std::process::Command;

use memprof::MemProf;
use memprof_dev::distinct_stacks;

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

const CHILD: &str = "MEMPROF_STACK_TABLE_SCALE_TEST_CHILD";
const TEST: &str = "child_allocates_from_distinct_stacks";
/// Levels of the call tree: up to 2^19 distinct stacks, eight times the
/// cap memprof used to have.
const DEPTH: u32 = 19;
/// Stacks allocated from: a snapshot takes some 3 KB of memory for each
/// (the table about 700 bytes), which bounds this test.
const STACKS: u32 = 300_000;
/// Each block's size, an odd one to tell its bytes apart.
const BLOCK: usize = 24;

/// In a child: allocates one block from each of `STACKS` distinct stacks
/// and keeps them, then prints what a snapshot shows of them.
#[test]
fn child_allocates_from_distinct_stacks() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // A thread of its own: its stacks are shallower than the test
    // harness's, well inside the default depth limit.
    let kept = std::thread::spawn(|| {
        let mut kept: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(STACKS as usize);
        for path in 0..STACKS {
            distinct_stacks::call_from(path, DEPTH, &mut || {
                kept.push(Box::new([path as u8; BLOCK]))
            });
        }
        kept
    })
    .join()
    .unwrap();
    let snapshot = memprof::snapshot();
    let ours: Vec<_> = snapshot
        .stacks
        .iter()
        .filter(|s| s.mentions("memprof_dev::distinct_stacks::"))
        .collect();
    let full = snapshot
        .stacks
        .iter()
        .filter(|s| s.mentions("[stack table full]"));
    let c = &snapshot.counters;
    println!(
        "RESULT stacks={} inuse_bytes={} inuse_objects={} full_stacks={} \
         stacks_dropped={} samples_dropped={} table_stacks={} rate={}",
        ours.len(),
        ours.iter().map(|s| s.estimates.inuse_bytes).sum::<f64>(),
        ours.iter().map(|s| s.estimates.inuse_objects).sum::<f64>(),
        full.count(),
        c.stacks_dropped,
        c.samples_dropped,
        c.stacks,
        snapshot.rate,
    );
    drop(kept);
}

#[test]
fn exact_mode_keeps_every_one_of_300k_stacks_by_default() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("MEMPROF_RATE", "1")
        .env_remove("MEMPROF_MAX_STACKS")
        .env_remove("MEMPROF_MAX_SAMPLES")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "no result from the child ({}): {stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let get = |name: &str| -> f64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .unwrap()
    };
    assert_eq!(get("rate"), 1.0, "{line}");
    assert_eq!(get("full_stacks"), 0.0, "{line}");
    assert_eq!(get("stacks_dropped"), 0.0, "{line}");
    assert_eq!(get("samples_dropped"), 0.0, "{line}");
    assert_eq!(get("stacks"), f64::from(STACKS), "{line}");
    assert_eq!(get("inuse_objects"), f64::from(STACKS), "{line}");
    assert_eq!(
        get("inuse_bytes"),
        f64::from(STACKS) * BLOCK as f64,
        "{line}"
    );
    assert!(get("table_stacks") > f64::from(STACKS), "{line}");
}
