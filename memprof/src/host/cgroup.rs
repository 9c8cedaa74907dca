//! The memory cgroup that holds a process: where it is, and its limit, usage
//! and OOM events, for cgroup v2 (`Documentation/admin-guide/cgroup-v2.rst`)
//! and cgroup v1 (`Documentation/admin-guide/cgroup-v1/memory.rst`).
//!
//! Finding the directory takes two files. `/proc/<pid>/cgroup` names the
//! process's cgroup in each hierarchy: `N:memory:/path` when the memory
//! controller is on a v1 hierarchy, `0::/path` for the v2 (unified) one. A
//! controller is bound to one hierarchy at a time, so on a hybrid system (v1
//! controllers plus a v2 tree at `/sys/fs/cgroup/unified`) a v1 `memory`
//! line wins. `/proc/<pid>/mountinfo` then says where that hierarchy is
//! mounted and which of its directories is the mount's root (inside a
//! container the mount root is often the container's own cgroup). When
//! mountinfo does not help, the conventional `/sys/fs/cgroup/memory` (v1) or
//! `/sys/fs/cgroup` (v2) is used.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{ParseError, ReadError};
use super::pressure::Pressure;
use super::process::Pid;
use super::reading::{Limit, Reading};
use super::sysctl::parse_number;
use super::util;

/// A v1 limit at or above this many bytes means "no limit": unlimited is
/// `PAGE_COUNTER_MAX` pages (`LONG_MAX` rounded down to a page,
/// 9223372036854771712 with 4 KiB pages), and no machine has 4 EiB.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// One line of `/proc/<pid>/cgroup`: `hierarchy-ID:controller-list:path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CgroupEntry {
    /// The hierarchy id; 0 for the v2 hierarchy.
    pub hierarchy_id: u32,
    /// The controllers bound to this hierarchy (empty for v2; a v1 named
    /// hierarchy shows as `name=systemd`).
    pub controllers: Vec<String>,
    /// The cgroup's path relative to the hierarchy's root.
    pub path: String,
}

/// `/proc/<pid>/cgroup`: the process's cgroup in each hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CgroupMembership {
    /// One entry per hierarchy.
    pub entries: Vec<CgroupEntry>,
}

impl CgroupMembership {
    /// Parses `/proc/<pid>/cgroup`.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<CgroupMembership, ParseError> {
        let mut entries = Vec::new();
        util::for_each_line(reader, |line, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            let mut parts = text.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ParseError::Malformed {
                    line,
                    expected: "id:controllers:path",
                });
            };
            let hierarchy_id =
                u32::try_from(util::number(id, line, "hierarchy id")?).map_err(|_| {
                    ParseError::BadNumber {
                        line,
                        field: "hierarchy id".to_owned(),
                    }
                })?;
            entries.push(CgroupEntry {
                hierarchy_id,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            });
            Ok(())
        })?;
        if entries.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(CgroupMembership { entries })
    }

    /// Parses `/proc/<pid>/cgroup` text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<CgroupMembership, ParseError> {
        CgroupMembership::parse(text.as_bytes())
    }

    /// Reads `<root>/proc/<pid>/cgroup`.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> Result<CgroupMembership, ReadError> {
        let path = pid.path(root.as_ref(), "cgroup");
        util::read_with(&path, |bytes| CgroupMembership::parse(bytes))
    }

    /// The v1 hierarchy with the `memory` controller, if any.
    pub fn memory_v1(&self) -> Option<&CgroupEntry> {
        self.entries
            .iter()
            .find(|e| e.hierarchy_id != 0 && e.controllers.iter().any(|c| c == "memory"))
    }

    /// The v2 (unified) hierarchy entry (`0::/path`), if any.
    pub fn unified(&self) -> Option<&CgroupEntry> {
        self.entries
            .iter()
            .find(|e| e.hierarchy_id == 0 && e.controllers.is_empty())
    }
}

/// One line of `/proc/<pid>/mountinfo` (see `proc(5)`), the fields memprof
/// uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Mount {
    /// The directory of the mounted filesystem that is this mount's root.
    pub root: String,
    /// Where it is mounted, relative to the process's root.
    pub mount_point: String,
    /// The filesystem type (`cgroup`, `cgroup2`, ...).
    pub fs_type: String,
    /// The per-superblock options; for cgroup v1 they name the controllers.
    pub super_options: Vec<String>,
}

