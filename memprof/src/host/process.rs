//! One process's memory: `/proc/<pid>/status`, `/proc/<pid>/smaps_rollup`
//! and `/proc/<pid>/statm` (see `Documentation/filesystems/proc.rst`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::error::{ParseError, ReadError};
use super::util;

/// Which process to read: `/proc/self` or `/proc/<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pid {
    /// The calling process (`/proc/self`).
    #[default]
    Current,
    /// A process id.
    Id(u32),
}

impl Pid {
    /// `<root>/proc/<pid>/<file>`.
    pub fn path(self, root: &Path, file: &str) -> PathBuf {
        util::join(root, &format!("/proc/{self}/{file}"))
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pid::Current => f.write_str("self"),
            Pid::Id(id) => write!(f, "{id}"),
        }
    }
}

impl Serialize for Pid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Pid::Current => serializer.serialize_str("self"),
            Pid::Id(id) => serializer.serialize_u32(*id),
        }
    }
}

impl From<u32> for Pid {
    fn from(id: u32) -> Pid {
        Pid::Id(id)
    }
}

/// The memory lines of `/proc/<pid>/status`, in bytes. A field is `None`
/// when absent (kernel threads have no `Vm*` lines; `RssAnon` and friends
/// appeared in Linux 4.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProcStatus {
    /// `Name`: the command name (`comm`, at most 15 bytes).
    pub name: Option<String>,
    /// The real user id (first field of `Uid`).
    pub uid: Option<u32>,
    /// `VmRSS`: resident set size.
    pub vm_rss_bytes: Option<u64>,
    /// `VmHWM`: peak resident set size.
    pub vm_hwm_bytes: Option<u64>,
    /// `RssAnon`: resident anonymous memory.
    pub rss_anon_bytes: Option<u64>,
    /// `RssFile`: resident file mappings.
    pub rss_file_bytes: Option<u64>,
    /// `RssShmem`: resident shared memory.
    pub rss_shmem_bytes: Option<u64>,
    /// `VmSwap`: anonymous memory swapped out.
    pub vm_swap_bytes: Option<u64>,
    /// `VmSize`: virtual memory size.
    pub vm_size_bytes: Option<u64>,
    /// `VmPeak`: peak virtual memory size.
    pub vm_peak_bytes: Option<u64>,
    /// `VmData`: data, heap and private anonymous mappings (what
    /// `RLIMIT_DATA` limits).
    pub vm_data_bytes: Option<u64>,
    /// `Threads`.
    pub threads: Option<u64>,
}

impl ProcStatus {
    /// Parses `/proc/<pid>/status`. Lines other than the memory ones, `Name`,
    /// `Uid` and `Threads` are skipped; a memory line whose value is not a
    /// number is an error.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<ProcStatus, ParseError> {
        let mut status = ProcStatus::default();
        let mut recognised = false;
        util::for_each_line(reader, |line, text| {
            let Some((key, value)) = text.split_once(':') else {
                return Ok(());
            };
            let value = value.trim();
            let slot = match key {
                "Name" => {
                    status.name = Some(value.to_owned());
                    recognised = true;
                    return Ok(());
                }
                "Uid" => {
                    let first = value.split_whitespace().next().unwrap_or("");
                    let uid = util::number(first, line, key)?;
                    status.uid = Some(u32::try_from(uid).map_err(|_| ParseError::BadNumber {
                        line,
                        field: key.to_owned(),
                    })?);
                    recognised = true;
                    return Ok(());
                }
                "Threads" => {
                    status.threads = Some(util::number(value, line, key)?);
                    recognised = true;
                    return Ok(());
                }
                "VmRSS" => &mut status.vm_rss_bytes,
                "VmHWM" => &mut status.vm_hwm_bytes,
                "RssAnon" => &mut status.rss_anon_bytes,
                "RssFile" => &mut status.rss_file_bytes,
                "RssShmem" => &mut status.rss_shmem_bytes,
                "VmSwap" => &mut status.vm_swap_bytes,
                "VmSize" => &mut status.vm_size_bytes,
                "VmPeak" => &mut status.vm_peak_bytes,
                "VmData" => &mut status.vm_data_bytes,
                _ => return Ok(()),
            };
            *slot = Some(kb_value(value, line, key)?);
            recognised = true;
            Ok(())
        })?;
        if !recognised {
            return Err(ParseError::Empty);
        }
        Ok(status)
    }

    /// Parses status text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<ProcStatus, ParseError> {
        ProcStatus::parse(text.as_bytes())
    }

    /// Reads `<root>/proc/<pid>/status`.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> Result<ProcStatus, ReadError> {
        let path = pid.path(root.as_ref(), "status");
        util::read_with(&path, |bytes| ProcStatus::parse(bytes))
    }
}

/// `"123 kB"` to bytes.
fn kb_value(value: &str, line: usize, key: &str) -> Result<u64, ParseError> {
    let number = value.strip_suffix("kB").unwrap_or(value).trim();
    util::number(number, line, key).map(util::kib)
}

