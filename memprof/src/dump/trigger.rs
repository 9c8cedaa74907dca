//! When the watcher writes a dump on its own: the `peak` and `limit`
//! rules, as pure state machines over the readings they are fed, so each
//! is tested with made-up readings.

use std::time::{Duration, Instant};

use crate::history::PeakRule;
use crate::human::format_bytes;

/// Why a dump was written: each dump's summary and id name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The heap estimate or the RSS passed its previous high by the margin
    /// and the floor.
    Peak,
    /// Memory use crossed a threshold toward the limit.
    Limit,
    /// Asked for: `POST /debug/memprof/dumps`, the opt-in signal, or
    /// [`crate::dump::dump_now`].
    Request,
    /// The process exited normally.
    Exit,
}

impl Trigger {
    /// Its name in ids and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Peak => "peak",
            Trigger::Limit => "limit",
            Trigger::Request => "request",
            Trigger::Exit => "exit",
        }
    }
}

/// The `peak` rule: a dump when the heap estimate or the RSS passes the
/// high it had at the last `peak` dump (zero at start) by
/// `max(margin × high, floor)` (the history's [`PeakRule`]), at most one
/// per `min_interval`. A reading that passes within the interval is not
/// forgotten: the next tick after the interval, if still that high, dumps.
#[derive(Debug, Default, Clone)]
pub(crate) struct PeakWatch {
    heap_high: f64,
    rss_high: f64,
    last: Option<Instant>,
}

impl PeakWatch {
    /// Feeds one reading; the detail of a dump to write, if one is due.
    pub(crate) fn observe(
        &mut self,
        rule: PeakRule,
        min_interval: Duration,
        now: Instant,
        heap_bytes: f64,
        rss_bytes: Option<u64>,
    ) -> Option<String> {
        let heap_passes = rule.should_take(Some(self.heap_high), heap_bytes);
        let rss = rss_bytes.map_or(0.0, |r| r as f64);
        let rss_passes = rule.should_take(Some(self.rss_high), rss);
        if !heap_passes && !rss_passes {
            return None;
        }
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < min_interval)
        {
            return None;
        }
        let detail = if heap_passes {
            format!(
                "heap estimate {} passed the previous high {}",
                format_bytes(heap_bytes as u64),
                format_bytes(self.heap_high as u64)
            )
        } else {
            format!(
                "RSS {} passed the previous high {}",
                format_bytes(rss as u64),
                format_bytes(self.rss_high as u64)
            )
        };
        self.heap_high = self.heap_high.max(heap_bytes);
        self.rss_high = self.rss_high.max(rss);
        self.last = Some(now);
        Some(detail)
    }
}

/// What the `limit` rule reads: the bytes in use and the limit they count
/// toward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LimitReading {
    pub(crate) used_bytes: u64,
    pub(crate) limit_bytes: u64,
    /// Where the figures come from (`cgroup v1`, `cgroup v2`, `host`).
    pub(crate) source: &'static str,
}

/// How far below a threshold use must fall, in points of the limit, before
/// the threshold is armed again: without it, use hovering at a threshold
/// would dump at every tick.
pub(crate) const REARM_POINTS: f64 = 2.0;

/// The `limit` rule: a dump each time use crosses a threshold (a share of
/// the limit) on its way up, once per climb; a threshold is armed again
/// when use falls [`REARM_POINTS`] below it. Crossing several at once
/// writes one dump, named by the highest.
#[derive(Debug, Default, Clone)]
pub(crate) struct LimitWatch {
    /// The thresholds crossed and not yet re-armed, in percent.
    crossed: Vec<u8>,
}