/// `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Mountinfo {
    /// The mounts, in the file's order.
    pub mounts: Vec<Mount>,
}

impl Mountinfo {
    /// Parses `/proc/<pid>/mountinfo`
    /// (`36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw`).
    /// Octal escapes (`\040` for a space) in paths are decoded.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<Mountinfo, ParseError> {
        let mut mounts = Vec::new();
        util::for_each_line(reader, |line, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            let malformed = || ParseError::Malformed {
                line,
                expected:
                    "id parent major:minor root mount-point options ... - type source options",
            };
            let fields: Vec<&str> = text.split_whitespace().collect();
            let separator = fields
                .iter()
                .skip(6)
                .position(|f| *f == "-")
                .map(|p| p + 6)
                .ok_or_else(malformed)?;
            let (Some(root), Some(mount_point), Some(fs_type)) =
                (fields.get(3), fields.get(4), fields.get(separator + 1))
            else {
                return Err(malformed());
            };
            let super_options = fields
                .get(separator + 3)
                .map(|o| o.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            mounts.push(Mount {
                root: unescape(root),
                mount_point: unescape(mount_point),
                fs_type: (*fs_type).to_owned(),
                super_options,
            });
            Ok(())
        })?;
        if mounts.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(Mountinfo { mounts })
    }

    /// Parses mountinfo text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<Mountinfo, ParseError> {
        Mountinfo::parse(text.as_bytes())
    }

    /// Reads `<root>/proc/<pid>/mountinfo`.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> Result<Mountinfo, ReadError> {
        let path = pid.path(root.as_ref(), "mountinfo");
        util::read_with(&path, |bytes| Mountinfo::parse(bytes))
    }

    /// The cgroup v1 mounts carrying `controller`.
    pub fn cgroup_v1(&self, controller: &str) -> impl Iterator<Item = &Mount> + '_ {
        let controller = controller.to_owned();
        self.mounts
            .iter()
            .filter(move |m| m.fs_type == "cgroup" && m.super_options.contains(&controller))
    }

    /// The cgroup v2 mounts.
    pub fn cgroup_v2(&self) -> impl Iterator<Item = &Mount> + '_ {
        self.mounts.iter().filter(|m| m.fs_type == "cgroup2")
    }
}

/// Decodes mountinfo's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash); anything else is kept as written.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.map(|d| d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'))) {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup version holding the memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// cgroup v1: the `memory` controller on its own hierarchy.
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

/// How the cgroup directory was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Located {
    /// A mount in mountinfo, joined with the cgroup path below its root.
    Mountinfo,
    /// A mount in mountinfo whose root is not above the cgroup path (a
    /// cgroup namespace or a container's view): the mount point itself.
    MountRoot,
    /// No usable mount: the conventional `/sys/fs/cgroup` layout.
    Conventional,
}

/// Where a process's memory cgroup is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CgroupLocation {
    /// The version holding the memory controller.
    pub version: CgroupVersion,
    /// The cgroup path, as `/proc/<pid>/cgroup` shows it.
    pub path: String,
    /// The directory holding the `memory.*` files (under the root).
    pub dir: PathBuf,
    /// How `dir` was found.
    pub located: Located,
}

impl CgroupLocation {
    /// Finds the memory cgroup of `pid` under `root`: from
    /// `/proc/<pid>/cgroup` (required) and `/proc/<pid>/mountinfo` (if it
    /// can be read), else the conventional paths.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming `/proc/<pid>/cgroup` when it cannot be read or
    /// parsed, or names neither a v1 memory hierarchy nor v2 (a `mountinfo`
    /// that cannot be read is passed over).
    pub fn find(root: impl AsRef<Path>, pid: Pid) -> Result<CgroupLocation, ReadError> {
        let root = root.as_ref();
        let membership = CgroupMembership::read(root, pid)?;
        let mounts = Mountinfo::read(root, pid).unwrap_or_default();
        CgroupLocation::resolve(root, &membership, &mounts).ok_or_else(|| {
            ReadError::parse(
                &pid.path(root, "cgroup"),
                ParseError::Missing {
                    key: "memory controller or unified hierarchy",
                },
            )
        })
    }

