//! Exact mode (rate 1 on the test's thread): estimates equal the known counts.

#![allow(clippy::vec_box)] // separate heap blocks are the point of these tests

use memprof::{Kind, MemProf, Snapshot};

#[global_allocator]
static ALLOC: MemProf = MemProf::jemalloc();

#[inline(never)]
fn exact_site_boxes(n: usize) -> Vec<Box<[u8; 48]>> {
    (0..n).map(|i| Box::new([i as u8; 48])).collect()
}

// Not a tail call: with `collect()` last, release builds jump straight into
// std's from_iter, and the vector's stack has no frame of this function
// (it then reads as allocated by the caller, once std's frames are trimmed).
#[inline(never)]
fn exact_site_boxes_main(n: usize) -> Vec<Box<[u8; 40]>> {
    let boxes = (0..n).map(|i| Box::new([i as u8; 40])).collect();
    std::hint::black_box(boxes)
}

#[inline(never)]
fn exact_site_growing_vec() -> Vec<u64> {
    let mut v = Vec::with_capacity(4);
    for i in 0..1000 {
        v.push(i);
    }
    v
}

fn stacks_mentioning<'a>(
    snapshot: &'a Snapshot,
    name: &str,
) -> Vec<&'a memprof::profile::StackProfile> {
    snapshot
        .stacks
        .iter()
        .filter(|s| s.mentions(name))
        .collect()
}

/// In-use estimates of every stack that mentions `name`, summed.
fn inuse(snapshot: &Snapshot, name: &str, kind: Kind) -> f64 {
    stacks_mentioning(snapshot, name)
        .iter()
        .map(|s| s.value(kind))
        .sum()
}

#[test]
fn exact_mode_counts_frees_and_reallocs() {
    memprof::set_thread_rate(Some(1));

    let boxes = exact_site_boxes_main(1000);
    let snap = memprof::snapshot();
    assert!(memprof::is_active(), "MemProf must be recording");
    // 1000 boxes of 40 bytes, plus the Vec holding them (1000 pointers).
    let objects = inuse(&snap, "exact_site_boxes_main", Kind::InuseObjects);
    let bytes = inuse(&snap, "exact_site_boxes_main", Kind::InuseSpace);
    assert_eq!(objects, 1001.0, "boxes and their vector");
    assert_eq!(bytes, 1000.0 * 40.0 + 1000.0 * 8.0);

    // The leaf frame is the test's own function, symbolized: allocator
    // frames were trimmed.
    let leafs: Vec<&str> = stacks_mentioning(&snap, "exact_site_boxes_main")
        .iter()
        .map(|s| s.frames[0].function.as_str())
        .collect();
    assert!(!leafs.is_empty());
    // No frame of memprof or the unwinder is left in the stack.
    for stack in stacks_mentioning(&snap, "exact_site_boxes_main") {
        for frame in &stack.frames {
            let f = frame.function.as_str();
            assert!(
                ![
                    "sampled_alloc",
                    "sample_block",
                    "capture",
                    "unwind",
                    "trace",
                    "__rust_alloc"
                ]
                .iter()
                .any(|own| f == *own || f.ends_with(&format!("::{own}")))
                    && !f.starts_with("memprof::")
                    && !f.starts_with("backtrace::"),
                "profiler frame {f} left in {}",
                stack.folded_key()
            );
        }
    }

    // Freeing forgets the samples.
    drop(boxes);
    let snap = memprof::snapshot();
    assert_eq!(
        inuse(&snap, "exact_site_boxes_main", Kind::InuseObjects),
        0.0
    );
    assert_eq!(
        inuse(&snap, "exact_site_boxes_main", Kind::AllocObjects),
        1001.0,
        "allocated stays"
    );

    // Growth by realloc: only the final buffer is live, at its final size.
    let v = exact_site_growing_vec();
    let snap = memprof::snapshot();
    assert_eq!(
        inuse(&snap, "exact_site_growing_vec", Kind::InuseObjects),
        1.0
    );
    assert_eq!(
        inuse(&snap, "exact_site_growing_vec", Kind::InuseSpace),
        (v.capacity() * 8) as f64
    );
    // 4 -> 8 -> ... -> 1024 elements: the initial allocation and 8 reallocs.
    assert_eq!(
        inuse(&snap, "exact_site_growing_vec", Kind::AllocObjects),
        9.0
    );
    drop(v);
    let snap = memprof::snapshot();
    assert_eq!(
        inuse(&snap, "exact_site_growing_vec", Kind::InuseSpace),
        0.0
    );

    memprof::set_thread_rate(None);
}

#[test]
fn snapshot_folded_output_is_root_first() {
    memprof::set_thread_rate(Some(1));
    let kept = exact_site_boxes(10);
    let snap = memprof::snapshot();
    memprof::set_thread_rate(None);
    let mut folded = Vec::new();
    snap.write_folded(&mut folded, Kind::InuseSpace).unwrap();
    let folded = String::from_utf8(folded).unwrap();
    let line = folded
        .lines()
        .find(|l| {
            l.contains("exact_site_boxes") && l.contains("snapshot_folded_output_is_root_first")
        })
        .expect("a folded line for the site");
    let (stack, value) = line.rsplit_once(' ').unwrap();
    assert!(value.parse::<u64>().unwrap() > 0);
    let frames: Vec<&str> = stack.split(';').collect();
    let site = frames
        .iter()
        .position(|f| f.contains("exact_site_boxes"))
        .unwrap();
    let test_fn = frames
        .iter()
        .position(|f| f.contains("snapshot_folded_output_is_root_first"))
        .unwrap();
    assert!(test_fn < site, "callers come before callees: {stack}");
    let top = snap.top(3, Kind::InuseSpace);
    assert!(top.len() <= 3);
    assert!(top
        .windows(2)
        .all(|w| w[0].value(Kind::InuseSpace) >= w[1].value(Kind::InuseSpace)));
    drop(kept);
}
