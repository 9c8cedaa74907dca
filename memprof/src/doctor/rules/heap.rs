//! Heap growth: the question a leak asks, answered from the series of heap
//! figures and the leak candidates.

use super::{b, finding, Evidence, Finding, Rule, Severity, Unit, MIB};
use crate::doctor::input::{DoctorInput, TimedReading};
use crate::profile::{LeakCandidate, Trend};

/// The heap keeps growing, or some stacks' in-use bytes do.
///
/// The heap figure is jemalloc's `allocated` where the process is this one
/// and jemalloc serves it, else the process's anonymous RSS (`RssAnon`, the
/// CLI looking at another process). Its series is fitted with a least-squares
/// line (two readings give only their slope):
///
/// - **Warning** when it grows at least 1 MiB/min, by at least 1 MiB and 2 %
///   of where it started over the window, with a fit of r² >= 0.8 (a heap
///   that breathes with load fits a line badly; one that leaks fits it
///   well), or when the leak candidates' own growth adds up to 1 MiB/min
///   (a stack can leak while a cache elsewhere shrinks). The finding names
///   the most suspicious stack and points at `/leaks`.
/// - **Info** when the readings span less than 30 s and no candidate says
///   otherwise: growth cannot be judged from so short a window, and "no
///   findings" would claim more than was seen.
///
/// The 1 MiB/min floor is the size of leak an operator acts on before it
/// becomes an OOM kill within days; the candidates' own thresholds are
/// [`crate::profile::LeakOptions`]'.
pub struct HeapGrowth;

const MIN_GROWTH_PER_MINUTE: f64 = MIB as f64;
const MIN_GROWTH_BYTES: f64 = MIB as f64;
const MIN_RELATIVE_GROWTH: f64 = 0.02;
const MIN_R_SQUARED: f64 = 0.8;
const MIN_WINDOW_SECONDS: f64 = 30.0;

/// Which figure of a reading the heap series uses.
#[derive(Clone, Copy, PartialEq)]
enum HeapFigure {
    Allocated,
    RssAnon,
}

impl HeapFigure {
    fn of(self, reading: &TimedReading) -> Option<u64> {
        match self {
            HeapFigure::Allocated => reading.allocated_bytes,
            HeapFigure::RssAnon => reading.status.as_ref()?.rss_anon_bytes,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HeapFigure::Allocated => "allocated",
            HeapFigure::RssAnon => "RssAnon",
        }
    }

    fn described(self) -> &'static str {
        match self {
            HeapFigure::Allocated => "The heap (jemalloc's allocated bytes)",
            HeapFigure::RssAnon => "The process's anonymous memory (RssAnon)",
        }
    }
}

/// The heap series fitted over the input's readings.
struct HeapTrend {
    figure: HeapFigure,
    first: u64,
    last: u64,
    /// Bytes per second.
    per_second: f64,
    /// `None` when fitted from two readings.
    r_squared: Option<f64>,
    span_seconds: f64,
    readings: usize,
}

impl HeapTrend {
    fn of(input: &DoctorInput) -> Option<HeapTrend> {
        let figure = [HeapFigure::Allocated, HeapFigure::RssAnon]
            .into_iter()
            .find(|f| input.series.iter().filter(|r| f.of(r).is_some()).count() >= 2)?;
        let first_at = input.series.first()?.taken;
        let points: Vec<(f64, f64, u64)> = input
            .series
            .iter()
            .filter_map(|r| {
                let value = figure.of(r)?;
                let at = r.taken.checked_duration_since(first_at)?.as_secs_f64();
                Some((at, value as f64, value))
            })
            .collect();
        let (t0, _, first) = *points.first()?;
        let (t1, _, last) = *points.last()?;
        let span_seconds = t1 - t0;
        if span_seconds <= 0.0 {
            return None;
        }
        let (per_second, r_squared) = if points.len() >= 3 {
            let xy: Vec<(f64, f64)> = points.iter().map(|&(t, y, _)| (t, y)).collect();
            let trend = Trend::fit(&xy)?;
            (trend.per_second, Some(trend.r_squared))
        } else {
            ((last as f64 - first as f64) / span_seconds, None)
        };
        Some(HeapTrend {
            figure,
            first,
            last,
            per_second,
            r_squared,
            span_seconds,
            readings: points.len(),
        })
    }

    fn is_growing(&self) -> bool {
        let growth = self.per_second * self.span_seconds;
        self.span_seconds >= MIN_WINDOW_SECONDS
            && self.per_second * 60.0 >= MIN_GROWTH_PER_MINUTE
            && growth >= MIN_GROWTH_BYTES
            && growth >= self.first as f64 * MIN_RELATIVE_GROWTH
            && self.r_squared.is_none_or(|r2| r2 >= MIN_R_SQUARED)
    }

    fn evidence(&self) -> Vec<Evidence> {
        let name = self.figure.name();
        let mut evidence = vec![
            Evidence::bytes(format!("{name}_first"), self.first),
            Evidence::bytes(format!("{name}_last"), self.last),
            Evidence::number("growth_rate", self.per_second * 60.0, Unit::BytesPerMinute),
            Evidence::number("window", self.span_seconds, Unit::Seconds),
            Evidence::number("readings", self.readings as f64, Unit::Count),
        ];
        if let Some(r2) = self.r_squared {
            evidence.push(Evidence::number("r_squared", r2, Unit::Ratio));
        }
        evidence
    }
}

