//! The export formats against golden files in `tests/data/export/`, from a
//! fixed snapshot (`snapshot.json`). Run with `MEMPROF_BLESS=1` to rewrite
//! the golden files after an intended change, and review the diff.

use std::path::PathBuf;

use memprof::export::flamegraph::{
    write_differential_flamegraph, write_flamegraph, FlamegraphOptions,
};
use memprof::export::pprof::{read_pprof, write_pprof, PprofOptions};
use memprof::export::prometheus::{write_profiler_metrics, MetricsWriter};
use memprof::{Kind, Snapshot};

#[global_allocator]
static ALLOC: memprof::MemProf = memprof::MemProf::jemalloc();

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/export")
        .join(name)
}

fn fixture() -> Snapshot {
    Snapshot::load(std::fs::File::open(data("snapshot.json")).unwrap()).unwrap()
}

/// A later snapshot: the cache grew, the parser's stack is gone.
fn grown() -> Snapshot {
    let mut later = fixture();
    later.taken_at_unix_ms += 60_000;
    later.stacks[0].estimates.inuse_bytes *= 4.0;
    later.stacks.remove(1);
    later
}

fn check(name: &str, actual: &[u8]) {
    let path = data(name);
    if std::env::var_os("MEMPROF_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (MEMPROF_BLESS=1 creates it)", path.display()));
    if expected != actual {
        let actual_path = path.with_extension("actual");
        std::fs::write(&actual_path, actual).unwrap();
        panic!(
            "{} differs from the golden file; got {}",
            path.display(),
            actual_path.display()
        );
    }
}

#[test]
fn folded() {
    let mut out = Vec::new();
    fixture()
        .write_folded(&mut out, Kind::AllocObjects)
        .unwrap();
    check("alloc_objects.folded", &out);
}

#[test]
fn flamegraph_svg() {
    let mut out = Vec::new();
    let options = FlamegraphOptions::for_kind(Kind::InuseSpace);
    write_flamegraph(&fixture(), Kind::InuseSpace, &options, &mut out).unwrap();
    check("inuse_space.svg", &out);
}

#[test]
fn differential_flamegraph_svg() {
    let mut out = Vec::new();
    let mut options = FlamegraphOptions::for_kind(Kind::InuseSpace);
    options.title = "growth over a minute".to_string();
    write_differential_flamegraph(&fixture(), &grown(), Kind::InuseSpace, &options, &mut out)
        .unwrap();
    let svg = String::from_utf8(out.clone()).unwrap();
    assert!(svg.contains("growth over a minute"));
    // The grown frame says by how much and is red (shrinkage would be blue).
    assert!(svg.contains("with_capacity (12,582,912 bytes, 100.00%; +75.00%)"));
    assert!(svg.contains("fill=\"rgb(255,100,100)\""));
    check("inuse_space_diff.svg", &out);
}

#[test]
fn prometheus_text() {
    let mut m = MetricsWriter::new(Vec::new());
    write_profiler_metrics(&mut m, &fixture()).unwrap();
    check("metrics.txt", &m.finish().unwrap());
}

#[test]
fn pprof_structure() {
    let snapshot = fixture();
    let mut gz = Vec::new();
    write_pprof(
        &snapshot,
        &PprofOptions::for_kind(Kind::InuseSpace),
        &mut gz,
    )
    .unwrap();
    let p = read_pprof(&gz[..]).unwrap();
    let s = |i: i64| p.string_table[i as usize].as_str();
    // The third stack rounds to zero everywhere and is left out.
    assert_eq!(p.sample.len(), 2);
    assert_eq!(p.sample[0].value, [4, 4194304, 3, 3145728]);
    assert_eq!(p.sample[1].value, [36, 5242880, 4, 524288]);
    // Addresses 4096 (two inlined frames), 8192, 12288, 16384, 20480.
    assert_eq!(p.location.len(), 5);
    let leaf = &p.location[(p.sample[0].location_id[0] - 1) as usize];
    let lines: Vec<(&str, i64)> = leaf
        .line
        .iter()
        .map(|l| (s(p.function[(l.function_id - 1) as usize].name), l.line))
        .collect();
    assert_eq!(
        lines,
        [
            ("alloc::vec::Vec<u8>::with_capacity", 480),
            ("server::cache::Cache::insert", 42)
        ]
    );
    // `main` is one location shared by both samples.
    assert_eq!(p.sample[0].location_id[2], p.sample[1].location_id[2]);
    // handle_request is one function, at two lines (two locations).
    let handle = p
        .function
        .iter()
        .filter(|f| s(f.name) == "server::handle_request")
        .count();
    assert_eq!(handle, 1);
    assert!(p.function.iter().all(|f| f.system_name == f.name));
    assert_eq!(p.period, 524288);
    assert_eq!(p.time_nanos, 1_700_000_000_000_000_000);
    assert_eq!(s(p.default_sample_type), "inuse_space");
    let m = &p.mapping[0];
    assert!(m.has_functions && m.has_filenames && m.has_line_numbers && m.has_inline_frames);
    assert!(p.location.iter().all(|l| l.mapping_id == m.id));
}
