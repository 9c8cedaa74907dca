//! `memprof dumps DIR`: the dumps in a dump directory, newest first, with
//! what each summary says (trigger, time, pid, heap, RSS, cgroup usage and
//! limit). A dump whose summary cannot be read is listed as unreadable,
//! with why; what is not a dump (a temporary `.<id>.tmp/` a kill left, a
//! stray file) is listed apart, with a note.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use memprof::doctor::format_bytes;
use serde::Serialize;

use crate::source::{parse_id, utc, Summary, FOLDED, PPROF, SUMMARY};
use crate::{print, print_json, Failure, Result};

/// One dump, as its summary (or, lacking that, its id) describes it.
#[derive(Serialize)]
pub(crate) struct DumpRow {
    id: String,
    trigger: Option<String>,
    detail: Option<String>,
    time_unix: Option<u64>,
    pid: Option<u64>,
    comm: Option<String>,
    heap_bytes: Option<u64>,
    rss_bytes: Option<u64>,
    cgroup_usage_bytes: Option<u64>,
    cgroup_limit_bytes: Option<u64>,
    files: Files,
    /// Why the summary could not be read, if it could not.
    error: Option<String>,
}

/// The dump's files that are there.
#[derive(Serialize)]
struct Files {
    summary: Option<PathBuf>,
    pprof: Option<PathBuf>,
    folded: Option<PathBuf>,
}

/// An entry of the directory that is not a dump.
#[derive(Serialize)]
struct Skipped {
    name: String,
    reason: String,
}

#[derive(Serialize)]
struct Listing<'a> {
    dir: &'a Path,
    dumps: Vec<DumpRow>,
    skipped: Vec<Skipped>,
}

pub(crate) fn dumps(dir: &Path, json: bool) -> Result<ExitCode> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure(format!("{}: cannot list it: {e}", dir.display())))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Failure(format!("{}: cannot list it: {e}", dir.display())))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    // Ids begin with the UTC time, so by name is by time; newest first.
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut listing = Listing {
        dir,
        dumps: Vec::new(),
        skipped: Vec::new(),
    };
    for name in names {
        let path = dir.join(&name);
        if name.starts_with('.') {
            listing.skipped.push(Skipped {
                name,
                reason: "a temporary name: a dump being written, or one a kill cut short"
                    .to_string(),
            });
        } else if !path.is_dir() {
            listing.skipped.push(Skipped {
                name,
                reason: "not a directory: not a dump".to_string(),
            });
        } else {
            listing.dumps.push(row(&path, name));
        }
    }
    if json {
        return print_json(&listing);
    }
    print(&render(&listing))
}

/// What `dir/` (named `id`) holds.
fn row(dir: &Path, id: String) -> DumpRow {
    let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    let files = Files {
        summary: file(SUMMARY),
        pprof: file(PPROF),
        folded: file(FOLDED),
    };
    let from_id = parse_id(&id);
    let (summary, error) = match Summary::read(dir) {
        Ok(summary) => (Some(summary), None),
        Err(e) => (None, Some(e)),
    };
    let s = summary.as_ref();
    DumpRow {
        trigger: s.and_then(Summary::trigger).or(from_id.trigger),
        detail: s.and_then(Summary::detail),
        time_unix: s.and_then(Summary::time_unix).or(from_id.time_unix),
        pid: s.and_then(Summary::pid).or(from_id.pid),
        comm: s.and_then(Summary::comm),
        heap_bytes: s.and_then(Summary::heap_bytes),
        rss_bytes: s.and_then(Summary::rss_bytes),
        cgroup_usage_bytes: s.and_then(Summary::cgroup_usage_bytes),
        cgroup_limit_bytes: s.and_then(Summary::cgroup_limit_bytes),
        files,
        error,
        id,
    }
}

fn bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), format_bytes)
}

/// `usage/limit (share)`, or what of it is known.
pub(crate) fn cgroup_text(usage: Option<u64>, limit: Option<u64>) -> String {
    match (usage, limit) {
        (Some(u), Some(l)) if l > 0 => format!(
            "{}/{} ({:.0}%)",
            format_bytes(u),
            format_bytes(l),
            u as f64 * 100.0 / l as f64
        ),
        (Some(u), _) => format!("{}/no limit", format_bytes(u)),
        (None, _) => "-".to_string(),
    }
}

fn render(listing: &Listing<'_>) -> String {
    let mut out = format!(
        "{}: {} dump{}\n",
        listing.dir.display(),
        listing.dumps.len(),
        if listing.dumps.len() == 1 { "" } else { "s" }
    );
    if !listing.dumps.is_empty() {
        let id_width = listing
            .dumps
            .iter()
            .map(|d| d.id.len())
            .max()
            .unwrap_or(0)
            .max(2);
        out.push_str(&format!(
            "{:<id_width$}  {:<8} {:<23} {:>8} {:>10} {:>10}  CGROUP (USAGE/LIMIT)\n",
            "ID", "TRIGGER", "TIME", "PID", "HEAP", "RSS"
        ));
        for d in &listing.dumps {
            if let Some(error) = &d.error {
                out.push_str(&format!("{:<id_width$}  unreadable: {error}\n", d.id));
                continue;
            }
            out.push_str(&format!(
                "{:<id_width$}  {:<8} {:<23} {:>8} {:>10} {:>10}  {}\n",
                d.id,
                d.trigger.as_deref().unwrap_or("-"),
                d.time_unix.map_or_else(|| "-".to_string(), utc),
                d.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                bytes(d.heap_bytes),
                bytes(d.rss_bytes),
                cgroup_text(d.cgroup_usage_bytes, d.cgroup_limit_bytes),
            ));
        }
    }
    for s in &listing.skipped {
        out.push_str(&format!("note: {} skipped: {}\n", s.name, s.reason));
    }
    out
}
