//! Real jemalloc: freed large blocks leave dirty pages; a purge returns them.

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const MIB: usize = 1 << 20;

#[test]
fn purge_after_freeing_64_mib_leaves_no_dirty_pages() {
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(64);
    for i in 0..64 {
        // Written, so the pages are resident.
        blocks.push(vec![i as u8 | 1; MIB]);
    }
    let held = memprof::jemalloc::stats().expect("jemalloc serves this binary");
    assert!(held
        .large
        .iter()
        .any(|l| l.size_bytes >= MIB as u64 && l.curlextents >= 64));
    drop(blocks);

    let report = memprof::jemalloc::purge().expect("purge");
    eprintln!("purge: {report:?}");
    assert!(
        report.dirty_before_bytes >= 32 * MIB as u64,
        "freed blocks should be dirty before the purge: {report:?}"
    );
    assert_eq!(report.dirty_after_pages, 0, "{report:?}");
    assert_eq!(report.dirty_after_bytes, 0);
    assert!(
        report.resident_after_bytes <= report.resident_before_bytes,
        "{report:?}"
    );
    assert!(report.released_bytes >= 32 * MIB as i64, "{report:?}");
}
