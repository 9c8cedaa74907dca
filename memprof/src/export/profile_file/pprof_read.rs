//! Decoding pprof's `profile.proto` from outside into a [`Snapshot`].
//!
//! The top-level `Profile` message is read one field at a time from the
//! (decompressed, capped) stream: each sample, location, function, mapping
//! and string is decoded on its own by prost and kept, counted against
//! [`ReadLimits::max_table_bytes`]. The stream itself is never held whole,
//! so a profile costs its tables, not its bytes plus its tables.
//!
//! Then ids and string indexes are resolved, each checked: a reference to
//! nothing is a [`ProfileError::BadReference`] naming the field.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::mem::size_of;
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use prost::Message;

use super::{input_error, Capped, ProfileError, ReadLimits, GZIP_MAGIC};
use crate::export::pprof::proto;
use crate::profile::{Estimates, Kind, Snapshot, StackProfile};
use crate::stack::Frame;

/// Reads a pprof profile, gzipped or not, into a snapshot with the sample
/// types it declares (`type/unit`).
///
/// # Errors
///
/// A [`ProfileError`] saying what was wrong: the input, the gzip stream,
/// a cap, the protobuf, a reference, or a profile that is not of the heap.
pub fn read_pprof_profile<R: Read>(
    input: R,
    limits: &ReadLimits,
) -> Result<(Snapshot, Vec<String>), ProfileError> {
    let mut input = BufReader::new(input);
    let gzipped = input
        .fill_buf()
        .map_err(ProfileError::Io)?
        .starts_with(&GZIP_MAGIC);
    let tables = if gzipped {
        let stream = Capped::new(MultiGzDecoder::new(input), limits.max_input_bytes);
        Tables::read(BufReader::new(stream), limits, true)?
    } else {
        let stream = Capped::new(input, limits.max_input_bytes);
        Tables::read(BufReader::new(stream), limits, false)?
    };
    tables.into_snapshot(limits)
}

/// The parts of a profile, as read.
#[derive(Default)]
struct Tables {
    sample_types: Vec<proto::ValueType>,
    samples: Vec<proto::Sample>,
    mappings: Vec<proto::Mapping>,
    locations: Vec<proto::Location>,
    functions: Vec<proto::Function>,
    strings: Vec<String>,
    time_nanos: i64,
    period: i64,
    /// Bytes the kept parts take, as counted.
    held: u64,
}

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

impl Tables {
    fn read<R: BufRead>(
        mut stream: R,
        limits: &ReadLimits,
        gzipped: bool,
    ) -> Result<Tables, ProfileError> {
        let fail = |e| input_error(e, limits.max_input_bytes, gzipped);
        let mut tables = Tables::default();
        let mut at: u64 = 0;
        let mut buffer = Vec::new();
        loop {
            let field_at = at;
            let Some(key) = read_varint(&mut stream, &mut at, &fail)? else {
                if at > field_at {
                    return Err(malformed(field_at, "the stream ends inside a field's key"));
                }
                break;
            };
            let (field, wire_type) = (key >> 3, key & 7);
            if field == 0 {
                return Err(malformed(field_at, "field number 0"));
            }
            match wire_type {
                VARINT => {
                    let value = read_varint(&mut stream, &mut at, &fail)?
                        .ok_or_else(|| malformed(field_at, "the stream ends inside a number"))?;
                    // Two's complement, as protobuf writes int64.
                    let value = value as i64;
                    match field {
                        9 => tables.time_nanos = value,
                        12 => tables.period = value,
                        _ => {}
                    }
                }
                FIXED64 | FIXED32 => {
                    let len = if wire_type == FIXED64 { 8 } else { 4 };
                    read_exact(&mut stream, len, &mut buffer, &mut at)
                        .map_err(fail)?
                        .ok_or_else(|| malformed(field_at, "the stream ends inside a field"))?;
                }
                LENGTH_DELIMITED => {
                    let len = read_varint(&mut stream, &mut at, &fail)?
                        .ok_or_else(|| malformed(field_at, "the stream ends inside a length"))?;
                    if len > limits.max_input_bytes {
                        return Err(ProfileError::TooLarge {
                            limit: limits.max_input_bytes,
                            evidence: format!(
                                "field {field} at byte {field_at} claims {len} bytes"
                            ),
                        });
                    }
                    read_exact(&mut stream, len, &mut buffer, &mut at)
                        .map_err(fail)?
                        .ok_or_else(|| {
                            malformed(
                                field_at,
                                &format!(
                                    "field {field} claims {len} bytes, but the stream ends first"
                                ),
                            )
                        })?;
                    tables.keep(field, &buffer, field_at)?;
                    if tables.held > limits.max_table_bytes {
                        return Err(ProfileError::TablesTooLarge {
                            limit: limits.max_table_bytes,
                        });
                    }
                }
                other => {
                    return Err(malformed(
                        field_at,
                        &format!(
                            "field {field} has wire type {other}, which profile.proto never uses"
                        ),
                    ))
                }
            }
        }
        if at == 0 {
            return Err(ProfileError::Malformed("the profile is empty".to_string()));
        }
        Ok(tables)
    }

