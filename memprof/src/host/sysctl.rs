//! The vm sysctls that shape reclaim and overcommit
//! (`/proc/sys/vm/*`, see `Documentation/admin-guide/sysctl/vm.rst`), and the
//! transparent huge page modes (`/sys/kernel/mm/transparent_hugepage/*`, see
//! `Documentation/admin-guide/mm/transhuge.rst`).

use std::path::Path;

use serde::Serialize;

use super::error::ParseError;
use super::reading::Reading;
use super::util;

/// The vm sysctls, each read on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VmSysctls {
    /// `vm.min_free_kbytes`, in bytes: the free memory the kernel keeps back
    /// (its `min` watermark).
    pub min_free_bytes: Reading<u64>,
    /// `vm.overcommit_memory`: 0 heuristic, 1 always, 2 never (strict).
    pub overcommit_memory: Reading<u64>,
    /// `vm.overcommit_ratio`: percent of RAM committable under mode 2.
    pub overcommit_ratio: Reading<u64>,
    /// `vm.swappiness`: 0..=200, how readily anonymous memory is swapped.
    pub swappiness: Reading<u64>,
    /// `vm.watermark_scale_factor`: kswapd's watermark spacing, in
    /// ten-thousandths of memory.
    pub watermark_scale_factor: Reading<u64>,
}

impl VmSysctls {
    /// Reads the sysctls under `<root>/proc/sys/vm/`.
    pub fn read(root: impl AsRef<Path>) -> VmSysctls {
        let root = root.as_ref();
        let get = |name: &str| -> Reading<u64> {
            let path = util::join(root, &format!("/proc/sys/vm/{name}"));
            util::read_with(&path, parse_number).into()
        };
        VmSysctls {
            min_free_bytes: get("min_free_kbytes").map(util::kib),
            overcommit_memory: get("overcommit_memory"),
            overcommit_ratio: get("overcommit_ratio"),
            swappiness: get("swappiness"),
            watermark_scale_factor: get("watermark_scale_factor"),
        }
    }
}

/// Parses a file holding one decimal number (a sysctl, a cgroup counter).
pub(crate) fn parse_number(bytes: &[u8]) -> Result<u64, ParseError> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    util::number(text, 1, "value")
}

/// Transparent huge page settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Thp {
    /// `enabled`: `always`, `madvise` or `never`.
    pub enabled: Reading<String>,
    /// `defrag`: `always`, `defer`, `defer+madvise`, `madvise` or `never`.
    pub defrag: Reading<String>,
}

impl Thp {
    /// Reads `<root>/sys/kernel/mm/transparent_hugepage/{enabled,defrag}`.
    pub fn read(root: impl AsRef<Path>) -> Thp {
        let root = root.as_ref();
        let get = |name: &str| -> Reading<String> {
            let path = util::join(root, &format!("/sys/kernel/mm/transparent_hugepage/{name}"));
            util::read_with(&path, |bytes| parse_choice(&String::from_utf8_lossy(bytes))).into()
        };
        Thp {
            enabled: get("enabled"),
            defrag: get("defrag"),
        }
    }
}

/// The bracketed choice of a sysfs selector: `"always [madvise] never"` is
/// `madvise`. An error when no single word is bracketed.
///
/// # Errors
///
/// A `ParseError` when no single word is bracketed.
pub fn parse_choice(text: &str) -> Result<String, ParseError> {
    let mut chosen = text
        .split_whitespace()
        .filter_map(|word| word.strip_prefix('[').and_then(|w| w.strip_suffix(']')));
    match (chosen.next(), chosen.next()) {
        (Some(choice), None) if !choice.is_empty() => Ok(choice.to_owned()),
        _ => Err(ParseError::Missing {
            key: "a [bracketed] choice",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_the_bracketed_choice() {
        assert_eq!(parse_choice("always [madvise] never\n").unwrap(), "madvise");
        assert_eq!(
            parse_choice("always defer [defer+madvise] madvise never").unwrap(),
            "defer+madvise"
        );
        assert!(parse_choice("always madvise never").is_err());
        assert!(parse_choice("[always] [never]").is_err());
        assert!(parse_choice("[]").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"60\n"), Ok(60));
        assert!(parse_number(b"").is_err());
        assert!(parse_number(b"-1\n").is_err());
        assert!(parse_number(b"1 2\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_number(&bytes);
            let _ = parse_choice(&String::from_utf8_lossy(&bytes));
        }
    }
}
