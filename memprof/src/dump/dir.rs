//! The dump directory: preparing it (created if missing, a killed
//! writer's leftovers removed), reading the dumps already in it (anything
//! else is ignored with a note), and keeping it within its limits.

use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;

use super::id::parse_id;
use super::summary::{Summary, FORMAT};
use super::writer::{FILES, SUMMARY};

/// The largest `summary.json` read back: a summary is a few tens of KiB;
/// anything far larger is not one memprof wrote.
const MAX_SUMMARY_BYTES: u64 = 4 << 20;

/// One dump in the directory, as `/dumps` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DumpEntry {
    /// Its id, also its directory's name.
    pub id: String,
    /// `peak`, `limit`, `request` or `exit`.
    pub trigger: String,
    /// Why, in words (the reading that crossed, or who asked).
    pub detail: String,
    /// When it was written, seconds since the Unix epoch.
    pub time_unix: u64,
    /// The process that wrote it.
    pub pid: u32,
    /// Its command name.
    pub comm: Option<String>,
    /// Whether this process wrote it.
    pub current_run: bool,
    /// The heap estimate at the dump.
    pub heap_bytes: f64,
    /// The process's RSS at the dump.
    pub rss_bytes: Option<u64>,
    /// The memory cgroup's usage at the dump.
    pub cgroup_usage_bytes: Option<u64>,
    /// The memory cgroup's limit, if it has one.
    pub cgroup_limit_bytes: Option<u64>,
    /// The dump's size on disk (its files together).
    pub bytes: u64,
    /// Where its files are served, relative to the endpoint's root.
    pub files: DumpFiles,
}

/// The URLs of a dump's files, relative to the endpoint's root.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DumpFiles {
    /// `dumps/<id>/summary.json`.
    pub summary: String,
    /// `dumps/<id>/heap.pb.gz`.
    pub pprof: String,
    /// `dumps/<id>/heap.folded`.
    pub folded: String,
    /// `dumps/<id>/flamegraph` (SVG; `?base=current` for a differential
    /// against the live heap).
    pub flamegraph: String,
}

impl DumpEntry {
    /// The entry of a dump with this summary and size.
    pub(crate) fn of(summary: &Summary, bytes: u64) -> DumpEntry {
        let id = &summary.id;
        DumpEntry {
            id: id.clone(),
            trigger: summary.trigger.clone(),
            detail: summary.detail.clone(),
            time_unix: summary.time_unix,
            pid: summary.pid,
            comm: summary.comm.clone(),
            current_run: summary.pid == std::process::id(),
            heap_bytes: summary.heap_bytes,
            rss_bytes: summary.rss_bytes,
            cgroup_usage_bytes: summary.cgroup_usage_bytes,
            cgroup_limit_bytes: summary.cgroup_limit_bytes,
            bytes,
            files: DumpFiles {
                summary: format!("dumps/{id}/summary.json"),
                pprof: format!("dumps/{id}/heap.pb.gz"),
                folded: format!("dumps/{id}/heap.folded"),
                flamegraph: format!("dumps/{id}/flamegraph"),
            },
        }
    }
}

/// The suffix of a dump being removed: it is renamed first, so a removal
/// cut short leaves a dot-name, never a dump missing files.
const REMOVED: &str = ".removed";

/// What a scan of the directory found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The dumps, newest first.
    pub(crate) entries: Vec<DumpEntry>,
    /// What was ignored or removed, and why.
    pub(crate) notes: Vec<String>,
}

