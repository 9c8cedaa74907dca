//! Writing one dump so that a kill at any moment leaves either the whole
//! dump or nothing that looks like one: the files go into `.<id>.tmp/`,
//! each is fsync'd, then the directory, then it is renamed to `<id>/` and
//! the parent fsync'd. A reader lists only names without the leading dot,
//! so a half-written dump is never listed; the next start removes it.
//!
//! The profile is written a stack at a time (pprof in batches, see
//! [`crate::export::pprof::write_pprof`]; folded one line at a time)
//! straight into buffered files, so the memory a dump takes beyond its
//! snapshot is a few buffers and pprof's tables of distinct addresses.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::export::pprof::{self, PprofOptions};
use crate::profile::{Kind, Snapshot};

use super::summary::Summary;

/// The files of a dump.
pub(crate) const SUMMARY: &str = "summary.json";
pub(crate) const PPROF: &str = "heap.pb.gz";
pub(crate) const FOLDED: &str = "heap.folded";
pub(crate) const FILES: [&str; 3] = [SUMMARY, PPROF, FOLDED];

/// The temporary name of the dump `id` while it is written.
pub(crate) fn tmp_name(id: &str) -> String {
    format!(".{id}.tmp")
}

/// Writes the dump `id` into `dir`; its size in bytes. On an error the
/// temporary directory is removed (as far as it can be) and nothing is
/// left under the dump's name.
pub(crate) fn write(
    dir: &Path,
    id: &str,
    snapshot: &Snapshot,
    summary: &Summary,
) -> io::Result<u64> {
    let tmp = dir.join(tmp_name(id));
    let result = write_into(&tmp, snapshot, summary).and_then(|bytes| {
        let done = dir.join(id);
        fs::rename(&tmp, &done)?;
        sync_dir(dir)?;
        Ok(bytes)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(tmp: &Path, snapshot: &Snapshot, summary: &Summary) -> io::Result<u64> {
    if tmp.exists() {
        fs::remove_dir_all(tmp)?;
    }
    fs::create_dir(tmp)?;
    let mut bytes = 0;
    bytes += write_file(tmp.join(PPROF), |out| {
        pprof::write_pprof(snapshot, &PprofOptions::for_kind(Kind::InuseSpace), out)
    })?;
    bytes += write_file(tmp.join(FOLDED), |out| {
        write_folded_largest_first(snapshot, out)
    })?;
    bytes += write_file(tmp.join(SUMMARY), |out| {
        serde_json::to_writer_pretty(&mut *out, summary).map_err(io::Error::from)?;
        out.write_all(b"\n")
    })?;
    sync_dir(tmp)?;
    Ok(bytes)
}

/// Creates `path`, writes it through a buffer, fsyncs it; its size.
fn write_file(
    path: PathBuf,
    body: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<u64> {
    let file = File::create(&path)?;
    let mut out = BufWriter::with_capacity(64 * 1024, &file);
    body(&mut out)?;
    out.flush()?;
    drop(out);
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// fsyncs a directory, so the names in it (a new file, a rename) survive
/// a crash of the machine.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The in-use stacks as folded lines (`root;...;leaf bytes`), the largest
/// first, so the first line of a dump is its largest stack; stacks with
/// nothing in use are left out.
fn write_folded_largest_first<W: Write>(snapshot: &Snapshot, out: &mut W) -> io::Result<()> {
    let mut order: Vec<usize> = (0..snapshot.stacks.len())
        .filter(|&i| snapshot.stacks[i].estimates.inuse_bytes >= 0.5)
        .collect();
    order.sort_by(|&a, &b| {
        snapshot.stacks[b]
            .estimates
            .inuse_bytes
            .total_cmp(&snapshot.stacks[a].estimates.inuse_bytes)
    });
    for i in order {
        let stack = &snapshot.stacks[i];
        writeln!(
            out,
            "{} {}",
            stack.folded_key(),
            stack.estimates.inuse_bytes.round() as u64
        )?;
    }
    Ok(())
}
