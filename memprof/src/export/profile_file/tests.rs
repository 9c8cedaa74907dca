//! Profiles from memprof and from elsewhere, and hostile bytes.

use std::io::Write;
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use super::*;
use crate::export::pprof::{proto, write_pprof, PprofOptions};
use crate::profile::{Kind, StackProfile};
use crate::stack::Frame;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A profile as Go writes one: its own string table order, four sample
/// types, two samples through `main.leak` sharing a location.
fn go_heap_profile() -> proto::Profile {
    let strings = [
        "",
        "alloc_objects",
        "count",
        "alloc_space",
        "bytes",
        "inuse_objects",
        "inuse_space",
        "main.leak",
        "/src/main.go",
        "main.main",
        "space",
    ];
    let vt = |t, u| proto::ValueType { r#type: t, unit: u };
    let function = |id, name| proto::Function {
        id,
        name,
        system_name: name,
        filename: 8,
        start_line: 0,
    };
    let location = |id, function_id| proto::Location {
        id,
        mapping_id: 1,
        address: 0x1000 * id,
        line: vec![proto::Line {
            function_id,
            line: 10,
            column: 0,
        }],
        is_folded: false,
    };
    proto::Profile {
        sample_type: vec![vt(1, 2), vt(3, 4), vt(5, 2), vt(6, 4)],
        sample: vec![
            proto::Sample {
                location_id: vec![1, 2],
                value: vec![4, 4096, 2, 2048],
                label: vec![],
            },
            proto::Sample {
                location_id: vec![1, 2],
                value: vec![1, 1024, 1, 1024],
                label: vec![],
            },
            proto::Sample {
                location_id: vec![2],
                value: vec![1, 10, 0, 0],
                label: vec![],
            },
        ],
        location: vec![location(1, 1), location(2, 2)],
        function: vec![function(1, 7), function(2, 9)],
        string_table: strings.iter().map(|s| s.to_string()).collect(),
        period_type: Some(vt(10, 4)),
        period: 524_288,
        time_nanos: 1_700_000_000_123_000_000,
        ..proto::Profile::default()
    }
}

#[test]
fn a_foreign_heap_profile_reads_by_its_sample_types_names() {
    let bytes = go_heap_profile().encode_to_vec();
    for input in [bytes.clone(), gzip(&bytes)] {
        let (snapshot, types) = read_pprof_profile(&input[..], &ReadLimits::default()).unwrap();
        assert_eq!(
            types,
            [
                "alloc_objects/count",
                "alloc_space/bytes",
                "inuse_objects/count",
                "inuse_space/bytes"
            ]
        );
        assert_eq!(snapshot.stacks.len(), 2, "same stacks merge");
        let top = &snapshot.stacks[0];
        assert_eq!(top.folded_key(), "main.main;main.leak");
        assert_eq!(top.estimates.inuse_bytes, 3072.0);
        assert_eq!(top.estimates.alloc_objects, 5.0);
        assert_eq!(top.frames[0].file.as_deref(), Some("/src/main.go"));
        assert_eq!(snapshot.totals.alloc_bytes, 5130.0);
        assert_eq!(snapshot.rate, 524_288);
        assert_eq!(snapshot.taken_at_unix_ms, 1_700_000_000_123);
    }
}

#[test]
fn memprofs_own_profile_reads_back() {
    let leaf = Arc::new(Frame {
        function: "my::leak".into(),
        file: None,
        line: Some(3),
        address: 0x10,
    });
    let snapshot = Snapshot::of_stacks(
        5_000,
        vec![
            StackProfile::allocated(vec![leaf, Frame::named("main")], 7.0),
            StackProfile::allocated(vec![Frame::named("main")], 2.0),
        ],
    );
    let mut gz = Vec::new();
    write_pprof(&snapshot, &PprofOptions::default(), &mut gz).unwrap();
    let (read, _) = read_pprof_profile(&gz[..], &ReadLimits::default()).unwrap();
    let keys: Vec<(String, f64)> = read
        .stacks
        .iter()
        .map(|s| (s.folded_key(), s.estimates.alloc_objects))
        .collect();
    assert!(
        keys.contains(&("main;my::leak".to_string(), 7.0)),
        "{keys:?}"
    );
    assert!(keys.contains(&("main".to_string(), 2.0)), "{keys:?}");
}

#[test]
fn unsymbolized_locations_are_named_by_binary_and_offset() {
    let mut p = go_heap_profile();
    p.string_table.push("/usr/lib/libfoo.so".into());
    p.mapping = vec![proto::Mapping {
        id: 1,
        memory_start: 0x1000,
        memory_limit: 0x9000,
        file_offset: 0x100,
        filename: 11,
        ..proto::Mapping::default()
    }];
    p.location[0].line.clear();
    p.location[0].address = 0x1234;
    let (snapshot, _) = read_pprof_profile(&p.encode_to_vec()[..], &ReadLimits::default()).unwrap();
    assert_eq!(snapshot.stacks[0].frames[0].function, "libfoo.so+0x334");
}

fn error_of(bytes: &[u8], limits: &ReadLimits) -> String {
    match read_pprof_profile(bytes, limits) {
        Ok(_) => panic!("read {} bytes of nonsense", bytes.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_cpu_profile_is_not_a_heap_profile() {
    let mut p = go_heap_profile();
    p.string_table[1] = "samples".into();
    p.string_table[3] = "cpu".into();
    p.string_table[4] = "nanoseconds".into();
    p.sample_type.truncate(2);
    let e = error_of(&p.encode_to_vec(), &ReadLimits::default());
    assert!(
        e.contains("not a heap profile: its sample types are samples/count, cpu/nanoseconds"),
        "{e}"
    );
}

#[test]
fn references_to_nothing_name_the_field() {
    let mut p = go_heap_profile();
    p.function[1].name = 1 << 40;
    let e = error_of(&p.encode_to_vec(), &ReadLimits::default());
    assert!(
        e.contains("function 2's name is string 1099511627776, but the string table has 11"),
        "{e}"
    );
    let mut p = go_heap_profile();
    p.sample[0].location_id.push(99);
    let e = error_of(&p.encode_to_vec(), &ReadLimits::default());
    assert!(e.contains("sample 0 names location 99"), "{e}");
    let mut p = go_heap_profile();
    p.location[0].line[0].function_id = 7;
    let e = error_of(&p.encode_to_vec(), &ReadLimits::default());
    assert!(e.contains("location 1 names function 7"), "{e}");
    let mut p = go_heap_profile();
    p.sample_type[0].unit = -1;
    let e = error_of(&p.encode_to_vec(), &ReadLimits::default());
    assert!(e.contains("sample type 0's unit is string -1"), "{e}");
}

#[test]
fn truncated_and_garbage_input_is_an_error() {
    let bytes = go_heap_profile().encode_to_vec();
    let gz = gzip(&bytes);
    let limits = ReadLimits::default();
    for cut in [2, 5, gz.len() / 2, gz.len() - 3] {
        let e = error_of(&gz[..cut], &limits);
        assert!(
            e.contains("gzip") || e.contains("cannot read"),
            "{cut}: {e}"
        );
    }
    for cut in [1, 7, bytes.len() - 1] {
        let e = error_of(&bytes[..cut], &limits);
        assert!(e.contains("not a pprof profile: at byte"), "{cut}: {e}");
    }
    // A small deterministic generator: garbage must never panic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..300 {
        let len = 1 + round % 200;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = read_pprof_profile(&garbage[..], &limits);
        let _ = read_pprof_profile(&gzip(&garbage)[..], &limits);
    }
    assert_eq!(
        error_of(&[], &limits),
        "not a pprof profile: the profile is empty"
    );
}

#[test]
fn caps_stop_a_bomb_and_huge_tables() {
    // Strings of 64 KiB, 4 MiB of them, gzipped to a few KiB.
    let mut strings = Vec::new();
    for _ in 0..64 {
        strings.extend_from_slice(&[0x32, 0x80, 0x80, 0x04]);
        strings.resize(strings.len() + 65_536, b'a');
    }
    let bomb = gzip(&strings);
    assert!(bomb.len() < 64 << 10);
    let limits = ReadLimits {
        max_input_bytes: 1 << 20,
        max_table_bytes: 64 << 20,
    };
    let e = error_of(&bomb, &limits);
    assert_eq!(
        e,
        "decompresses to more than 1.00 MiB (it was read that far), the cap on a profile's size"
    );
    // One field claiming more than the cap.
    let e = error_of(&[0x32, 0x80, 0x80, 0x80, 0x01], &limits);
    assert!(
        e.contains("(field 6 at byte 0 claims 2097152 bytes)"),
        "{e}"
    );
    // Many empty samples: 2 bytes each in the file, far more decoded.
    let mut p = go_heap_profile();
    p.sample = vec![proto::Sample::default(); 100_000];
    let e = error_of(
        &p.encode_to_vec(),
        &ReadLimits {
            max_input_bytes: 1 << 20,
            max_table_bytes: 1 << 20,
        },
    );
    assert!(e.contains("need more than 1.00 MiB of memory"), "{e}");
}

#[test]
fn small_tables_asking_for_a_huge_snapshot_are_refused() {
    // A location of 1,000 lines, and 2,048 distinct samples of 100 ids
    // naming it or a one-line one: some 100 million frames from 2 MiB.
    let mut p = go_heap_profile();
    p.location[0].line = vec![p.location[0].line[0]; 1000];
    p.sample = (0..2048u64)
        .map(|i| proto::Sample {
            location_id: (0..100).map(|j| 1 + ((i >> (j % 11)) & 1)).collect(),
            value: vec![1, 1, 1, 1],
            label: vec![],
        })
        .collect();
    let limits = ReadLimits::with_max_bytes(8 << 20);
    let e = error_of(&p.encode_to_vec(), &limits);
    assert!(e.contains("need more than 8.00 MiB of memory"), "{e}");
    // A long name on every line of many locations.
    let mut p = go_heap_profile();
    p.string_table[7] = "x".repeat(64 << 10);
    p.location = (1..=2000)
        .map(|id| proto::Location {
            id,
            line: vec![p.location[0].line[0]],
            ..proto::Location::default()
        })
        .collect();
    let e = error_of(&p.encode_to_vec(), &limits);
    assert!(e.contains("need more than 8.00 MiB of memory"), "{e}");
}

#[test]
fn folded_text_reads_as_inuse_bytes() {
    let text = "main;parse 100\nmain;parse 20\n\nmain 5\n";
    let snapshot = read_folded(text.as_bytes(), &ReadLimits::default()).unwrap();
    assert_eq!(snapshot.stacks[0].folded_key(), "main;parse");
    assert_eq!(snapshot.stacks[0].value(Kind::InuseSpace), 120.0);
    assert_eq!(snapshot.stacks[0].frames[0].function, "parse");
    assert_eq!(snapshot.totals.inuse_bytes, 125.0);
    for (bad, what) in [
        ("main;a 1\nmain;b\n", "line 2: no count"),
        ("main;a x\n", "\"x\" is not a count"),
        ("main;a 1 2\n", "two counts"),
        (" 3\n", "a count without a stack"),
    ] {
        let e = read_folded(bad.as_bytes(), &ReadLimits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(what), "{bad:?}: {e}");
    }
}