/// `/proc/<pid>/smaps_rollup` (since Linux 4.14): the sums of
/// `/proc/<pid>/smaps` over all mappings, in bytes.
///
/// PSS (proportional set size) divides each shared page among the processes
/// mapping it, so the PSS of all processes adds up to the memory they use.
/// USS (unique set size) is `Private_Clean + Private_Dirty`: what would be
/// freed if the process exited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SmapsRollup {
    /// Every `Key: N kB` line, in bytes.
    pub entries: BTreeMap<String, u64>,
    /// `Rss`.
    pub rss_bytes: Option<u64>,
    /// `Pss`.
    pub pss_bytes: Option<u64>,
    /// `Pss_Anon` (since Linux 5.8).
    pub pss_anon_bytes: Option<u64>,
    /// `Pss_File` (since Linux 5.8).
    pub pss_file_bytes: Option<u64>,
    /// `Pss_Shmem` (since Linux 5.8).
    pub pss_shmem_bytes: Option<u64>,
    /// `Shared_Clean`.
    pub shared_clean_bytes: Option<u64>,
    /// `Shared_Dirty`.
    pub shared_dirty_bytes: Option<u64>,
    /// `Private_Clean`.
    pub private_clean_bytes: Option<u64>,
    /// `Private_Dirty`.
    pub private_dirty_bytes: Option<u64>,
    /// `AnonHugePages`: anonymous memory backed by transparent huge pages.
    pub anon_huge_pages_bytes: Option<u64>,
    /// `Swap`.
    pub swap_bytes: Option<u64>,
    /// `SwapPss`: the proportional share of swap.
    pub swap_pss_bytes: Option<u64>,
}

impl SmapsRollup {
    /// Parses `/proc/<pid>/smaps_rollup`. The first line (the address range
    /// and `[rollup]`) is skipped; so is any other line not shaped
    /// `Key: N kB`. An input without an `Rss` line is an error: a kernel
    /// thread's file is empty.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<SmapsRollup, ParseError> {
        let mut entries = BTreeMap::new();
        util::for_each_line(reader, |line, text| {
            if let Some(pair) = util::key_value_kb(text, line) {
                let (key, value) = pair?;
                entries.insert(key.to_owned(), value);
            }
            Ok(())
        })?;
        if !entries.contains_key("Rss") {
            return Err(ParseError::Missing { key: "Rss" });
        }
        let get = |key: &str| entries.get(key).copied();
        Ok(SmapsRollup {
            rss_bytes: get("Rss"),
            pss_bytes: get("Pss"),
            pss_anon_bytes: get("Pss_Anon"),
            pss_file_bytes: get("Pss_File"),
            pss_shmem_bytes: get("Pss_Shmem"),
            shared_clean_bytes: get("Shared_Clean"),
            shared_dirty_bytes: get("Shared_Dirty"),
            private_clean_bytes: get("Private_Clean"),
            private_dirty_bytes: get("Private_Dirty"),
            anon_huge_pages_bytes: get("AnonHugePages"),
            swap_bytes: get("Swap"),
            swap_pss_bytes: get("SwapPss"),
            entries,
        })
    }

    /// Parses smaps_rollup text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<SmapsRollup, ParseError> {
        SmapsRollup::parse(text.as_bytes())
    }

    /// Reads `<root>/proc/<pid>/smaps_rollup`.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> Result<SmapsRollup, ReadError> {
        let path = pid.path(root.as_ref(), "smaps_rollup");
        util::read_with(&path, |bytes| SmapsRollup::parse(bytes))
    }

    /// USS: `Private_Clean + Private_Dirty` (0 for absent lines).
    pub fn uss_bytes(&self) -> u64 {
        self.private_clean_bytes
            .unwrap_or(0)
            .saturating_add(self.private_dirty_bytes.unwrap_or(0))
    }
}

/// `/proc/<pid>/statm`: seven page counts, here in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Statm {
    /// Total program size (as `VmSize`).
    pub size_bytes: u64,
    /// Resident set size (as `VmRSS`).
    pub resident_bytes: u64,
    /// Resident shared pages, i.e. file-backed and shared memory
    /// (`RssFile + RssShmem`).
    pub shared_bytes: u64,
    /// Text (code).
    pub text_bytes: u64,
    /// Data and stack (as `VmData + VmStk`).
    pub data_bytes: u64,
}