    /// Decodes and keeps one length-delimited field of `Profile`.
    fn keep(&mut self, field: u64, bytes: &[u8], at: u64) -> Result<(), ProfileError> {
        let bad = |what: &str, e: prost::DecodeError| malformed(at, &format!("{what}: {e}"));
        match field {
            1 => {
                self.sample_types
                    .push(proto::ValueType::decode(bytes).map_err(|e| bad("a sample type", e))?);
                self.held += size_of::<proto::ValueType>() as u64;
            }
            2 => {
                let mut sample = proto::Sample::decode(bytes).map_err(|e| bad("a sample", e))?;
                // Labels are not shown; their memory is not kept.
                sample.label = Vec::new();
                sample.location_id.shrink_to_fit();
                sample.value.shrink_to_fit();
                self.held += (size_of::<proto::Sample>()
                    + sample.location_id.capacity() * size_of::<u64>()
                    + sample.value.capacity() * size_of::<i64>())
                    as u64;
                self.samples.push(sample);
            }
            3 => {
                self.mappings
                    .push(proto::Mapping::decode(bytes).map_err(|e| bad("a mapping", e))?);
                self.held += size_of::<proto::Mapping>() as u64;
            }
            4 => {
                let mut location =
                    proto::Location::decode(bytes).map_err(|e| bad("a location", e))?;
                location.line.shrink_to_fit();
                self.held += (size_of::<proto::Location>()
                    + location.line.capacity() * size_of::<proto::Line>())
                    as u64;
                self.locations.push(location);
            }
            5 => {
                self.functions
                    .push(proto::Function::decode(bytes).map_err(|e| bad("a function", e))?);
                self.held += size_of::<proto::Function>() as u64;
            }
            6 => {
                // Names from other toolchains need not be UTF-8; they are
                // shown, not matched, so a lossy copy serves.
                let string = String::from_utf8_lossy(bytes).into_owned();
                self.held += (size_of::<String>() + string.capacity()) as u64;
                self.strings.push(string);
            }
            11 => {
                proto::ValueType::decode(bytes).map_err(|e| bad("the period type", e))?;
            }
            // Packed comments (13) and fields newer than this reader.
            _ => {}
        }
        Ok(())
    }