    /// Finds the memory cgroup directory from already-parsed files. `None`
    /// when the process is in neither a v1 memory hierarchy nor v2.
    pub fn resolve(
        root: &Path,
        membership: &CgroupMembership,
        mounts: &Mountinfo,
    ) -> Option<CgroupLocation> {
        let (version, entry, candidates, conventional): (_, _, Vec<&Mount>, Vec<&str>) =
            if let Some(entry) = membership.memory_v1() {
                (
                    CgroupVersion::V1,
                    entry,
                    mounts.cgroup_v1("memory").collect(),
                    vec!["/sys/fs/cgroup/memory"],
                )
            } else {
                let entry = membership.unified()?;
                (
                    CgroupVersion::V2,
                    entry,
                    mounts.cgroup_v2().collect(),
                    vec!["/sys/fs/cgroup", "/sys/fs/cgroup/unified"],
                )
            };
        let path = entry.path.clone();
        let below = |base: &str, rest: &str| util::join(&util::join(root, base), rest);
        // A mount whose root is at or above the cgroup path: the path below
        // the mount's root, under the mount point.
        for mount in &candidates {
            let mount_root = mount.root.trim_end_matches('/');
            if let Some(rest) = path.strip_prefix(mount_root) {
                if rest.is_empty() || rest.starts_with('/') {
                    let dir = below(&mount.mount_point, rest);
                    if dir.is_dir() {
                        return Some(CgroupLocation {
                            version,
                            path,
                            dir,
                            located: Located::Mountinfo,
                        });
                    }
                }
            }
        }
        // A mount whose root is not above the path: the process sees its own
        // cgroup as the mount's root.
        if let Some(mount) = candidates.first() {
            let dir = util::join(root, &mount.mount_point);
            if dir.is_dir() {
                return Some(CgroupLocation {
                    version,
                    path,
                    dir,
                    located: Located::MountRoot,
                });
            }
        }
        // The conventional layout. For v2 the first base that holds the
        // unified tree's files wins (`/sys/fs/cgroup` on a pure v2 system,
        // `/sys/fs/cgroup/unified` on a hybrid one).
        let dir = conventional
            .iter()
            .map(|base| below(base, &path))
            .find(|dir| dir.is_dir())
            .or_else(|| conventional.first().map(|base| below(base, &path)))?;
        Some(CgroupLocation {
            version,
            path,
            dir,
            located: Located::Conventional,
        })
    }
}

/// `memory.stat`: every key, memory amounts in bytes and event counters as
/// counts, as the kernel writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MemoryStat {
    /// Every key.
    pub entries: BTreeMap<String, u64>,
}

impl MemoryStat {
    /// Parses `memory.stat` (`name value` per line).
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<MemoryStat, ParseError> {
        util::flat_keyed(reader).map(|entries| MemoryStat { entries })
    }

    /// One key, or `None` when absent.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries.get(key).copied()
    }
}

/// cgroup v2 `memory.events`: how often each boundary was hit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemoryEvents {
    /// Reclaimed despite being under `memory.low`.
    pub low: Option<u64>,
    /// Throttled and reclaimed for going over `memory.high`.
    pub high: Option<u64>,
    /// Hit `memory.max` (allocations that had to reclaim or fail).
    pub max: Option<u64>,
    /// The OOM killer was invoked (or would have been).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer.
    pub oom_kill: Option<u64>,
    /// Group OOM kills (since Linux 5.17).
    pub oom_group_kill: Option<u64>,
}

impl MemoryEvents {
    /// Parses `memory.events`.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<MemoryEvents, ParseError> {
        let map = util::flat_keyed(reader)?;
        let get = |key: &str| map.get(key).copied();
        Ok(MemoryEvents {
            low: get("low"),
            high: get("high"),
            max: get("max"),
            oom: get("oom"),
            oom_kill: get("oom_kill"),
            oom_group_kill: get("oom_group_kill"),
        })
    }
}

