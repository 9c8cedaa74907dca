//! `/proc/meminfo`: the machine's memory, every key kept.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use super::error::{ParseError, ReadError};
use super::util;

/// `/proc/meminfo`, in bytes.
///
/// Every line is kept in [`Meminfo::entries`]; the common ones are also typed
/// fields. Lines in `kB` are KiB and are converted to bytes (saturating);
/// lines without a unit (`HugePages_Total`, `HugePages_Free`, ...) are counts
/// and kept as they are. See `Documentation/filesystems/proc.rst`,
/// section "meminfo". A field is `None` when this kernel does not report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Meminfo {
    /// Every key as the kernel names it: bytes for `kB` lines, counts otherwise.
    pub entries: BTreeMap<String, u64>,
    /// `MemTotal`: usable RAM.
    pub mem_total_bytes: Option<u64>,
    /// `MemFree`: RAM nobody uses, not even the page cache.
    pub mem_free_bytes: Option<u64>,
    /// `MemAvailable`: the kernel's estimate of memory available to start new
    /// applications without swapping (since Linux 3.14).
    pub mem_available_bytes: Option<u64>,
    /// `Buffers`.
    pub buffers_bytes: Option<u64>,
    /// `Cached`: the page cache (without swap cache).
    pub cached_bytes: Option<u64>,
    /// `SwapCached`.
    pub swap_cached_bytes: Option<u64>,
    /// `Active`.
    pub active_bytes: Option<u64>,
    /// `Inactive`.
    pub inactive_bytes: Option<u64>,
    /// `SwapTotal`.
    pub swap_total_bytes: Option<u64>,
    /// `SwapFree`.
    pub swap_free_bytes: Option<u64>,
    /// `Dirty`.
    pub dirty_bytes: Option<u64>,
    /// `AnonPages`: anonymous memory mapped into page tables.
    pub anon_pages_bytes: Option<u64>,
    /// `Mapped`.
    pub mapped_bytes: Option<u64>,
    /// `Shmem`: shared memory and tmpfs.
    pub shmem_bytes: Option<u64>,
    /// `Slab`: kernel slab caches.
    pub slab_bytes: Option<u64>,
    /// `SReclaimable`: the part of `Slab` that may be reclaimed.
    pub s_reclaimable_bytes: Option<u64>,
    /// `SUnreclaim`: the part of `Slab` that cannot be reclaimed.
    pub s_unreclaim_bytes: Option<u64>,
    /// `KernelStack`.
    pub kernel_stack_bytes: Option<u64>,
    /// `PageTables`.
    pub page_tables_bytes: Option<u64>,
    /// `CommitLimit`: what may be committed under `overcommit_memory = 2`.
    pub commit_limit_bytes: Option<u64>,
    /// `Committed_AS`: memory committed to all processes.
    pub committed_as_bytes: Option<u64>,
    /// `VmallocUsed`.
    pub vmalloc_used_bytes: Option<u64>,
    /// `AnonHugePages`: anonymous transparent huge pages.
    pub anon_huge_pages_bytes: Option<u64>,
    /// `HugePages_Total`: the hugetlb pool size (a count of huge pages).
    pub huge_pages_total: Option<u64>,
    /// `HugePages_Free`: free huge pages in the pool (a count).
    pub huge_pages_free: Option<u64>,
    /// `HugePages_Rsvd`: reserved but not yet allocated huge pages (a count).
    pub huge_pages_rsvd: Option<u64>,
    /// `HugePages_Surp`: surplus huge pages (a count).
    pub huge_pages_surp: Option<u64>,
    /// `Hugepagesize`: the default huge page size.
    pub hugepagesize_bytes: Option<u64>,
    /// `Hugetlb`: memory held by huge pages of all sizes (since Linux 4.15).
    pub hugetlb_bytes: Option<u64>,
}

