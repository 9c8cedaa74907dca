//! The doctor on live readings of a fragmented jemalloc heap: 300k blocks
//! of 100 bytes, five of every six freed. The allocator-fragmentation
//! finding must name the 112-byte size class, and survive a purge.
//!
//! One `#[test]` function, so nothing else allocates in this binary meanwhile.
#![cfg(feature = "jemalloc")]

use std::time::Duration;

use memprof::doctor::{self, Finding, LiveOptions, Severity};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

const BLOCKS: usize = 300_000;
const BLOCK_BYTES: usize = 100;

fn fragmentation(findings: &[Finding]) -> Option<&Finding> {
    findings
        .iter()
        .find(|f| f.rule == "allocator-fragmentation")
}

fn examine_live() -> Vec<Finding> {
    let input =
        doctor::read_live_with(&LiveOptions::default().interval(Duration::from_millis(100)));
    doctor::examine(&input)
}

#[test]
fn doctor_finds_fragmentation_names_the_112_byte_bin_and_purge_does_not_cure_it() {
    let mut blocks: Vec<Option<Box<[u8]>>> = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        blocks.push(Some(vec![i as u8; BLOCK_BYTES].into_boxed_slice()));
    }
    for (i, block) in blocks.iter_mut().enumerate() {
        if i % 6 != 0 {
            *block = None;
        }
    }

    let findings = examine_live();
    eprintln!("{}", doctor::render_text(&findings));
    let found = fragmentation(&findings).expect("an allocator-fragmentation finding");
    assert_eq!(found.severity, Severity::Warning);
    assert!(
        found.meaning.contains("112-byte class"),
        "{}",
        found.meaning
    );
    let utilisation = found
        .evidence("bin_112_utilisation")
        .and_then(|e| e.as_number())
        .expect("utilisation of the 112-byte bin");
    assert!(utilisation < 30.0, "112-byte bin {utilisation} % used");
    let ratio = found
        .evidence("allocator_frag_ratio")
        .and_then(|e| e.as_number())
        .expect("the ratio");
    assert!(ratio > 1.1, "{ratio}");
    // The 112-byte class is the worst: its evidence comes first.
    let first_bin = found
        .evidence
        .iter()
        .find(|e| e.name.starts_with("bin_"))
        .map(|e| e.name.clone());
    assert_eq!(first_bin.as_deref(), Some("bin_112_wasted"));
    // The finding reaches JSON with its rule, severity and evidence intact.
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&findings).unwrap()).unwrap();
    let listed = json
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "allocator-fragmentation")
        .unwrap_or_else(|| panic!("the finding is in the JSON: {json}"));
    assert_eq!(listed["severity"], "warning", "{listed}");
    let evidence = listed["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "allocator_frag_ratio")
        .unwrap_or_else(|| panic!("the ratio is in the JSON: {listed}"));
    // JSON keeps 17 significant digits; parsing back may differ in the last.
    let value = evidence["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("the ratio is a number: {evidence}"));
    assert!((value - ratio).abs() <= ratio * 1e-12, "{value} vs {ratio}");
    assert_eq!(evidence["unit"], "ratio", "{evidence}");

    let report = memprof::jemalloc::purge().expect("purge");
    eprintln!("purge released {} bytes", report.released_bytes);

    let after = examine_live();
    let still = fragmentation(&after).expect("fragmentation survives a purge");
    assert!(
        still.meaning.contains("112-byte class"),
        "{}",
        still.meaning
    );
    assert!(
        after.iter().all(|f| f.rule != "allocator-dirty-pages"
            || f.evidence("dirty")
                .and_then(|e| e.as_number())
                .unwrap_or(0.0)
                < (10 << 20) as f64),
        "a purge leaves no large dirty-page finding"
    );

    // Survivors stay alive until here.
    assert_eq!(blocks.iter().flatten().count(), BLOCKS.div_ceil(6));
    drop(blocks);
}