/// cgroup v1 `memory.oom_control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OomControl {
    /// The OOM killer is disabled for this group (tasks hang instead).
    pub oom_kill_disable: bool,
    /// The group is out of memory right now.
    pub under_oom: bool,
    /// Processes killed by the OOM killer (since Linux 4.13).
    pub oom_kill: Option<u64>,
}

impl OomControl {
    /// Parses `memory.oom_control`.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<OomControl, ParseError> {
        let map = util::flat_keyed(reader)?;
        let flag = |key: &'static str| {
            map.get(key)
                .map(|v| *v != 0)
                .ok_or(ParseError::Missing { key })
        };
        Ok(OomControl {
            oom_kill_disable: flag("oom_kill_disable")?,
            under_oom: flag("under_oom")?,
            oom_kill: map.get("oom_kill").copied(),
        })
    }
}

/// Parses a limit file: `max` or a byte count (v1's huge "unlimited" values
/// too).
///
/// # Errors
///
/// A `ParseError` when the text is neither `max` nor a byte count.
pub fn parse_limit(bytes: &[u8]) -> Result<Limit, ParseError> {
    if String::from_utf8_lossy(bytes).trim() == "max" {
        return Ok(Limit::Unlimited);
    }
    let value = parse_number(bytes)?;
    Ok(if value >= V1_UNLIMITED_FROM {
        Limit::Unlimited
    } else {
        Limit::Bytes(value)
    })
}

/// The memory files of a cgroup v2 group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CgroupV2Memory {
    /// `memory.current`: memory charged to the group and its descendants.
    pub current_bytes: Reading<u64>,
    /// `memory.max`: the hard limit; past it the group is OOM-killed.
    pub max_bytes: Reading<Limit>,
    /// `memory.high`: the throttle limit; past it the group is reclaimed
    /// hard and slowed down.
    pub high_bytes: Reading<Limit>,
    /// `memory.low`: best-effort protection from reclaim.
    pub low_bytes: Reading<u64>,
    /// `memory.peak`: the highest `memory.current` seen (since Linux 5.19).
    pub peak_bytes: Reading<u64>,
    /// `memory.events`.
    pub events: Reading<MemoryEvents>,
    /// `memory.stat`.
    pub stat: Reading<MemoryStat>,
    /// `memory.pressure`: the group's pressure stall information.
    pub pressure: Reading<Pressure>,
    /// `memory.swap.current`.
    pub swap_current_bytes: Reading<u64>,
    /// `memory.swap.max`.
    pub swap_max_bytes: Reading<Limit>,
    /// The working set: `memory.current - inactive_file` (saturating), the
    /// figure container runtimes compare with the limit.
    pub working_set_bytes: Reading<u64>,
}

impl CgroupV2Memory {
    /// Reads the memory files in `dir`.
    pub fn read(dir: &Path) -> CgroupV2Memory {
        let current_bytes = read_number(dir, "memory.current");
        let stat = read_stat(dir);
        CgroupV2Memory {
            working_set_bytes: working_set(&current_bytes, &stat, &["inactive_file"]),
            max_bytes: read_limit(dir, "memory.max"),
            high_bytes: read_limit(dir, "memory.high"),
            low_bytes: read_number(dir, "memory.low"),
            peak_bytes: read_number(dir, "memory.peak"),
            events: util::read_with(&dir.join("memory.events"), |b| MemoryEvents::parse(b)).into(),
            pressure: Pressure::read_file(&dir.join("memory.pressure")).into(),
            swap_current_bytes: read_number(dir, "memory.swap.current"),
            swap_max_bytes: read_limit(dir, "memory.swap.max"),
            current_bytes,
            stat,
        }
    }
}