impl Meminfo {
    /// Parses the text of `/proc/meminfo`.
    ///
    /// A line that is not `Key: number [kB]` is an error, and so is an input
    /// with no line at all.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<Meminfo, ParseError> {
        let mut entries = BTreeMap::new();
        util::for_each_line(reader, |line, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            let (key, value) =
                util::key_value_kb(text, line).unwrap_or(Err(ParseError::Malformed {
                    line,
                    expected: "Key: value [kB]",
                }))?;
            entries.insert(key.to_owned(), value);
            Ok(())
        })?;
        if entries.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(Meminfo::from_entries(entries))
    }

    /// Parses `/proc/meminfo` text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<Meminfo, ParseError> {
        Meminfo::parse(text.as_bytes())
    }

    /// Reads `<root>/proc/meminfo`.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>) -> Result<Meminfo, ReadError> {
        let path = util::join(root.as_ref(), "/proc/meminfo");
        util::read_with(&path, |bytes| Meminfo::parse(bytes))
    }

    fn from_entries(entries: BTreeMap<String, u64>) -> Meminfo {
        let get = |key: &str| entries.get(key).copied();
        Meminfo {
            mem_total_bytes: get("MemTotal"),
            mem_free_bytes: get("MemFree"),
            mem_available_bytes: get("MemAvailable"),
            buffers_bytes: get("Buffers"),
            cached_bytes: get("Cached"),
            swap_cached_bytes: get("SwapCached"),
            active_bytes: get("Active"),
            inactive_bytes: get("Inactive"),
            swap_total_bytes: get("SwapTotal"),
            swap_free_bytes: get("SwapFree"),
            dirty_bytes: get("Dirty"),
            anon_pages_bytes: get("AnonPages"),
            mapped_bytes: get("Mapped"),
            shmem_bytes: get("Shmem"),
            slab_bytes: get("Slab"),
            s_reclaimable_bytes: get("SReclaimable"),
            s_unreclaim_bytes: get("SUnreclaim"),
            kernel_stack_bytes: get("KernelStack"),
            page_tables_bytes: get("PageTables"),
            commit_limit_bytes: get("CommitLimit"),
            committed_as_bytes: get("Committed_AS"),
            vmalloc_used_bytes: get("VmallocUsed"),
            anon_huge_pages_bytes: get("AnonHugePages"),
            huge_pages_total: get("HugePages_Total"),
            huge_pages_free: get("HugePages_Free"),
            huge_pages_rsvd: get("HugePages_Rsvd"),
            huge_pages_surp: get("HugePages_Surp"),
            hugepagesize_bytes: get("Hugepagesize"),
            hugetlb_bytes: get("Hugetlb"),
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "MemTotal:       16318480 kB\n\
MemFree:          812344 kB\n\
MemAvailable:    9876543 kB\n\
HugePages_Total:       4\n\
Hugepagesize:       2048 kB\n\
DirectMap1G:    18446744073709551615 kB\n";

    #[test]
    fn parses_bytes_and_counts() {
        let m = Meminfo::parse_str(SAMPLE).unwrap();
        assert_eq!(m.mem_total_bytes, Some(16_318_480 * 1024));
        assert_eq!(m.mem_free_bytes, Some(812_344 * 1024));
        assert_eq!(m.huge_pages_total, Some(4));
        assert_eq!(m.hugepagesize_bytes, Some(2 * 1024 * 1024));
        assert_eq!(m.entries.get("DirectMap1G"), Some(&u64::MAX));
        assert_eq!(m.swap_total_bytes, None);
    }

    #[test]
    fn refuses_malformed_and_empty() {
        assert_eq!(Meminfo::parse_str(""), Err(ParseError::Empty));
        assert!(matches!(
            Meminfo::parse_str("MemTotal: lots kB\n"),
            Err(ParseError::BadNumber { line: 1, .. })
        ));
        assert!(matches!(
            Meminfo::parse_str("MemTotal: 1 kB\nnonsense\n"),
            Err(ParseError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            Meminfo::parse_str("MemTotal: 1 MB\n"),
            Err(ParseError::Malformed { line: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Meminfo::parse(&bytes[..]);
        }

        #[test]
        fn never_panics_on_truncation(cut in 0usize..200, value in any::<u64>()) {
            let text = format!("{SAMPLE}Slab: {value} kB\n");
            let cut = cut.min(text.len());
            let _ = Meminfo::parse(&text.as_bytes()[..cut]);
            let m = Meminfo::parse_str(&text).unwrap();
            prop_assert_eq!(m.slab_bytes, Some(value.saturating_mul(1024)));
        }
    }
}
