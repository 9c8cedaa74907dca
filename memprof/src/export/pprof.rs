//! pprof: gzipped `profile.proto`, the format `go tool pprof`, Pyroscope and
//! Parca read.
//!
//! The messages in [`proto`] mirror
//! <https://github.com/google/pprof/blob/main/proto/profile.proto>, written
//! out with `prost`'s derive so no build script or `protoc` is needed.
//!
//! A profile carries the four sample types Go's heap profile has, in Go's
//! order (`alloc_objects/count`, `alloc_space/bytes`, `inuse_objects/count`,
//! `inuse_space/bytes`), `space/bytes` as the period type and the sampling
//! rate as the period. Values are the unbiased estimates, rounded. Each
//! distinct return address is one `Location` whose `Line`s are its inlined
//! frames, innermost first; functions carry names and files, and the one
//! mapping says so (`has_functions` and friends), so pprof never looks for
//! the binary to symbolize.
//!
//! A stack allocated inside a scope carries the scope as pprof string
//! labels, so `go tool pprof -tagfocus`, Pyroscope and Parca can select
//! by them: `scope: <path>` (`request/parser`), and `key: value` for each
//! name in the path that is a label (`route=GET /x` gives `route: GET /x`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use crate::hash::AddressHash;
use crate::profile::{Kind, ScopePath, Snapshot, StackProfile};
use crate::stack::Frame;

/// The content type to serve a gzipped profile with.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// How a profile is built.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PprofOptions {
    /// The sample type pprof shows unless told otherwise.
    pub default_kind: Kind,
    /// For a delta profile, the interval it covers.
    pub duration: Option<Duration>,
    /// Notes for the profile's comments (`go tool pprof -comments`), after
    /// memprof's own.
    pub comments: Vec<String>,
}

impl PprofOptions {
    /// Options showing `kind` by default.
    pub fn for_kind(kind: Kind) -> PprofOptions {
        PprofOptions {
            default_kind: kind,
            duration: None,
            comments: Vec::new(),
        }
    }

    /// Sets the interval a delta profile covers.
    pub fn with_duration(mut self, duration: Duration) -> PprofOptions {
        self.duration = Some(duration);
        self
    }
}

/// Writes the snapshot as a gzipped pprof profile.
///
/// The samples are encoded and compressed a batch at a time as they are
/// built, ahead of the tables they point into (locations, functions,
/// strings), which follow once every sample is written: protobuf reads
/// messages written one after another as one message whose repeated fields
/// hold all their items, and pprof resolves ids once the whole profile is
/// read. So only the tables, which grow with the distinct addresses and
/// not with the stacks, are held whole.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_pprof<W: Write>(
    snapshot: &Snapshot,
    options: &PprofOptions,
    out: W,
) -> io::Result<()> {
    /// Samples encoded at a time.
    const BATCH: usize = 1024;
    let mut gz = GzEncoder::new(out, Compression::default());
    let (mut b, header) = Builder::new(options);
    let mut batch = Vec::with_capacity(BATCH);
    for stack in &snapshot.stacks {
        batch.extend(b.sample(stack));
        if batch.len() == BATCH {
            write_part(&mut gz, &mut batch)?;
        }
    }
    write_part(&mut gz, &mut batch)?;
    gz.write_all(
        &b.finish(header, snapshot, options, Vec::new())
            .encode_to_vec(),
    )?;
    gz.finish()?.flush()
}

/// Writes `samples` as a profile holding them alone, and empties them.
fn write_part<W: Write>(out: &mut W, samples: &mut Vec<proto::Sample>) -> io::Result<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let part = proto::Profile {
        sample: std::mem::take(samples),
        ..proto::Profile::default()
    };
    out.write_all(&part.encode_to_vec())?;
    *samples = part.sample;
    samples.clear();
    Ok(())
}