/// The memory files of a cgroup v1 memory group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CgroupV1Memory {
    /// `memory.limit_in_bytes`: the hard limit.
    pub limit_bytes: Reading<Limit>,
    /// `memory.soft_limit_in_bytes`: the reclaim target under contention.
    pub soft_limit_bytes: Reading<Limit>,
    /// `memory.usage_in_bytes`: charged memory (page cache included; the
    /// kernel may report it slightly fuzzily, see memory.rst section 5.5).
    pub usage_bytes: Reading<u64>,
    /// `memory.max_usage_in_bytes`: the highest usage seen.
    pub max_usage_bytes: Reading<u64>,
    /// `memory.failcnt`: how often usage hit the limit.
    pub failcnt: Reading<u64>,
    /// `memory.memsw.limit_in_bytes`: memory plus swap limit (only with swap
    /// accounting).
    pub memsw_limit_bytes: Reading<Limit>,
    /// `memory.memsw.usage_in_bytes`: memory plus swap usage.
    pub memsw_usage_bytes: Reading<u64>,
    /// `memory.oom_control`.
    pub oom_control: Reading<OomControl>,
    /// `memory.stat` (`total_*` keys include descendants).
    pub stat: Reading<MemoryStat>,
    /// The working set: `usage - total_inactive_file` (saturating), as
    /// container runtimes compute it.
    pub working_set_bytes: Reading<u64>,
}

impl CgroupV1Memory {
    /// Reads the memory files in `dir`.
    pub fn read(dir: &Path) -> CgroupV1Memory {
        let usage_bytes = read_number(dir, "memory.usage_in_bytes");
        let stat = read_stat(dir);
        CgroupV1Memory {
            working_set_bytes: working_set(
                &usage_bytes,
                &stat,
                &["total_inactive_file", "inactive_file"],
            ),
            limit_bytes: read_limit(dir, "memory.limit_in_bytes"),
            soft_limit_bytes: read_limit(dir, "memory.soft_limit_in_bytes"),
            max_usage_bytes: read_number(dir, "memory.max_usage_in_bytes"),
            failcnt: read_number(dir, "memory.failcnt"),
            memsw_limit_bytes: read_limit(dir, "memory.memsw.limit_in_bytes"),
            memsw_usage_bytes: read_number(dir, "memory.memsw.usage_in_bytes"),
            oom_control: util::read_with(&dir.join("memory.oom_control"), |b| OomControl::parse(b))
                .into(),
            usage_bytes,
            stat,
        }
    }
}

fn read_number(dir: &Path, file: &str) -> Reading<u64> {
    util::read_with(&dir.join(file), parse_number).into()
}

fn read_limit(dir: &Path, file: &str) -> Reading<Limit> {
    util::read_with(&dir.join(file), parse_limit).into()
}

fn read_stat(dir: &Path) -> Reading<MemoryStat> {
    util::read_with(&dir.join("memory.stat"), |b| MemoryStat::parse(b)).into()
}

/// `usage - inactive_file`, taking the first of `keys` present in `stat`.
fn working_set(usage: &Reading<u64>, stat: &Reading<MemoryStat>, keys: &[&str]) -> Reading<u64> {
    let (Some(usage), Some(stat)) = (usage.value(), stat.value()) else {
        let reason = usage.reason().or(stat.reason()).unwrap_or("");
        return Reading::unavailable(format!("working set needs usage and memory.stat: {reason}"));
    };
    match keys.iter().find_map(|k| stat.get(k)) {
        Some(inactive) => Reading::Available(usage.saturating_sub(inactive)),
        None => Reading::unavailable(format!("memory.stat has no {}", keys.join(" or "))),
    }
}

/// The memory files of the group, by version.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CgroupMemory {
    /// A cgroup v1 memory group.
    V1(CgroupV1Memory),
    /// A cgroup v2 group.
    V2(CgroupV2Memory),
}

/// A process's memory cgroup: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CgroupView {
    /// Where the group is.
    #[serde(flatten)]
    pub location: CgroupLocation,
    /// Its memory files.
    pub memory: CgroupMemory,
}

impl CgroupView {
    /// Finds the memory cgroup of `pid` under `root` and reads it.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> Result<CgroupView, ReadError> {
        let location = CgroupLocation::find(root, pid)?;
        let memory = match location.version {
            CgroupVersion::V1 => CgroupMemory::V1(CgroupV1Memory::read(&location.dir)),
            CgroupVersion::V2 => CgroupMemory::V2(CgroupV2Memory::read(&location.dir)),
        };
        Ok(CgroupView { location, memory })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HYBRID: &str = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n";
    const MOUNTS: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
50 23 8:1 /my\\040dir /mnt/with\\040space rw - ext4 /dev/sda1 rw\n";