/// Creates `dir` (and its parents) if it is missing, and removes what
/// killed writers left: the temporary directories of this process's
/// writers or of a process that no longer runs (another live process
/// sharing the directory may be writing its own), and dumps whose removal
/// was cut short.
pub(crate) fn prepare(dir: &Path) -> io::Result<Vec<String>> {
    fs::create_dir_all(dir)?;
    let mut notes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hidden) = name.strip_prefix('.') else {
            continue;
        };
        if let Some(id) = hidden.strip_suffix(".tmp") {
            let Some(parts) = parse_id(id) else { continue };
            if parts.pid != std::process::id() && process_runs(parts.pid) {
                continue;
            }
        } else if hidden.strip_suffix(REMOVED).and_then(parse_id).is_none() {
            continue;
        }
        match fs::remove_dir_all(entry.path()) {
            Ok(()) => notes.push(format!("removed {name}: left by a writer that was stopped")),
            Err(e) => notes.push(format!("could not remove {name}: {e}")),
        }
    }
    Ok(notes)
}

/// Whether a process with this pid runs (or might: one we may not signal).
fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the
    // pid exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reads the dumps in `dir`, newest first. A name that is not a dump's, a
/// dump without a readable memprof summary, or one missing a file is left
/// alone and noted; nothing here fails but the listing of the directory.
pub(crate) fn scan(dir: &Path) -> io::Result<Scan> {
    let mut scan = Scan::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let shown = name.to_string_lossy();
        if shown.starts_with('.') {
            continue;
        }
        match read_dump(&entry.path(), &shown) {
            Ok(dump) => scan.entries.push(dump),
            Err(why) => scan.notes.push(format!("ignored {shown}: {why}")),
        }
    }
    scan.entries
        .sort_by(|a, b| (b.time_unix, &b.id).cmp(&(a.time_unix, &a.id)));
    Ok(scan)
}

/// One dump's entry, or why `path` is not a dump memprof wrote.
pub(crate) fn read_dump(path: &Path, name: &str) -> Result<DumpEntry, String> {
    if parse_id(name).is_none() {
        return Err("not a dump's name (time-pid-trigger)".to_owned());
    }
    let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".to_owned());
    }
    let summary = read_summary(&path.join(SUMMARY))?;
    if summary.id != name {
        return Err(format!("its summary names another dump, {:?}", summary.id));
    }
    let mut bytes = 0;
    for file in FILES {
        let meta = fs::symlink_metadata(path.join(file)).map_err(|e| format!("{file}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{file} is not a file"));
        }
        bytes += meta.len();
    }
    Ok(DumpEntry::of(&summary, bytes))
}

/// Reads a summary memprof wrote, or says why `path` is not one.
pub(crate) fn read_summary(path: &Path) -> Result<Summary, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{SUMMARY}: {e}"))?;
    if !meta.is_file() || meta.len() > MAX_SUMMARY_BYTES {
        return Err(format!("{SUMMARY} is not a file of at most 4 MiB"));
    }
    let text = fs::read(path).map_err(|e| format!("{SUMMARY}: {e}"))?;
    let summary: Summary =
        serde_json::from_slice(&text).map_err(|e| format!("{SUMMARY} does not parse: {e}"))?;
    if summary.format != FORMAT {
        return Err(format!("{SUMMARY} is not a memprof dump's"));
    }
    Ok(summary)
}

/// Removes the oldest dumps until at most `keep` remain and they take at
/// most `max_bytes` together; the newest is always kept. `entries` is
/// newest first and is cut to what remains. Only dumps memprof lists are
/// removed, never anything else in the directory. Returns notes on what
/// was removed or could not be.
pub(crate) fn retain(
    dir: &Path,
    entries: &mut Vec<DumpEntry>,
    keep: usize,
    max_bytes: u64,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    while entries.len() > 1 && (entries.len() > keep.max(1) || total > max_bytes) {
        let Some(oldest) = entries.pop() else { break };
        total = total.saturating_sub(oldest.bytes);
        let doomed = dir.join(format!(".{}{REMOVED}", oldest.id));
        let removed =
            fs::rename(dir.join(&oldest.id), &doomed).and_then(|()| fs::remove_dir_all(&doomed));
        if let Err(e) = removed {
            if e.kind() != io::ErrorKind::NotFound {
                notes.push(format!("could not remove {}: {e}", oldest.id));
            }
        }
    }
    notes
}
