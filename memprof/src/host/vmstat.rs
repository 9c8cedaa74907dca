//! `/proc/vmstat`: the kernel's memory event counters, and rates between two
//! readings as `vmstat` and `sar -B` compute them.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::{ParseError, ReadError};
use super::util;

/// `/proc/vmstat`: every counter, as the kernel names it.
///
/// Most are event counts since boot (`pgmajfault`, `oom_kill`); the `nr_*`
/// keys are current page counts. Pages are base pages
/// (see [`page_size_bytes`](super::page_size_bytes)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Vmstat {
    /// Every counter.
    pub counters: BTreeMap<String, u64>,
}

impl Vmstat {
    /// Parses the text of `/proc/vmstat` (`name value` per line).
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse<R: BufRead>(reader: R) -> Result<Vmstat, ParseError> {
        util::flat_keyed(reader).map(|counters| Vmstat { counters })
    }

    /// Parses `/proc/vmstat` text held in a string.
    ///
    /// # Errors
    ///
    /// A `ParseError` naming the line (or value) that is not in the expected
    /// form.
    pub fn parse_str(text: &str) -> Result<Vmstat, ParseError> {
        Vmstat::parse(text.as_bytes())
    }

    /// Reads `<root>/proc/vmstat`.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>) -> Result<Vmstat, ReadError> {
        let path = util::join(root.as_ref(), "/proc/vmstat");
        util::read_with(&path, |bytes| Vmstat::parse(bytes))
    }

    /// One counter, or `None` when this kernel does not have it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.counters.get(key).copied()
    }

    /// One counter, 0 when absent.
    fn count(&self, key: &str) -> u64 {
        self.get(key).unwrap_or(0)
    }

    /// The sum of the counters whose names `keep` accepts (saturating).
    fn sum(&self, keep: impl Fn(&str) -> bool) -> u64 {
        self.counters
            .iter()
            .filter(|(k, _)| keep(k))
            .fold(0u64, |sum, (_, v)| sum.saturating_add(*v))
    }

    /// Direct reclaim stalls: `allocstall_<zone>` summed (one `allocstall`
    /// counter before Linux 4.10).
    pub fn allocstall(&self) -> u64 {
        self.sum(|k| k == "allocstall" || k.starts_with("allocstall_"))
    }

    /// Pages reclaimed: `pgsteal_kswapd`, `pgsteal_direct`,
    /// `pgsteal_khugepaged`, `pgsteal_proactive` (or their per-zone forms on
    /// old kernels). `pgsteal_anon`/`pgsteal_file` split the same pages by
    /// type, so they are left out rather than counted twice.
    pub fn pgsteal(&self) -> u64 {
        self.sum(|k| k.starts_with("pgsteal_") && !matches!(k, "pgsteal_anon" | "pgsteal_file"))
    }

    /// Pages scanned for reclaim, by the same rule as [`Vmstat::pgsteal`];
    /// `pgscan_direct_throttle` counts throttling events, not pages, and is
    /// left out too.
    pub fn pgscan(&self) -> u64 {
        self.sum(|k| {
            k.starts_with("pgscan_")
                && !matches!(k, "pgscan_anon" | "pgscan_file" | "pgscan_direct_throttle")
        })
    }
}

/// A [`Vmstat`] with the monotonic instant it was read, for rates.
#[derive(Debug, Clone)]
pub struct VmstatSample {
    /// The counters.
    pub vmstat: Vmstat,
    /// When they were read.
    pub taken: Instant,
}

impl VmstatSample {
    /// Reads `<root>/proc/vmstat` and notes the time.
    ///
    /// # Errors
    ///
    /// A `ReadError` naming the file when it cannot be read (it is missing, not
    /// permitted, or the process has exited) or does not parse.
    pub fn read(root: impl AsRef<Path>) -> Result<VmstatSample, ReadError> {
        let vmstat = Vmstat::read(root)?;
        Ok(VmstatSample {
            vmstat,
            taken: Instant::now(),
        })
    }
}

/// Rates between two [`Vmstat`] readings.
///
/// Counters are differences over the interval; a counter that went backwards
/// (a reset) counts as 0. Rates are per second of the interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VmstatRates {
    /// The interval the rates cover.
    pub interval_seconds: f64,
    /// Swapped in, KiB/s: `pswpin` pages times page size / 1024 per second,
    /// as `vmstat`'s `si` column.
    pub swap_in_kib_per_sec: f64,
    /// Swapped out, KiB/s, as `vmstat`'s `so` column (from `pswpout`).
    pub swap_out_kib_per_sec: f64,
    /// Major page faults (read from disk) per second.
    pub pgmajfault_per_sec: f64,
    /// All page faults per second.
    pub pgfault_per_sec: f64,
    /// Direct reclaim stalls per second ([`Vmstat::allocstall`]).
    pub allocstall_per_sec: f64,
    /// Direct compaction stalls per second.
    pub compact_stall_per_sec: f64,
    /// Failed direct compactions per second.
    pub compact_fail_per_sec: f64,
    /// Successful direct compactions per second.
    pub compact_success_per_sec: f64,
    /// OOM kills during the interval (a count, not a rate: any is news).
    pub oom_kills: u64,
    /// Transparent huge page faults that fell back to base pages, per second.
    pub thp_fault_fallback_per_sec: f64,
    /// Transparent huge pages allocated at fault time, per second.
    pub thp_fault_alloc_per_sec: f64,
    /// Pages scanned for reclaim per second ([`Vmstat::pgscan`]).
    pub pgscan_per_sec: f64,
    /// Pages reclaimed per second ([`Vmstat::pgsteal`]).
    pub pgsteal_per_sec: f64,
    /// Reclaim efficiency: pages reclaimed / pages scanned over the interval,
    /// as `sar -B`'s `%vmeff` (a fraction here). `None` when nothing was
    /// scanned.
    pub reclaim_efficiency: Option<f64>,
}

