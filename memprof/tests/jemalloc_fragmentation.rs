//! Real jemalloc: many small blocks, most freed, leave slabs mostly empty.
//! The statistics must show the fragmentation, and a purge must not cure it.
//!
//! One `#[test]` function, so nothing else allocates in this binary meanwhile.

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const BLOCKS: usize = 300_000;
const BLOCK_BYTES: usize = 100;

#[test]
fn freeing_five_of_six_small_blocks_fragments_and_purge_does_not_cure_it() {
    assert_eq!(memprof::jemalloc::serves_global_allocator(), Ok(true));

    let mut blocks: Vec<Option<Box<[u8]>>> = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        blocks.push(Some(vec![i as u8; BLOCK_BYTES].into_boxed_slice()));
    }
    for (i, block) in blocks.iter_mut().enumerate() {
        if i % 6 != 0 {
            *block = None;
        }
    }

    let stats = memprof::jemalloc::stats().expect("jemalloc serves this binary");
    let frag = stats
        .ratios
        .allocator_fragmentation_ratio
        .expect("allocated > 0");
    let bin = stats
        .bins
        .iter()
        .find(|b| b.size_bytes == 112)
        .expect("a 112-byte size class");
    let utilisation = bin.utilisation.expect("the 112-byte bin holds slabs");
    eprintln!(
        "before purge: allocated {} active {} resident {} frag {frag:.2} \
         small-bin waste {} ; bin 112: nregs {} curslabs {} curregs {} util {utilisation:.3} waste {}",
        stats.totals.allocated_bytes,
        stats.totals.active_bytes,
        stats.totals.resident_bytes,
        stats.ratios.small_bin_waste_bytes,
        bin.nregs,
        bin.curslabs,
        bin.curregs,
        bin.wasted_bytes,
    );
    assert!(frag > 2.0, "fragmentation ratio {frag} should exceed 2");
    assert!(utilisation < 0.3, "112-byte bin utilisation {utilisation}");
    assert!(stats.ratios.small_bin_waste_bytes >= bin.wasted_bytes);
    assert!(
        stats.ratios.rss_overhead_ratio.is_some(),
        "VmRSS read on Linux"
    );
    assert!(stats.epoch > 0);
    // The reading reaches JSON whole: the figures above, every bin.
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["epoch"], stats.epoch, "{json}");
    assert_eq!(
        json["totals"]["allocated_bytes"], stats.totals.allocated_bytes,
        "{json}"
    );
    // JSON keeps 17 significant digits; parsing back may differ in the last.
    let frag_json = json["ratios"]["allocator_fragmentation_ratio"]
        .as_f64()
        .unwrap_or_else(|| panic!("the ratio is a number: {json}"));
    assert!(
        (frag_json - frag).abs() <= frag * 1e-12,
        "{frag_json} vs {frag}"
    );
    assert_eq!(
        json["bins"].as_array().map(Vec::len),
        Some(stats.bins.len()),
        "{json}"
    );

    let report = memprof::jemalloc::purge().expect("purge");
    eprintln!("purge: {report:?}");
    assert!(report.resident_before_bytes > 0 && report.resident_after_bytes > 0);
    assert!(report.epoch_after > report.epoch_before);

    let after = memprof::jemalloc::stats().expect("jemalloc serves this binary");
    let frag_after = after
        .ratios
        .allocator_fragmentation_ratio
        .expect("allocated > 0");
    eprintln!(
        "after purge: allocated {} active {} resident {} frag {frag_after:.2}",
        after.totals.allocated_bytes, after.totals.active_bytes, after.totals.resident_bytes,
    );
    assert!(frag_after > 2.0, "purge cured fragmentation: {frag_after}");

    // Survivors stay alive until here.
    let live = blocks.iter().flatten().count();
    assert_eq!(live, BLOCKS.div_ceil(6));
    drop(blocks);
}