/// Reads a pprof profile, gzipped or not.
///
/// # Errors
///
/// Returns the error `input` returns when a read fails, and an `InvalidData`
/// error when the bytes are not a (gzipped) pprof profile.
pub fn read_pprof<R: Read>(mut input: R) -> io::Result<proto::Profile> {
    let mut raw = Vec::new();
    input.read_to_end(&mut raw)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut plain)?;
        raw = plain;
    }
    proto::Profile::decode(&raw[..]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Builds the profile message for a snapshot.
pub fn profile(snapshot: &Snapshot, options: &PprofOptions) -> proto::Profile {
    let (mut b, header) = Builder::new(options);
    let samples = snapshot.stacks.iter().filter_map(|s| b.sample(s)).collect();
    b.finish(header, snapshot, options, samples)
}

/// What a profile says before its samples: its sample types, the one
/// mapping, and which type pprof shows by default (string table indices).
struct Header {
    space: i64,
    bytes: i64,
    sample_type: Vec<proto::ValueType>,
    default_sample_type: i64,
    mapping: proto::Mapping,
}

impl Builder {
    /// A builder whose string table starts with the empty string (index 0
    /// must be) and the names in the profile's header, and that header.
    fn new(options: &PprofOptions) -> (Builder, Header) {
        let mut b = Builder::default();
        b.string("");
        let space = b.string("space");
        let bytes = b.string("bytes");
        let sample_type = Kind::ALL
            .iter()
            .map(|k| proto::ValueType {
                r#type: b.string(k.name()),
                unit: b.string(k.unit()),
            })
            .collect();
        let default_sample_type = b.string(options.default_kind.name());
        let executable = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mapping = proto::Mapping {
            id: 1,
            memory_start: 0,
            memory_limit: u64::MAX,
            file_offset: 0,
            filename: b.string(&executable),
            build_id: 0,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        };
        let header = Header {
            space,
            bytes,
            sample_type,
            default_sample_type,
            mapping,
        };
        (b, header)
    }

    /// The sample of one stack, its locations interned; `None` when every
    /// value rounds to 0.
    fn sample(&mut self, stack: &StackProfile) -> Option<proto::Sample> {
        let value: Vec<i64> = Kind::ALL.iter().map(|&k| round(stack.value(k))).collect();
        if value.iter().all(|&v| v == 0) {
            return None;
        }
        let mut location_id = Vec::new();
        let mut i = 0;
        while i < stack.frames.len() {
            // Frames sharing a (real) address are one location's inlined
            // lines, innermost first.
            let address = stack.frames[i].address;
            let mut end = i + 1;
            if address != 0 {
                while end < stack.frames.len() && stack.frames[end].address == address {
                    end += 1;
                }
            }
            location_id.push(self.location(&stack.frames[i..end]));
            i = end;
        }
        let label = stack
            .scope
            .as_ref()
            .map_or_else(Vec::new, |scope| self.labels(scope));
        Some(proto::Sample {
            location_id,
            value,
            label,
        })
    }

    /// The labels of a stack in `scope`: `scope: <path>`, then `key: value`
    /// for each of its names that is a label (`key=value`), outermost first.
    fn labels(&mut self, scope: &ScopePath) -> Vec<proto::Label> {
        let label = |b: &mut Builder, key: &str, value: &str| proto::Label {
            key: b.string(key),
            str: b.string(value),
            num: 0,
            num_unit: 0,
        };
        let mut labels = vec![label(self, "scope", &scope.path())];
        for (key, value) in scope.labels() {
            labels.push(label(self, key, value));
        }
        labels
    }

    /// The profile: `samples` and everything they point into.
    fn finish(
        mut self,
        header: Header,
        snapshot: &Snapshot,
        options: &PprofOptions,
        samples: Vec<proto::Sample>,
    ) -> proto::Profile {
        let mut comment = vec![self.string("memprof: sampled estimates, rounded to integers")];
        for note in &options.comments {
            comment.push(self.string(note));
        }
        proto::Profile {
            sample_type: header.sample_type,
            sample: samples,
            mapping: vec![header.mapping],
            location: self.locations,
            function: self.functions,
            string_table: self.strings,
            drop_frames: 0,
            keep_frames: 0,
            time_nanos: i64::try_from(snapshot.taken_at_unix_ms.saturating_mul(1_000_000))
                .unwrap_or(i64::MAX),
            duration_nanos: options
                .duration
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            period_type: Some(proto::ValueType {
                r#type: header.space,
                unit: header.bytes,
            }),
            period: i64::try_from(snapshot.rate).unwrap_or(i64::MAX),
            comment,
            default_sample_type: header.default_sample_type,
            doc_url: 0,
        }
    }
}

fn round(value: f64) -> i64 {
    // `as` saturates, and maps NaN to 0.
    value.round() as i64
}

/// Interns strings, functions and locations into the profile's tables.
///
/// Keys are symbol names and ids from this process, never outside input,
/// so the maps use memprof's fast hasher. Frames come from the symbol
/// cache, shared by `Arc`: every stack through an address holds the same
/// frames, so a location is first looked up by those frames' identity and
/// only built (names hashed, functions interned) the first time. With
/// 10,000 stacks that skipped hashing some 400,000 names per request.
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64, AddressHash>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(i64, i64), u64, AddressHash>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<(u64, Vec<u64>), u64, AddressHash>,
    /// Location ids by `(address, first frame's Arc pointer, frame count)`.
    /// The snapshot holds every frame while the profile is built, so a
    /// pointer cannot be reused for another frame meanwhile.
    known_locations: HashMap<(u64, usize, usize), u64, AddressHash>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn function(&mut self, frame: &Frame) -> u64 {
        let name = self.string(&frame.function);
        let filename = self.string(frame.file.as_deref().unwrap_or(""));
        if let Some(&id) = self.function_ids.get(&(name, filename)) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(proto::Function {
            id,
            name,
            system_name: name,
            filename,
            start_line: 0,
        });
        self.function_ids.insert((name, filename), id);
        id
    }

    /// The location for one address's frames (innermost first).
    fn location(&mut self, frames: &[std::sync::Arc<Frame>]) -> u64 {
        let identity = frames.first().map(|f| {
            let pointer = std::sync::Arc::as_ptr(f) as usize;
            (f.address, pointer, frames.len())
        });
        if let Some(&id) = identity.and_then(|key| self.known_locations.get(&key)) {
            return id;
        }
        let id = self.build_location(frames);
        if let Some(key) = identity {
            self.known_locations.insert(key, id);
        }
        id
    }

    /// Interns the location of `frames` by content.
    fn build_location(&mut self, frames: &[std::sync::Arc<Frame>]) -> u64 {
        let line: Vec<proto::Line> = frames
            .iter()
            .map(|f| proto::Line {
                function_id: self.function(f),
                line: i64::from(f.line.unwrap_or(0)),
                column: 0,
            })
            .collect();
        let address = frames.first().map_or(0, |f| f.address);
        let key = (address, line.iter().map(|l| l.function_id).collect());
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id: 1,
            address,
            line,
            is_folded: false,
        });
        self.location_ids.insert(key, id);
        id
    }
}