impl VmstatRates {
    /// Rates from `before` to `after` over `interval`, with pages of
    /// `page_size_bytes`. `None` for an empty interval.
    pub fn between(
        before: &Vmstat,
        after: &Vmstat,
        interval: Duration,
        page_size_bytes: u64,
    ) -> Option<VmstatRates> {
        let seconds = interval.as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let delta = |key: &str| after.count(key).saturating_sub(before.count(key));
        let rate = |count: u64| count as f64 / seconds;
        let kib_rate = |pages: u64| pages as f64 * page_size_bytes as f64 / 1024.0 / seconds;
        let scanned = after.pgscan().saturating_sub(before.pgscan());
        let stolen = after.pgsteal().saturating_sub(before.pgsteal());
        Some(VmstatRates {
            interval_seconds: seconds,
            swap_in_kib_per_sec: kib_rate(delta("pswpin")),
            swap_out_kib_per_sec: kib_rate(delta("pswpout")),
            pgmajfault_per_sec: rate(delta("pgmajfault")),
            pgfault_per_sec: rate(delta("pgfault")),
            allocstall_per_sec: rate(after.allocstall().saturating_sub(before.allocstall())),
            compact_stall_per_sec: rate(delta("compact_stall")),
            compact_fail_per_sec: rate(delta("compact_fail")),
            compact_success_per_sec: rate(delta("compact_success")),
            oom_kills: delta("oom_kill"),
            thp_fault_fallback_per_sec: rate(delta("thp_fault_fallback")),
            thp_fault_alloc_per_sec: rate(delta("thp_fault_alloc")),
            pgscan_per_sec: rate(scanned),
            pgsteal_per_sec: rate(stolen),
            reclaim_efficiency: (scanned > 0).then(|| stolen as f64 / scanned as f64),
        })
    }

    /// Rates between two timed samples, with this system's page size. `None`
    /// when `after` was not taken after `before`.
    pub fn from_samples(before: &VmstatSample, after: &VmstatSample) -> Option<VmstatRates> {
        let interval = after.taken.checked_duration_since(before.taken)?;
        VmstatRates::between(&before.vmstat, &after.vmstat, interval, util::page_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sums_skip_the_double_counted_keys() {
        let v = Vmstat::parse_str(
            "pgsteal_kswapd 10\npgsteal_direct 5\npgsteal_anon 7\npgsteal_file 8\n\
             pgscan_kswapd 20\npgscan_direct 10\npgscan_direct_throttle 3\npgscan_anon 9\n\
             allocstall_normal 2\nallocstall_movable 1\n",
        )
        .unwrap();
        assert_eq!(v.pgsteal(), 15);
        assert_eq!(v.pgscan(), 30);
        assert_eq!(v.allocstall(), 3);
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(Vmstat::parse_str(""), Err(ParseError::Empty));
        assert!(Vmstat::parse_str("pgfault\n").is_err());
        assert!(Vmstat::parse_str("pgfault 1 2\n").is_err());
        assert!(Vmstat::parse_str("pgfault -1\n").is_err());
    }

    #[test]
    fn empty_interval_has_no_rates() {
        let v = Vmstat::parse_str("pgfault 1\n").unwrap();
        assert_eq!(VmstatRates::between(&v, &v, Duration::ZERO, 4096), None);
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Vmstat::parse(&bytes[..]);
        }

        #[test]
        fn rates_never_panic(a in any::<u64>(), b in any::<u64>(), ms in 0u64..10_000_000, cut in 0usize..80) {
            let before = format!("pswpin {a}\npgscan_kswapd {a}\npgsteal_kswapd {b}\n");
            let after = format!("pswpin {b}\npgscan_kswapd {b}\npgsteal_kswapd {a}\n");
            let _ = Vmstat::parse(&before.as_bytes()[..cut.min(before.len())]);
            let x = Vmstat::parse_str(&before).unwrap();
            let y = Vmstat::parse_str(&after).unwrap();
            if let Some(r) = VmstatRates::between(&x, &y, Duration::from_millis(ms), u64::MAX) {
                prop_assert!(r.swap_in_kib_per_sec >= 0.0);
            }
        }
    }
}