    /// The string at `index`, or an error naming `what` pointed there.
    fn string(&self, index: i64, what: &dyn Fn() -> String) -> Result<&str, ProfileError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.strings.get(i))
            .map(String::as_str)
            .ok_or_else(|| {
                ProfileError::BadReference(format!(
                    "{} is string {index}, but the string table has {}",
                    what(),
                    self.strings.len()
                ))
            })
    }

    /// Which estimate each sample value is, by the sample types' names.
    fn kinds(&self) -> Result<(Vec<Option<Kind>>, Vec<String>), ProfileError> {
        let mut kinds = Vec::with_capacity(self.sample_types.len());
        let mut names = Vec::with_capacity(self.sample_types.len());
        for (i, t) in self.sample_types.iter().enumerate() {
            let name = self.string(t.r#type, &|| format!("sample type {i}'s name"))?;
            let unit = self.string(t.unit, &|| format!("sample type {i}'s unit"))?;
            kinds.push(match name {
                "inuse_space" | "space" => Some(Kind::InuseSpace),
                "inuse_objects" | "objects" => Some(Kind::InuseObjects),
                "alloc_space" => Some(Kind::AllocSpace),
                "alloc_objects" => Some(Kind::AllocObjects),
                _ => None,
            });
            names.push(format!("{name}/{unit}"));
        }
        if kinds.iter().all(Option::is_none) {
            let sample_types = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            return Err(ProfileError::NotHeap { sample_types });
        }
        Ok((kinds, names))
    }

    /// Resolves every reference and builds the snapshot; samples with the
    /// same stack are merged. What the frames and stacks take is counted
    /// against [`ReadLimits::max_table_bytes`] too: a location's lines and a
    /// sample's ids multiply (a long name on every line, a deep location
    /// in every sample), so small tables can ask for a huge snapshot.
    fn into_snapshot(
        mut self,
        limits: &ReadLimits,
    ) -> Result<(Snapshot, Vec<String>), ProfileError> {
        let mut built: u64 = 0;
        let mut count = |bytes: usize| {
            built = built.saturating_add(bytes as u64);
            if built > limits.max_table_bytes {
                Err(ProfileError::TablesTooLarge {
                    limit: limits.max_table_bytes,
                })
            } else {
                Ok(())
            }
        };
        let (kinds, names) = self.kinds()?;
        let functions = self.function_names()?;
        let mappings: HashMap<u64, &proto::Mapping> =
            self.mappings.iter().map(|m| (m.id, m)).collect();
        let mut locations: HashMap<u64, Vec<Arc<Frame>>> =
            HashMap::with_capacity(self.locations.len());
        for location in &self.locations {
            let mut frames = Vec::with_capacity(location.line.len().max(1));
            for line in &location.line {
                let (name, file) = functions.get(&line.function_id).ok_or_else(|| {
                    ProfileError::BadReference(format!(
                        "location {} names function {}, which the profile does not have",
                        location.id, line.function_id
                    ))
                })?;
                count(
                    size_of::<Frame>()
                        + size_of::<Arc<Frame>>()
                        + name.len()
                        + file.as_ref().map_or(0, String::len),
                )?;
                frames.push(Arc::new(Frame {
                    function: name.clone(),
                    file: file.clone(),
                    line: u32::try_from(line.line).ok().filter(|&l| l > 0),
                    address: location.address,
                }));
            }
            if frames.is_empty() {
                let mapping = mappings.get(&location.mapping_id).copied();
                frames.push(Arc::new(Frame {
                    function: unsymbolized(location.address, mapping, &self)?,
                    file: None,
                    line: None,
                    address: location.address,
                }));
            }
            locations.insert(location.id, frames);
        }
        let samples = std::mem::take(&mut self.samples);
        let mut stacks: Vec<StackProfile> = Vec::new();
        let mut by_ids: HashMap<Vec<u64>, usize> = HashMap::new();
        for (n, sample) in samples.into_iter().enumerate() {
            let mut estimates = Estimates::default();
            for (value, kind) in sample.value.iter().zip(&kinds) {
                match kind {
                    Some(Kind::InuseSpace) => estimates.inuse_bytes += *value as f64,
                    Some(Kind::InuseObjects) => estimates.inuse_objects += *value as f64,
                    Some(Kind::AllocSpace) => estimates.alloc_bytes += *value as f64,
                    Some(Kind::AllocObjects) => estimates.alloc_objects += *value as f64,
                    None => {}
                }
            }
            if let Some(&i) = by_ids.get(&sample.location_id) {
                stacks[i].estimates += estimates;
                continue;
            }
            let mut frames = Vec::new();
            for id in &sample.location_id {
                let location = locations.get(id).ok_or_else(|| {
                    ProfileError::BadReference(format!(
                        "sample {n} names location {id}, which the profile does not have"
                    ))
                })?;
                count(location.len() * size_of::<Arc<Frame>>())?;
                frames.extend(location.iter().cloned());
            }
            count(size_of::<StackProfile>())?;
            by_ids.insert(sample.location_id, stacks.len());
            stacks.push(StackProfile {
                frames,
                estimates,
                inuse_error: Default::default(),
                // The scope's names are the `[scope ...]` frames at the root.
                scope: None,
            });
        }
        stacks.sort_by(|a, b| {
            b.value(Kind::InuseSpace)
                .total_cmp(&a.value(Kind::InuseSpace))
                .then_with(|| {
                    b.value(Kind::AllocSpace)
                        .total_cmp(&a.value(Kind::AllocSpace))
                })
        });
        let snapshot = Snapshot {
            taken_at_unix_ms: u64::try_from(self.time_nanos / 1_000_000).unwrap_or(0),
            rate: u64::try_from(self.period).unwrap_or(0),
            totals: stacks.iter().map(|s| s.estimates).sum(),
            counters: Default::default(),
            stacks,
        };
        Ok((snapshot, names))
    }

    /// Each function's name and file, by id.
    fn function_names(&self) -> Result<HashMap<u64, (String, Option<String>)>, ProfileError> {
        let mut names = HashMap::with_capacity(self.functions.len());
        for f in &self.functions {
            let name = self.string(f.name, &|| format!("function {}'s name", f.id))?;
            let name = if name.is_empty() {
                self.string(f.system_name, &|| {
                    format!("function {}'s system name", f.id)
                })?
            } else {
                name
            };
            let file = self.string(f.filename, &|| format!("function {}'s file", f.id))?;
            let name = if name.is_empty() {
                format!("[function {}]", f.id)
            } else {
                name.to_string()
            };
            names.insert(f.id, (name, (!file.is_empty()).then(|| file.to_string())));
        }
        Ok(names)
    }
}