    #[test]
    fn membership_prefers_the_v1_memory_line() {
        let m = CgroupMembership::parse_str(HYBRID).unwrap();
        assert_eq!(
            m.memory_v1().map(|e| e.path.as_str()),
            Some("/process_api/abc")
        );
        assert_eq!(m.unified().map(|e| e.path.as_str()), Some("/"));
        assert_eq!(m.entries[2].controllers, vec!["cpu", "cpuacct"]);
        let v2 = CgroupMembership::parse_str("0::/user.slice/a:b.scope\n").unwrap();
        assert!(v2.memory_v1().is_none());
        assert_eq!(
            v2.unified().map(|e| e.path.as_str()),
            Some("/user.slice/a:b.scope")
        );
        assert!(CgroupMembership::parse_str("x:memory:/\n").is_err());
        assert!(CgroupMembership::parse_str("4:memory\n").is_err());
        assert!(CgroupMembership::parse_str("").is_err());
    }

    #[test]
    fn mountinfo_finds_cgroup_mounts_and_unescapes() {
        let m = Mountinfo::parse_str(MOUNTS).unwrap();
        let v1: Vec<_> = m.cgroup_v1("memory").collect();
        assert_eq!(v1.len(), 1);
        assert_eq!(v1[0].mount_point, "/sys/fs/cgroup/memory");
        assert_eq!(m.cgroup_v2().count(), 1);
        assert_eq!(m.mounts[3].root, "/my dir");
        assert_eq!(m.mounts[3].mount_point, "/mnt/with space");
        assert!(Mountinfo::parse_str("1 2 3:4 / /x rw\n").is_err());
        assert_eq!(unescape("a\\134b\\9"), "a\\b\\9");
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(b"max\n"), Ok(Limit::Unlimited));
        assert_eq!(parse_limit(b"9223372036854771712\n"), Ok(Limit::Unlimited));
        assert_eq!(parse_limit(b"536870912\n"), Ok(Limit::Bytes(536_870_912)));
        assert!(parse_limit(b"lots\n").is_err());
    }

    #[test]
    fn oom_control_and_events() {
        let o =
            OomControl::parse("oom_kill_disable 0\nunder_oom 1\noom_kill 3\n".as_bytes()).unwrap();
        assert!(!o.oom_kill_disable && o.under_oom);
        assert_eq!(o.oom_kill, Some(3));
        assert!(OomControl::parse("under_oom 0\n".as_bytes()).is_err());
        let e =
            MemoryEvents::parse("low 0\nhigh 5\nmax 2\noom 1\noom_kill 1\n".as_bytes()).unwrap();
        assert_eq!(
            (e.high, e.oom_kill, e.oom_group_kill),
            (Some(5), Some(1), None)
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = CgroupMembership::parse(&bytes[..]);
            let _ = Mountinfo::parse(&bytes[..]);
            let _ = MemoryStat::parse(&bytes[..]);
            let _ = MemoryEvents::parse(&bytes[..]);
            let _ = OomControl::parse(&bytes[..]);
            let _ = parse_limit(&bytes);
            let _ = unescape(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_truncation(cut in 0usize..400, big in any::<u64>()) {
            let stat = format!("cache {big}\ntotal_inactive_file {big}\n");
            let _ = CgroupMembership::parse(&HYBRID.as_bytes()[..cut.min(HYBRID.len())]);
            let _ = Mountinfo::parse(&MOUNTS.as_bytes()[..cut.min(MOUNTS.len())]);
            let _ = MemoryStat::parse(&stat.as_bytes()[..cut.min(stat.len())]);
            let parsed = MemoryStat::parse(stat.as_bytes()).unwrap();
            prop_assert_eq!(parsed.get("cache"), Some(big));
            let ws = working_set(&Reading::Available(1), &Reading::Available(parsed), &["total_inactive_file"]);
            prop_assert_eq!(ws, Reading::Available(1u64.saturating_sub(big)));
        }
    }
}
