//! What a FILE argument names: a profile file, or a dump directory
//! (`<id>/` holding `summary.json`, `heap.pb.gz`, `heap.folded`, as the
//! library's dumps write them), and a dump's summary read loosely.
//!
//! The summary is read as plain JSON and its fields looked up by name, at
//! the top level or in the object named for their part (`process`,
//! `cgroup`, `heap`), so a summary with fields this reader does not know,
//! or without some it does, still lists; one that is not a JSON object is
//! an error naming the file.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use memprof::export::profile_file::{read_profile_file, ProfileFile, ReadLimits};
use serde_json::Value;

use crate::{Failure, Result};

/// The files of a dump directory.
pub(crate) const SUMMARY: &str = "summary.json";
pub(crate) const PPROF: &str = "heap.pb.gz";
pub(crate) const FOLDED: &str = "heap.folded";

/// The most a summary may hold: far above any real one.
const MAX_SUMMARY_BYTES: u64 = 64 << 20;

/// A profile, and where it came from.
pub(crate) struct Source {
    /// The file the profile was read from (inside a dump directory, its
    /// `heap.pb.gz` or `heap.folded`).
    pub(crate) profile_path: PathBuf,
    pub(crate) profile: ProfileFile,
    /// The dump directory, when FILE was one.
    pub(crate) dump_dir: Option<PathBuf>,
}

/// Reads FILE: a profile file, or the profile of a dump directory
/// (`heap.pb.gz`, else `heap.folded`).
pub(crate) fn load(path: &Path, limits: &ReadLimits) -> Result<Source> {
    let (profile_path, dump_dir) = if path.is_dir() {
        let file = [PPROF, FOLDED]
            .iter()
            .map(|name| path.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Failure(format!(
                    "{}: a directory without {PPROF} or {FOLDED}: not a dump",
                    path.display()
                ))
            })?;
        (file, Some(path.to_path_buf()))
    } else {
        (path.to_path_buf(), None)
    };
    let profile = read_profile_file(&profile_path, limits).map_err(|e| Failure(e.to_string()))?;
    Ok(Source {
        profile_path,
        profile,
        dump_dir,
    })
}

/// A dump's `summary.json`, as JSON.
pub(crate) struct Summary(pub(crate) Value);

impl Summary {
    /// Reads `dir/summary.json`; an error names the file and what was wrong.
    pub(crate) fn read(dir: &Path) -> std::result::Result<Summary, String> {
        let path = dir.join(SUMMARY);
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = Vec::new();
        file.take(MAX_SUMMARY_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if text.len() as u64 > MAX_SUMMARY_BYTES {
            return Err(format!(
                "{}: larger than {} MiB: not a summary",
                path.display(),
                MAX_SUMMARY_BYTES >> 20
            ));
        }
        match serde_json::from_slice::<Value>(&text) {
            Ok(value @ Value::Object(_)) => Ok(Summary(value)),
            Ok(_) => Err(format!("{}: not a JSON object", path.display())),
            Err(e) => Err(format!("{}: not JSON: {e}", path.display())),
        }
    }

    /// The first of `paths` that holds a value.
    fn at(&self, paths: &[&[&str]]) -> Option<&Value> {
        paths.iter().find_map(|path| {
            let mut value = &self.0;
            for key in *path {
                value = value.get(key)?;
            }
            (!value.is_null()).then_some(value)
        })
    }

    /// A number at the first of `paths` that holds one.
    fn number(&self, paths: &[&[&str]]) -> Option<u64> {
        paths.iter().find_map(|path| {
            let value = self.at(&[*path])?;
            value
                .as_u64()
                .or_else(|| value.as_f64().filter(|v| *v >= 0.0).map(|v| v as u64))
        })
    }

    /// A string at the first of `paths` that holds one.
    fn text(&self, paths: &[&[&str]]) -> Option<String> {
        paths
            .iter()
            .find_map(|path| self.at(&[*path])?.as_str().map(str::to_string))
    }

    pub(crate) fn trigger(&self) -> Option<String> {
        self.text(&[&["trigger"], &["trigger", "kind"], &["trigger", "name"]])
    }

    pub(crate) fn detail(&self) -> Option<String> {
        self.text(&[&["detail"], &["trigger", "detail"]])
    }

    pub(crate) fn time_unix(&self) -> Option<u64> {
        self.number(&[&["time_unix"], &["time", "unix"]])
            .or_else(|| self.number(&[&["time_unix_ms"]]).map(|ms| ms / 1000))
    }

    pub(crate) fn pid(&self) -> Option<u64> {
        self.number(&[&["pid"], &["process", "pid"]])
    }

    pub(crate) fn comm(&self) -> Option<String> {
        self.text(&[&["comm"], &["process", "comm"]])
    }

    pub(crate) fn version(&self) -> Option<String> {
        self.text(&[&["version"], &["build"], &["process", "version"]])
    }

    pub(crate) fn heap_bytes(&self) -> Option<u64> {
        self.number(&[
            &["heap_bytes"],
            &["heap", "estimate_bytes"],
            &["heap", "inuse_bytes"],
            &["heap", "bytes"],
            &["heap", "heap_bytes"],
        ])
    }

    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        self.number(&[
            &["rss_bytes"],
            &["process", "rss_bytes"],
            &["process", "vm_rss_bytes"],
        ])
    }