/// A name for an address without symbols: its binary and the offset in
/// it (`libfoo.so+0x1a2b`), as `pprof -symbolize=none` shows it, or the
/// bare address when no mapping covers it.
fn unsymbolized(
    address: u64,
    mapping: Option<&proto::Mapping>,
    tables: &Tables,
) -> Result<String, ProfileError> {
    let Some(m) = mapping.filter(|m| (m.memory_start..m.memory_limit).contains(&address)) else {
        return Ok(format!("{address:#x}"));
    };
    let file = tables.string(m.filename, &|| format!("mapping {}'s file", m.id))?;
    let base = file.rsplit('/').next().unwrap_or(file);
    let offset = (address - m.memory_start).wrapping_add(m.file_offset);
    Ok(if base.is_empty() {
        format!("{address:#x}")
    } else {
        format!("{base}+{offset:#x}")
    })
}

fn malformed(at: u64, what: &str) -> ProfileError {
    ProfileError::Malformed(format!("at byte {at}: {what}"))
}

/// Reads a base-128 varint; `None` when the stream ends before it is
/// whole (the caller says what it was reading).
fn read_varint<R: BufRead>(
    stream: &mut R,
    at: &mut u64,
    fail: &dyn Fn(io::Error) -> ProfileError,
) -> Result<Option<u64>, ProfileError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some(&byte) = stream.fill_buf().map_err(fail)?.first() else {
            return Ok(None);
        };
        stream.consume(1);
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(malformed(*at, "a number longer than 10 bytes"))
}

/// Reads exactly `len` bytes into `buffer` (replacing what it held),
/// growing it as the bytes arrive rather than trusting `len` up front;
/// `None` when the stream ends first.
fn read_exact<R: Read>(
    stream: &mut R,
    len: u64,
    buffer: &mut Vec<u8>,
    at: &mut u64,
) -> io::Result<Option<()>> {
    buffer.clear();
    let got = stream.take(len).read_to_end(buffer)? as u64;
    *at += got;
    if buffer.capacity() > (1 << 20) && buffer.capacity() > 4 * buffer.len() {
        buffer.shrink_to(buffer.len());
    }
    Ok((got == len).then_some(()))
}