impl LimitWatch {
    /// Feeds one reading; the threshold crossed and the detail of a dump
    /// to write, if one is due.
    pub(crate) fn observe(
        &mut self,
        thresholds: &[u8],
        reading: LimitReading,
    ) -> Option<(u8, String)> {
        if reading.limit_bytes == 0 {
            return None;
        }
        let percent = reading.used_bytes as f64 * 100.0 / reading.limit_bytes as f64;
        self.crossed
            .retain(|&t| thresholds.contains(&t) && percent >= f64::from(t) - REARM_POINTS);
        let newly: Vec<u8> = thresholds
            .iter()
            .copied()
            .filter(|&t| percent >= f64::from(t) && !self.crossed.contains(&t))
            .collect();
        let highest = *newly.iter().max()?;
        self.crossed.extend(newly);
        Some((
            highest,
            format!(
                "{} used of the {} limit ({percent:.1}%, {}) crossed {highest}%",
                format_bytes(reading.used_bytes),
                format_bytes(reading.limit_bytes),
                reading.source
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = (1 << 20) as f64;

    fn rule() -> PeakRule {
        PeakRule {
            margin: 0.10,
            floor_bytes: 64.0 * MIB,
        }
    }

    #[test]
    fn peak_waits_for_the_floor_then_the_margin_and_the_interval() {
        let mut w = PeakWatch::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(w.observe(rule(), minute, t0, 10.0 * MIB, None).is_none());
        assert!(w.observe(rule(), minute, t0, 64.0 * MIB, None).is_none());
        let first = w.observe(rule(), minute, t0, 65.0 * MIB, None).unwrap();
        assert!(first.contains("heap estimate 65.0 MiB"), "{first}");
        // A new high within the interval waits for it.
        let later = t0 + Duration::from_secs(10);
        assert!(w
            .observe(rule(), minute, later, 200.0 * MIB, None)
            .is_none());
        let after = t0 + Duration::from_secs(61);
        assert!(w
            .observe(rule(), minute, after, 200.0 * MIB, None)
            .is_some());
        // 10% of 1 GiB is more than the floor.
        let mut w = PeakWatch::default();
        assert!(w
            .observe(rule(), Duration::ZERO, t0, 1024.0 * MIB, None)
            .is_some());
        assert!(w
            .observe(rule(), Duration::ZERO, t0, 1100.0 * MIB, None)
            .is_none());
        assert!(w
            .observe(rule(), Duration::ZERO, t0, 1130.0 * MIB, None)
            .is_some());
    }

    #[test]
    fn peak_watches_rss_too() {
        let mut w = PeakWatch::default();
        let t0 = Instant::now();
        let d = w
            .observe(rule(), Duration::ZERO, t0, 0.0, Some(100 << 20))
            .unwrap();
        assert!(d.starts_with("RSS 100 MiB"), "{d}");
    }

    fn at(percent: u64) -> LimitReading {
        LimitReading {
            used_bytes: percent << 20,
            limit_bytes: 100 << 20,
            source: "cgroup v2",
        }
    }

    #[test]
    fn limit_fires_once_per_threshold_per_climb() {
        let mut w = LimitWatch::default();
        let t = [80, 90, 95];
        assert!(w.observe(&t, at(50)).is_none());
        assert_eq!(w.observe(&t, at(81)).map(|f| f.0), Some(80));
        assert!(w.observe(&t, at(85)).is_none());
        assert!(w.observe(&t, at(79)).is_none(), "within the re-arm margin");
        assert!(w.observe(&t, at(82)).is_none());
        // Two at once: one dump, named by the highest.
        let (p, detail) = w.observe(&t, at(96)).unwrap();
        assert_eq!(p, 95);
        assert!(detail.contains("crossed 95%"), "{detail}");
        assert!(w.observe(&t, at(99)).is_none());
        // Falling well below re-arms; the next climb dumps again.
        assert!(w.observe(&t, at(60)).is_none());
        assert_eq!(w.observe(&t, at(91)).map(|f| f.0), Some(90));
    }

    #[test]
    fn no_limit_no_dump() {
        let mut w = LimitWatch::default();
        let r = LimitReading {
            used_bytes: 1,
            limit_bytes: 0,
            source: "host",
        };
        assert!(w.observe(&[80], r).is_none());
    }
}