/// Candidates with a growth figure, fastest first.
fn growing_candidates(input: &DoctorInput) -> Vec<&LeakCandidate> {
    let mut growing: Vec<&LeakCandidate> = input
        .leaks
        .as_ref()
        .map(|r| {
            r.candidates
                .iter()
                .filter(|c| c.growth_bytes_per_second > 0.0)
                .collect()
        })
        .unwrap_or_default();
    growing.sort_by(|a, b| {
        b.growth_bytes_per_second
            .total_cmp(&a.growth_bytes_per_second)
    });
    growing
}

fn candidate_evidence(top: &LeakCandidate, all: &[&LeakCandidate]) -> Vec<Evidence> {
    let total: f64 = all.iter().map(|c| c.growth_bytes_per_second).sum();
    vec![
        Evidence::text("top_site", top.site.clone()),
        Evidence::number(
            "top_site_growth_rate",
            top.growth_bytes_per_second * 60.0,
            Unit::BytesPerMinute,
        ),
        Evidence::number("top_site_r_squared", top.growth_r_squared, Unit::Ratio),
        Evidence::bytes("top_site_inuse", top.inuse_bytes.max(0.0) as u64),
        Evidence::number("growing_stacks", all.len() as f64, Unit::Count),
        Evidence::number("growing_stacks_rate", total * 60.0, Unit::BytesPerMinute),
    ]
}

const ADVICE: &str = "Open /debug/memprof/leaks (?format=text) for the growing stacks with their \
                      survivors' ages; keep a snapshot (POST /debug/memprof/snapshots) and diff \
                      against it in a few minutes (/debug/memprof/diff?base=ID) to see exactly \
                      what was added. A cache or queue without a bound, a map keyed by request or \
                      session that is never pruned, and tasks that never finish are the usual \
                      causes.";

impl Rule for HeapGrowth {
    fn id(&self) -> &'static str {
        "heap-growth"
    }

    fn check(&self, input: &DoctorInput) -> Option<Finding> {
        let trend = HeapTrend::of(input);
        let candidates = growing_candidates(input);
        let candidate_rate: f64 = candidates.iter().map(|c| c.growth_bytes_per_second).sum();
        let heap_grows = trend.as_ref().is_some_and(HeapTrend::is_growing);
        let stacks_grow = candidate_rate * 60.0 >= MIN_GROWTH_PER_MINUTE;

        if heap_grows || stacks_grow {
            let mut evidence = trend.as_ref().map(HeapTrend::evidence).unwrap_or_default();
            let title = match trend.as_ref().filter(|_| heap_grows) {
                Some(t) => format!(
                    "{} grows {}/min over {:.0} s{}",
                    t.figure.described(),
                    b(t.per_second.max(0.0) as u64 * 60),
                    t.span_seconds,
                    t.r_squared
                        .map(|r2| format!(" (r² {r2:.2})"))
                        .unwrap_or_default()
                ),
                None => format!(
                    "{} stack(s) keep growing, {}/min together",
                    candidates.len(),
                    b((candidate_rate * 60.0) as u64)
                ),
            };
            let meaning = match candidates.first() {
                Some(top) => {
                    evidence.extend(candidate_evidence(top, &candidates));
                    format!(
                        "Memory allocated and not freed accumulates. The fastest-growing stack \
                         is {} at {}/min (r² {:.2} over {:.0} s), {} in use now; {} stack(s) \
                         grow in all. Growth that fits a straight line this well is a leak or an \
                         unbounded structure, not load.",
                        top.site,
                        b((top.growth_bytes_per_second * 60.0) as u64),
                        top.growth_r_squared,
                        top.growth_span_seconds,
                        b(top.inuse_bytes.max(0.0) as u64),
                        candidates.len()
                    )
                }
                None => "Memory allocated and not freed accumulates, steadily enough to fit a \
                         straight line; no single stack stands out yet (leak candidates need \
                         survivors older than their minimum age, and growth over a few history \
                         points)."
                    .to_owned(),
            };
            return Some(finding(
                self.id(),
                Severity::Warning,
                title,
                evidence,
                meaning,
                ADVICE.to_owned(),
            ));
        }

        let trend = trend?;
        if trend.span_seconds >= MIN_WINDOW_SECONDS {
            return None;
        }
        Some(finding(
            self.id(),
            Severity::Info,
            format!(
                "Heap growth not judged: the readings span {:.0} s",
                trend.span_seconds
            ),
            trend.evidence(),
            format!(
                "A leak shows as steady growth over minutes; {:.0} s of readings cannot tell it \
                 from load, so this says nothing either way.",
                trend.span_seconds
            ),
            format!(
                "Read over {MIN_WINDOW_SECONDS:.0} s or more: `memprof doctor --interval 60`, or \
                 /debug/memprof/doctor once the endpoint's history has a minute of readings."
            ),
        ))
    }
}
