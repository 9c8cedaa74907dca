//! jemalloc's statistics, or why there are none: the one answer every
//! reader takes (`/allocator`, `/stats`, `/metrics`, the history's points,
//! the doctor), whether or not memprof was built with the `jemalloc`
//! feature, so "not available" is decided and worded in one place.

#[cfg(feature = "jemalloc")]
use crate::jemalloc::JemallocStats;

/// Why there are no statistics in a build without the `jemalloc` feature.
#[cfg(not(feature = "jemalloc"))]
pub(crate) const NOT_BUILT: &str = "memprof was built without the jemalloc feature";

/// jemalloc's statistics now, or why there are none.
#[derive(Debug, Clone)]
pub(crate) enum AllocatorReading {
    /// The statistics of one epoch.
    #[cfg(feature = "jemalloc")]
    Stats(Box<JemallocStats>),
    /// Why there are none, in words (jemalloc does not serve the process,
    /// reports nothing allocated, a mallctl failed, or it is not built in).
    Unavailable(String),
}

impl AllocatorReading {
    /// Reads jemalloc's statistics, with the process's RSS (`VmRSS`, bytes)
    /// for the RSS-overhead ratio: given, or read from `/proc` when `None`.
    pub(crate) fn read(rss_bytes: Option<u64>) -> AllocatorReading {
        #[cfg(feature = "jemalloc")]
        {
            let reading = match rss_bytes {
                Some(rss) => crate::jemalloc::stats_with_rss(Some(rss)),
                None => crate::jemalloc::stats(),
            };
            match reading {
                Ok(stats) => AllocatorReading::Stats(Box::new(stats)),
                Err(why) => AllocatorReading::Unavailable(why.to_string()),
            }
        }
        #[cfg(not(feature = "jemalloc"))]
        {
            let _ = rss_bytes;
            AllocatorReading::Unavailable(NOT_BUILT.to_owned())
        }
    }

    /// The statistics, if there are.
    #[cfg(feature = "jemalloc")]
    pub(crate) fn stats(&self) -> Option<&JemallocStats> {
        match self {
            AllocatorReading::Stats(stats) => Some(stats),
            AllocatorReading::Unavailable(_) => None,
        }
    }

    /// The statistics, if there are, taken out.
    #[cfg(feature = "jemalloc")]
    pub(crate) fn into_stats(self) -> Option<JemallocStats> {
        match self {
            AllocatorReading::Stats(stats) => Some(*stats),
            AllocatorReading::Unavailable(_) => None,
        }
    }

    /// Why there are no statistics, if there are none.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "jemalloc")]
            AllocatorReading::Stats(_) => None,
            AllocatorReading::Unavailable(why) => Some(why),
        }
    }

    /// jemalloc's allocated and resident bytes, if there are statistics.
    pub(crate) fn allocated_and_resident(&self) -> (Option<u64>, Option<u64>) {
        match self {
            #[cfg(feature = "jemalloc")]
            AllocatorReading::Stats(stats) => (
                Some(stats.totals.allocated_bytes),
                Some(stats.totals.resident_bytes),
            ),
            AllocatorReading::Unavailable(_) => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AllocatorReading;

    #[test]
    fn without_jemalloc_serving_the_process_there_is_a_reason_and_no_figures() {
        // Unit tests run on the system allocator.
        let reading = AllocatorReading::read(None);
        let reason = reading.reason().unwrap_or_default();
        assert!(reason.contains("not available"), "{reason}");
        assert_eq!(reading.allocated_and_resident(), (None, None));
    }
}