impl Statm {
    /// Parses `/proc/<pid>/statm` (`size resident shared text lib data dt`,
    /// in pages of `page_size_bytes`; `lib` and `dt` are always 0 and are
    /// dropped).
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R, page_size_bytes: u64) -> Result<Statm, ParseError> {
        let mut statm = None;
        util::for_each_line(reader, |line, text| {
            if statm.is_some() || text.trim().is_empty() {
                return Ok(());
            }
            let fields: Vec<&str> = text.split_whitespace().collect();
            if fields.len() != 7 {
                return Err(ParseError::Malformed {
                    line,
                    expected: "seven page counts",
                });
            }
            let pages = |i: usize, name: &str| -> Result<u64, ParseError> {
                let value = fields.get(i).copied().unwrap_or("");
                util::number(value, line, name).map(|p| p.saturating_mul(page_size_bytes))
            };
            statm = Some(Statm {
                size_bytes: pages(0, "size")?,
                resident_bytes: pages(1, "resident")?,
                shared_bytes: pages(2, "shared")?,
                text_bytes: pages(3, "text")?,
                data_bytes: pages(5, "data")?,
            });
            Ok(())
        })?;
        statm.ok_or(ParseError::Empty)
    }

    /// Parses statm text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str, page_size_bytes: u64) -> Result<Statm, ParseError> {
        Statm::parse(text.as_bytes(), page_size_bytes)
    }

    /// Reads `<root>/proc/<pid>/statm`, with this system's page size.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>, pid: Pid) -> Result<Statm, ReadError> {
        let path = pid.path(root.as_ref(), "statm");
        let page_size = util::page_size();
        util::read_with(&path, |bytes| Statm::parse(bytes, page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATUS: &str = "Name:\tmemprof-test\nUmask:\t0022\nState:\tR (running)\n\
Uid:\t1000\t1000\t1000\t1000\nVmPeak:\t   10000 kB\nVmSize:\t    9000 kB\n\
VmHWM:\t    3000 kB\nVmRSS:\t    2500 kB\nRssAnon:\t    1500 kB\nRssFile:\t     900 kB\n\
RssShmem:\t     100 kB\nVmData:\t    4000 kB\nVmSwap:\t       0 kB\nThreads:\t3\n";

    const ROLLUP: &str =
        "55d14253c000-7fff1a75e000 ---p 00000000 00:00 0                          [rollup]\n\
Rss:                1668 kB\nPss:                 517 kB\nPss_Anon:            112 kB\n\
Private_Clean:        80 kB\nPrivate_Dirty:       112 kB\nSwap:                  0 kB\n";

    #[test]
    fn parses_status() {
        let s = ProcStatus::parse_str(STATUS).unwrap();
        assert_eq!(s.name.as_deref(), Some("memprof-test"));
        assert_eq!(s.uid, Some(1000));
        assert_eq!(s.vm_rss_bytes, Some(2500 * 1024));
        assert_eq!(s.rss_anon_bytes, Some(1500 * 1024));
        assert_eq!(s.vm_data_bytes, Some(4000 * 1024));
        assert_eq!(s.threads, Some(3));
        assert!(ProcStatus::parse_str("VmRSS: many kB\n").is_err());
        assert!(ProcStatus::parse_str("nothing here\n").is_err());
    }

    #[test]
    fn parses_rollup() {
        let r = SmapsRollup::parse_str(ROLLUP).unwrap();
        assert_eq!(r.rss_bytes, Some(1668 * 1024));
        assert_eq!(r.pss_anon_bytes, Some(112 * 1024));
        assert_eq!(r.uss_bytes(), 192 * 1024);
        assert_eq!(r.pss_file_bytes, None);
        assert!(SmapsRollup::parse_str("").is_err());
        assert!(SmapsRollup::parse_str("Rss: x kB\n").is_err());
    }

    #[test]
    fn parses_statm() {
        let s = Statm::parse_str("765 417 389 5 0 123 0\n", 4096).unwrap();
        assert_eq!(s.size_bytes, 765 * 4096);
        assert_eq!(s.resident_bytes, 417 * 4096);
        assert_eq!(s.data_bytes, 123 * 4096);
        assert!(Statm::parse_str("1 2 3\n", 4096).is_err());
        assert!(Statm::parse_str("", 4096).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ProcStatus::parse(&bytes[..]);
            let _ = SmapsRollup::parse(&bytes[..]);
            let _ = Statm::parse(&bytes[..], 4096);
        }

        #[test]
        fn never_panics_on_truncation_or_huge(cut in 0usize..400, big in any::<u64>()) {
            let status = format!("{STATUS}VmSwap: {big} kB\n");
            let rollup = format!("{ROLLUP}Private_Dirty: {big} kB\n");
            let statm = format!("{big} {big} 1 1 0 {big} 0\n");
            let _ = ProcStatus::parse(&status.as_bytes()[..cut.min(status.len())]);
            let _ = SmapsRollup::parse(&rollup.as_bytes()[..cut.min(rollup.len())]);
            let _ = Statm::parse(&statm.as_bytes()[..cut.min(statm.len())], u64::MAX);
            let r = SmapsRollup::parse_str(&rollup).unwrap();
            prop_assert_eq!(r.uss_bytes(), (80u64 * 1024).saturating_add(big.saturating_mul(1024)));
        }
    }
}