    pub(crate) fn cgroup_usage_bytes(&self) -> Option<u64> {
        self.number(&[
            &["cgroup_usage_bytes"],
            &["cgroup", "usage_bytes"],
            &["cgroup", "current_bytes"],
        ])
    }

    pub(crate) fn cgroup_limit_bytes(&self) -> Option<u64> {
        self.number(&[
            &["cgroup_limit_bytes"],
            &["cgroup", "limit_bytes"],
            &["cgroup", "max_bytes"],
        ])
    }

    /// The doctor's findings the summary holds.
    pub(crate) fn findings(&self) -> &[Value] {
        self.array(&[&["findings"], &["doctor", "findings"], &["doctor"]])
    }

    /// The leak candidates the summary holds.
    pub(crate) fn leak_candidates(&self) -> &[Value] {
        self.array(&[
            &["leak_candidates"],
            &["leaks", "candidates"],
            &["leaks"],
            &["top_leak_candidates"],
        ])
    }

    fn array(&self, paths: &[&[&str]]) -> &[Value] {
        paths
            .iter()
            .find_map(|path| self.at(&[*path])?.as_array())
            .map_or(&[], Vec::as_slice)
    }
}

/// What a dump's id says (`<yyyymmddThhmmssZ>-<pid>-<trigger>[-<n>]`):
/// its time, pid and trigger, for a summary that lacks them.
pub(crate) struct IdParts {
    pub(crate) time_unix: Option<u64>,
    pub(crate) pid: Option<u64>,
    pub(crate) trigger: Option<String>,
}

pub(crate) fn parse_id(id: &str) -> IdParts {
    let mut parts = id.split('-');
    let time_unix = parts.next().and_then(parse_compact_utc);
    let pid = parts.next().and_then(|p| p.parse().ok());
    let trigger = parts.next().map(str::to_string);
    IdParts {
        time_unix,
        pid,
        trigger,
    }
}

/// `20261206T095537Z` as seconds since the Unix epoch (the days from a
/// civil date, Howard Hinnant's `days_from_civil`).
fn parse_compact_utc(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    if date.len() != 8
        || time.len() != 6
        || !(date.chars().chain(time.chars())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (n(&date[..4])?, n(&date[4..6])?, n(&date[6..])?);
    let (hh, mm, ss) = (n(&time[..2])?, n(&time[2..4])?, n(&time[4..])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Seconds since the Unix epoch as `2026-12-06 09:55:37 UTC`.
pub(crate) fn utc(unix: u64) -> String {
    memprof::host::utc(unix as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_give_time_pid_and_trigger() {
        let parts = parse_id("20261206T095537Z-4242-limit-2");
        assert_eq!(parts.pid, Some(4242));
        assert_eq!(parts.trigger.as_deref(), Some("limit"));
        assert_eq!(utc(parts.time_unix.unwrap()), "2026-12-06 09:55:37 UTC");
        assert_eq!(parse_compact_utc("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_id("notes").time_unix, None);
    }
}