/// The messages of `profile.proto` (package `perftools.profiles`), field
/// numbers as upstream. See the upstream file for each field's meaning.
#[allow(missing_docs)]
pub mod proto {
    /// A profile: samples, their locations and functions, and a string
    /// table all string fields index into.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
        #[prost(int64, tag = "15")]
        pub doc_url: i64,
    }

    /// A value's type and unit (string table indices).
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// One stack (location ids, leaf first) and its values, one per sample
    /// type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A sample label: a string or a number with a unit.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    /// A mapped binary; `has_*` say what symbol information the profile
    /// already carries.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    /// One address and the (inlined) lines it stands for, innermost first.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    /// A function and line within a location.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    /// A function: names and source file (string table indices).
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::profile::{Estimates, StackProfile};

    fn frame(function: &str, address: u64, line: u32) -> Arc<Frame> {
        Arc::new(Frame {
            function: function.to_string(),
            file: Some("src/lib.rs".to_string()),
            line: Some(line),
            address,
        })
    }

    #[test]
    fn round_trips_with_inlined_frames_sharing_a_location() {
        let inlined = frame("inner", 0x1000, 3);
        let caller = frame("outer", 0x1000, 9);
        let main = frame("main", 0x2000, 20);
        let snapshot = Snapshot {
            taken_at_unix_ms: 1_700_000_000_000,
            rate: 524_288,
            totals: Estimates::default(),
            counters: Default::default(),
            stacks: vec![
                StackProfile {
                    frames: vec![inlined, caller, Arc::clone(&main)],
                    scope: None,
                    estimates: Estimates {
                        inuse_bytes: 1000.4,
                        inuse_objects: 2.0,
                        alloc_bytes: 3000.6,
                        alloc_objects: 6.0,
                    },
                    inuse_error: Default::default(),
                },
                StackProfile {
                    frames: vec![frame("other", 0x3000, 1), main],
                    scope: None,
                    estimates: Estimates {
                        inuse_bytes: -8.0,
                        inuse_objects: -1.0,
                        alloc_bytes: 0.0,
                        alloc_objects: 0.0,
                    },
                    inuse_error: Default::default(),
                },
            ],
        };
        let mut gz = Vec::new();
        let options =
            PprofOptions::for_kind(Kind::AllocSpace).with_duration(Duration::from_secs(2));
        write_pprof(&snapshot, &options, &mut gz).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let p = read_pprof(&gz[..]).unwrap();
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(0), "");
        let types: Vec<(&str, &str)> = p
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(
            types,
            [
                ("alloc_objects", "count"),
                ("alloc_space", "bytes"),
                ("inuse_objects", "count"),
                ("inuse_space", "bytes")
            ]
        );
        let period_type = p.period_type.unwrap();
        assert_eq!(
            (s(period_type.r#type), s(period_type.unit)),
            ("space", "bytes")
        );
        assert_eq!(p.period, 524_288);
        assert_eq!(s(p.default_sample_type), "alloc_space");
        assert_eq!(p.duration_nanos, 2_000_000_000);
        assert_eq!(p.time_nanos, 1_700_000_000_000_000_000);
        assert_eq!(p.sample.len(), 2);
        assert_eq!(p.sample[0].value, [6, 3001, 2, 1000]);
        assert_eq!(p.sample[1].value, [0, 0, -1, -8]);
        // inner+outer share one location; main's location is shared by both samples.
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.sample[0].location_id.len(), 2);
        assert_eq!(p.sample[0].location_id[1], p.sample[1].location_id[1]);
        let first = &p.location[(p.sample[0].location_id[0] - 1) as usize];
        assert_eq!(first.address, 0x1000);
        let names: Vec<&str> = first
            .line
            .iter()
            .map(|l| s(p.function[(l.function_id - 1) as usize].name))
            .collect();
        assert_eq!(names, ["inner", "outer"]);
        assert_eq!(first.line[1].line, 9);
        assert!(p.mapping[0].has_functions && p.mapping[0].has_inline_frames);
        assert_eq!(p.function.len(), 4);
        assert_eq!(s(p.function[0].filename), "src/lib.rs");
    }

    #[test]
    fn the_profile_written_a_batch_at_a_time_reads_as_the_one_built_whole() {
        let main = frame("main", 0x2000, 20);
        let stacks = (0..2500)
            .map(|i| {
                let leaf = frame(&format!("leaf{}", i % 700), 0x3000 + i % 700, 1);
                StackProfile::allocated(vec![leaf, Arc::clone(&main)], 1.0 + i as f64)
            })
            .collect();
        let snapshot = Snapshot::of_stacks(1_700_000_000_000, stacks);
        let options = PprofOptions::for_kind(Kind::AllocObjects);
        let mut gz = Vec::new();
        write_pprof(&snapshot, &options, &mut gz).unwrap();
        let read = read_pprof(&gz[..]).unwrap();
        assert_eq!(read.sample.len(), 2500);
        assert_eq!(read, profile(&snapshot, &options));
    }

    #[test]
    fn locations_are_shared_by_content_and_a_trimmed_run_is_its_own() {
        let (inner, outer) = (frame("inner", 0x1000, 3), frame("outer", 0x1000, 9));
        let main = frame("main", 0x2000, 20);
        let stack = |frames| StackProfile::allocated(frames, 1.0);
        let snapshot = Snapshot::of_stacks(
            0,
            vec![
                stack(vec![inner.clone(), outer.clone(), main.clone()]),
                // The same frames again, by identity.
                stack(vec![inner.clone(), outer.clone(), main.clone()]),
                // The run for 0x1000 with its innermost frame trimmed.
                stack(vec![outer, main]),
                // ... and cut after its innermost frame.
                stack(vec![inner.clone()]),
                // Equal frames from another resolution (other Arcs).
                stack(vec![
                    frame("inner", 0x1000, 3),
                    frame("outer", 0x1000, 9),
                    frame("main", 0x2000, 20),
                ]),
            ],
        );
        let p = profile(&snapshot, &PprofOptions::for_kind(Kind::AllocObjects));
        let ids: Vec<&[u64]> = p.sample.iter().map(|s| &s.location_id[..]).collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[0], ids[4], "equal content, one location");
        assert_ne!(ids[3][0], ids[0][0], "inner alone is another location");
        assert_ne!(ids[2][0], ids[0][0], "outer alone is another location");
        assert_eq!(ids[2][1], ids[0][1], "main is shared");
        assert_eq!(p.location.len(), 4);
        assert_eq!(p.location[(ids[2][0] - 1) as usize].line.len(), 1);
    }
}
