//! Prometheus text exposition (format 0.0.4), written by hand.
//!
//! [`MetricsWriter`] takes care of the format: the `memprof_` prefix, one
//! `# HELP` and `# TYPE` pair per family, label escaping, and refusing a
//! family that is split in two (which Prometheus would reject). Each group
//! of readings gets a function `write_*_metrics(&mut MetricsWriter<W>, &T)`;
//! memprof's own are [`write_profiler_metrics`] and [`write_scope_metrics`].
//! To expose another group (allocator totals, process memory, cgroup
//! limits, ...), add such a function next to them and call it from the
//! `/metrics` handler. Names follow Prometheus conventions: base units
//! (`_bytes`, `_seconds`) and `_total` on counters.
//!
//! ```
//! use memprof::export::prometheus::MetricsWriter;
//!
//! let mut m = MetricsWriter::new(Vec::new());
//! m.gauge("heap_inuse_bytes", "Estimated bytes in use.", 4096.0, &[]).unwrap();
//! m.counter("samples_taken_total", "Samples taken.", 7.0, &[("thread", "main")]).unwrap();
//! let text = String::from_utf8(m.finish().unwrap()).unwrap();
//! assert!(text.contains("memprof_samples_taken_total{thread=\"main\"} 7\n"));
//! ```

use std::collections::HashSet;
use std::io::{self, Write};

use crate::history::{ProcessFigures, Status as HistoryStatus};
use crate::host::{CgroupMemory, CgroupView, Meminfo, Pressure};
#[cfg(feature = "jemalloc")]
use crate::jemalloc::JemallocStats;
use crate::profile::Snapshot;
use crate::scope::{ScopeRegistryStats, ScopeStats};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The prefix every family name gets.
pub const NAMESPACE: &str = "memprof_";

/// A Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricType {
    /// A value that can go up and down.
    Gauge,
    /// A value that only goes up (its name should end in `_total`).
    Counter,
}

impl MetricType {
    fn name(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
        }
    }
}

/// Writes metric families in the Prometheus text format.
///
/// Consecutive calls with the same name add samples (with different labels)
/// to one family; its `# HELP` and `# TYPE` lines are written once, by the
/// first call. Reusing a name after another family, an invalid metric or
/// label name, or a type change returns an [`io::ErrorKind::InvalidInput`]
/// error and writes nothing.
pub struct MetricsWriter<W: Write> {
    out: W,
    current: Option<(String, MetricType)>,
    finished: HashSet<String>,
}

impl<W: Write> MetricsWriter<W> {
    /// A writer adding the [`NAMESPACE`] prefix to every name.
    pub fn new(out: W) -> Self {
        MetricsWriter {
            out,
            current: None,
            finished: HashSet::new(),
        }
    }

    /// Writes one gauge sample.
    ///
    /// # Errors
    ///
    /// An `InvalidInput` error (writing nothing) for an invalid metric or label
    /// name, a name reused after another family, or a type change; otherwise
    /// the underlying writer's error.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        value: f64,
        labels: &[(&str, &str)],
    ) -> io::Result<()> {
        self.sample(MetricType::Gauge, name, help, value, labels)
    }

    /// Writes one counter sample; `name` should end in `_total`.
    ///
    /// # Errors
    ///
    /// An `InvalidInput` error (writing nothing) for an invalid metric or label
    /// name, a name reused after another family, or a type change; otherwise
    /// the underlying writer's error.
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        value: f64,
        labels: &[(&str, &str)],
    ) -> io::Result<()> {
        self.sample(MetricType::Counter, name, help, value, labels)
    }

    /// Writes one sample of family `name` (without the prefix), starting
    /// the family if it is not the current one.
    ///
    /// # Errors
    ///
    /// An `InvalidInput` error (writing nothing) for an invalid metric or label
    /// name, a name reused after another family, or a type change; otherwise
    /// the underlying writer's error.
    pub fn sample(
        &mut self,
        kind: MetricType,
        name: &str,
        help: &str,
        value: f64,
        labels: &[(&str, &str)],
    ) -> io::Result<()> {
        if !valid_name(name, true) {
            return Err(invalid(format!("invalid metric name {name:?}")));
        }
        if let Some((label, _)) = labels.iter().find(|(l, _)| !valid_name(l, false)) {
            return Err(invalid(format!("invalid label name {label:?} on {name}")));
        }
        match &self.current {
            Some((current, current_kind)) if current == name => {
                if *current_kind != kind {
                    return Err(invalid(format!("{name} written as two types")));
                }
            }
            _ => {
                if self.finished.contains(name) {
                    return Err(invalid(format!(
                        "family {name} continued after another family"
                    )));
                }
                if let Some((previous, _)) = self.current.take() {
                    self.finished.insert(previous);
                }
                write!(self.out, "# HELP {NAMESPACE}{name} ")?;
                write_escaped(&mut self.out, help, false)?;
                writeln!(self.out, "\n# TYPE {NAMESPACE}{name} {}", kind.name())?;
                self.current = Some((name.to_string(), kind));
            }
        }
        write!(self.out, "{NAMESPACE}{name}")?;
        if !labels.is_empty() {
            self.out.write_all(b"{")?;
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.write_all(b",")?;
                }
                write!(self.out, "{label}=\"")?;
                write_escaped(&mut self.out, value, true)?;
                self.out.write_all(b"\"")?;
            }
            self.out.write_all(b"}")?;
        }
        self.out.write_all(b" ")?;
        write_value(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    /// Flushes and returns the underlying writer.
    ///
    /// # Errors
    ///
    /// Returns the underlying writer's error when the final flush fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names; labels may not use `:` and
/// may not start with `__` (reserved).
fn valid_name(name: &str, metric: bool) -> bool {
    let ok_char = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (metric && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if ok_char(c, true) => {}
        _ => return false,
    }
    chars.all(|c| ok_char(c, false)) && (metric || !name.starts_with("__"))
}

/// Escapes `\` and newline (and `"` in label values), as the format asks.
fn write_escaped<W: Write>(out: &mut W, text: &str, quote: bool) -> io::Result<()> {
    for c in text.chars() {
        match c {
            '\\' => out.write_all(b"\\\\")?,
            '\n' => out.write_all(b"\\n")?,
            '"' if quote => out.write_all(b"\\\"")?,
            c => write!(out, "{c}")?,
        }
    }
    Ok(())
}

fn write_value<W: Write>(out: &mut W, value: f64) -> io::Result<()> {
    if value.is_nan() {
        out.write_all(b"NaN")
    } else if value.is_infinite() {
        out.write_all(if value > 0.0 { b"+Inf" } else { b"-Inf" })
    } else if value == value.trunc() && value.abs() < 1e15 {
        write!(out, "{}", value as i64)
    } else {
        write!(out, "{value}")
    }
}

/// The sampler's counters, the sampling rate and the heap estimates of a
/// snapshot: every `memprof_` family the profiler itself owns.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_profiler_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    snapshot: &Snapshot,
) -> io::Result<()> {
    let c = &snapshot.counters;
    m.gauge(
        "sample_rate_bytes",
        "Mean bytes allocated between two samples (0: off, 1: every allocation).",
        snapshot.rate as f64,
        &[],
    )?;
    m.counter(
        "samples_taken_total",
        "Allocations sampled since start.",
        c.samples_taken as f64,
        &[],
    )?;
    m.counter(
        "samples_freed_total",
        "Sampled allocations freed since start.",
        c.samples_freed as f64,
        &[],
    )?;
    m.counter(
        "samples_dropped_total",
        "Samples dropped because the live-sample table was full.",
        c.samples_dropped as f64,
        &[],
    )?;
    m.counter(
        "samples_skipped_reentrant_total",
        "Sample points skipped because memprof itself was allocating.",
        c.skipped_reentrant as f64,
        &[],
    )?;
    m.gauge(
        "live_samples",
        "Sampled allocations still live.",
        c.live_samples as f64,
        &[],
    )?;
    m.gauge(
        "stacks",
        "Distinct allocation stacks interned.",
        c.stacks as f64,
        &[],
    )?;
    m.counter(
        "stacks_dropped_total",
        "Stacks the full stack table could not hold.",
        c.stacks_dropped as f64,
        &[],
    )?;
    m.gauge(
        "profiler_bytes",
        "Bytes memprof holds for its own tables and symbol cache.",
        c.profiler_bytes as f64,
        &[],
    )?;
    m.gauge(
        "promotion_padding_bytes",
        "Bytes live sampled blocks hold beyond their request, from promotion to a page.",
        c.promotion_padding_bytes as f64,
        &[],
    )?;
    m.gauge(
        "unaligned_live_samples",
        "Live samples not on a page boundary; while any, every free checks the sample filter.",
        c.unaligned_live_samples as f64,
        &[],
    )?;
    let t = &snapshot.totals;
    m.gauge(
        "heap_inuse_bytes",
        "Estimated bytes allocated and not yet freed (from samples).",
        t.inuse_bytes.round(),
        &[],
    )?;
    m.gauge(
        "heap_inuse_objects",
        "Estimated objects allocated and not yet freed (from samples).",
        t.inuse_objects.round(),
        &[],
    )?;
    m.counter(
        "heap_alloc_bytes_total",
        "Estimated bytes allocated since start (from samples).",
        t.alloc_bytes.round(),
        &[],
    )?;
    m.counter(
        "heap_alloc_objects_total",
        "Estimated objects allocated since start (from samples).",
        t.alloc_objects.round(),
        &[],
    )
}

/// The most scopes [`write_scope_metrics`] writes series for; the rest
/// are summed under `scope="~other"`.
pub const MAX_SCOPE_SERIES: usize = 100;

/// The `scope` label of the series summing the scopes past
/// [`MAX_SCOPE_SERIES`].
pub const OTHER_SCOPE: &str = "~other";

/// Per-scope families, labelled `scope="outer/inner"`. Writes nothing when
/// no scope was entered.
///
/// The series stay bounded however many scopes a process enters: the
/// first [`MAX_SCOPE_SERIES`] scopes entered (by id, the order in which
/// they were first entered) get their own series, and the top-level scopes
/// past them are summed, family by family, under `scope="~other"`
/// (everything nested in a scope is in its figures, so each allocation is
/// counted once; a scope past the cap nested in one that has a series is
/// in that one's figures). The set of scopes with a series only grows
/// until it is full and never changes after, as OpenTelemetry's
/// cardinality limit keeps the first attribute sets seen: a set chosen by
/// size at each scrape would move scopes in and out of `~other`, and its
/// counters would run backwards. `~other` has no peak: peaks of different
/// scopes fall at different moments and do not add up. `GET /scopes`
/// lists every scope.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_scope_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    scopes: &[ScopeStats],
) -> io::Result<()> {
    type Field = fn(&ScopeStats) -> f64;
    let families: [(MetricType, &str, &str, Field, bool); 4] = [
        (
            MetricType::Counter,
            "scope_entered_total",
            "Times the scope was entered.",
            |s| s.entered as f64,
            true,
        ),
        (
            MetricType::Counter,
            "scope_alloc_bytes_total",
            "Estimated bytes allocated inside the scope.",
            |s| s.alloc_bytes.round(),
            true,
        ),
        (
            MetricType::Gauge,
            "scope_net_bytes",
            "Estimated bytes allocated inside the scope and still live.",
            |s| s.net_bytes.round(),
            true,
        ),
        (
            MetricType::Gauge,
            "scope_peak_bytes",
            "Highest estimated net bytes seen for the scope.",
            |s| s.peak_bytes.round(),
            false,
        ),
    ];
    let mut by_id: Vec<&ScopeStats> = scopes.iter().collect();
    by_id.sort_by_key(|s| s.id);
    let cut = by_id.len().min(MAX_SCOPE_SERIES);
    let (shown, rest) = by_id.split_at(cut);
    for (kind, name, help, field, sums) in families {
        for s in shown {
            m.sample(kind, name, help, field(s), &[("scope", &s.path)])?;
        }
        if sums && !rest.is_empty() {
            let other: f64 = rest
                .iter()
                .filter(|s| s.parent == 0)
                .map(|s| field(s))
                .sum();
            m.sample(kind, name, help, other, &[("scope", OTHER_SCOPE)])?;
        }
    }
    Ok(())
}

/// The scope registry's own families: scopes registered and the most it
/// holds, entries it could not hold, the runtime names' arena, and per
/// label key (`key="tenant"`) its distinct values and its overflow past
/// the cap (uses of `~other`).
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_scope_registry_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    registry: &ScopeRegistryStats,
) -> io::Result<()> {
    m.gauge(
        "scope_registry_scopes",
        "Scopes registered.",
        f64::from(registry.scopes),
        &[],
    )?;
    m.gauge(
        "scope_registry_max_scopes",
        "The most scopes the registry holds.",
        f64::from(registry.max_scopes),
        &[],
    )?;
    m.counter(
        "scope_entries_not_registered_total",
        "Entries of a new scope the full registry could not hold, counted in the enclosing scope.",
        registry.entries_not_registered as f64,
        &[],
    )?;
    m.gauge(
        "scope_name_arena_bytes",
        "Bytes of runtime scope names copied into the name arena.",
        registry.name_arena_bytes as f64,
        &[],
    )?;
    m.counter(
        "scope_label_values_not_kept_total",
        "Label values made ~other because the label table was full.",
        registry.label_values_not_kept as f64,
        &[],
    )?;
    for k in &registry.labels {
        m.gauge(
            "scope_label_values",
            "Distinct values a label key keeps (at most its cap).",
            f64::from(k.values),
            &[("key", &k.key)],
        )?;
    }
    for k in &registry.labels {
        m.counter(
            "scope_label_overflow_total",
            "Uses of a label key's ~other value past its cap on distinct values.",
            k.overflow as f64,
            &[("key", &k.key)],
        )?;
    }
    Ok(())
}

/// jemalloc's totals, unused pages and ratios (`allocator_*`), and
/// `allocator_available` (1 when jemalloc serves the process, else 0 and
/// nothing more).
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
#[cfg(feature = "jemalloc")]
pub fn write_allocator_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    stats: Option<&JemallocStats>,
) -> io::Result<()> {
    m.gauge(
        "allocator_available",
        "1 when jemalloc serves the process and its statistics are read, else 0.",
        if stats.is_some() { 1.0 } else { 0.0 },
        &[],
    )?;
    let Some(stats) = stats else {
        return Ok(());
    };
    let t = &stats.totals;
    let bytes: [(&str, &str, u64); 8] = [
        (
            "allocator_allocated_bytes",
            "jemalloc stats.allocated: bytes in blocks the program holds.",
            t.allocated_bytes,
        ),
        (
            "allocator_active_bytes",
            "jemalloc stats.active: bytes in active pages.",
            t.active_bytes,
        ),
        (
            "allocator_resident_bytes",
            "jemalloc stats.resident: bytes in resident pages jemalloc maps.",
            t.resident_bytes,
        ),
        (
            "allocator_retained_bytes",
            "jemalloc stats.retained: virtual memory kept mapped but returned to the OS.",
            t.retained_bytes,
        ),
        (
            "allocator_metadata_bytes",
            "jemalloc stats.metadata: jemalloc's own metadata.",
            t.metadata_bytes,
        ),
        (
            "allocator_mapped_bytes",
            "jemalloc stats.mapped: bytes in active extents.",
            t.mapped_bytes,
        ),
        (
            "allocator_dirty_bytes",
            "Dirty pages jemalloc holds, not yet purged, in bytes.",
            stats.pages.dirty_bytes,
        ),
        (
            "allocator_muzzy_bytes",
            "Muzzy pages jemalloc holds, in bytes.",
            stats.pages.muzzy_bytes,
        ),
    ];
    for (name, help, value) in bytes {
        m.gauge(name, help, value as f64, &[])?;
    }
    let r = &stats.ratios;
    m.gauge(
        "allocator_small_bin_waste_bytes",
        "Free slots in partly used small-size slabs, in bytes.",
        r.small_bin_waste_bytes as f64,
        &[],
    )?;
    let ratios: [(&str, &str, Option<f64>); 3] = [
        (
            "allocator_fragmentation_ratio",
            "active / allocated (Redis allocator_frag_ratio).",
            r.allocator_fragmentation_ratio,
        ),
        (
            "allocator_rss_ratio",
            "resident / active (Redis allocator_rss_ratio).",
            r.allocator_rss_ratio,
        ),
        (
            "allocator_rss_overhead_ratio",
            "process RSS / resident (Redis rss_overhead_ratio).",
            r.rss_overhead_ratio,
        ),
    ];
    for (name, help, value) in ratios {
        if let Some(value) = value {
            m.gauge(name, help, value, &[])?;
        }
    }
    Ok(())
}

/// The process's memory (`process_*_bytes`); figures the kernel does not
/// report are left out.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_process_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    process: &ProcessFigures,
) -> io::Result<()> {
    let figures: [(&str, &str, Option<u64>); 4] = [
        (
            "process_rss_bytes",
            "Resident set size of the process (VmRSS).",
            process.rss_bytes,
        ),
        (
            "process_rss_anon_bytes",
            "Anonymous resident memory of the process (RssAnon).",
            process.rss_anon_bytes,
        ),
        (
            "process_swap_bytes",
            "Swapped-out memory of the process (VmSwap).",
            process.swap_bytes,
        ),
        (
            "process_pss_bytes",
            "Proportional set size of the process (smaps_rollup Pss).",
            process.pss_bytes,
        ),
    ];
    for (name, help, value) in figures {
        if let Some(value) = value {
            m.gauge(name, help, value as f64, &[])?;
        }
    }
    Ok(())
}

/// The process's memory cgroup: usage, limit (when limited), working set
/// and OOM kills (`cgroup_memory_*`), labelled with the cgroup version.
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_cgroup_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    cgroup: &CgroupView,
) -> io::Result<()> {
    let (version, usage, limit, working_set, oom_kills) = match &cgroup.memory {
        CgroupMemory::V2(v2) => (
            "2",
            v2.current_bytes.value().copied(),
            v2.max_bytes.value().and_then(|l| l.bytes()),
            v2.working_set_bytes.value().copied(),
            v2.events.value().and_then(|e| e.oom_kill),
        ),
        CgroupMemory::V1(v1) => (
            "1",
            v1.usage_bytes.value().copied(),
            v1.limit_bytes.value().and_then(|l| l.bytes()),
            v1.working_set_bytes.value().copied(),
            v1.oom_control.value().and_then(|o| o.oom_kill),
        ),
    };
    let labels = [("version", version)];
    if let Some(v) = usage {
        m.gauge(
            "cgroup_memory_usage_bytes",
            "Memory charged to the process's cgroup (memory.current or memory.usage_in_bytes).",
            v as f64,
            &labels,
        )?;
    }
    if let Some(v) = limit {
        m.gauge("cgroup_memory_limit_bytes", "The cgroup's memory limit (memory.max or memory.limit_in_bytes); absent when unlimited.", v as f64, &labels)?;
    }
    if let Some(v) = working_set {
        m.gauge(
            "cgroup_memory_working_set_bytes",
            "Usage minus inactive file pages, as the kubelet computes it.",
            v as f64,
            &labels,
        )?;
    }
    if let Some(v) = oom_kills {
        m.counter(
            "cgroup_oom_kills_total",
            "Processes of the cgroup killed by the OOM killer.",
            v as f64,
            &labels,
        )?;
    }
    Ok(())
}

/// The host's memory: total and available (`host_memory_*_bytes`) and
/// memory pressure (`host_memory_pressure_avg10_ratio{kind="some|full"}`,
/// a fraction of the last 10 s, and the stall time since boot).
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_host_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    meminfo: Option<&Meminfo>,
    pressure: Option<&Pressure>,
) -> io::Result<()> {
    if let Some(mi) = meminfo {
        if let Some(v) = mi.mem_total_bytes {
            m.gauge(
                "host_memory_total_bytes",
                "MemTotal of /proc/meminfo.",
                v as f64,
                &[],
            )?;
        }
        if let Some(v) = mi.mem_available_bytes {
            m.gauge(
                "host_memory_available_bytes",
                "MemAvailable of /proc/meminfo.",
                v as f64,
                &[],
            )?;
        }
    }
    if let Some(p) = pressure {
        let lines: Vec<(&str, _)> = std::iter::once(("some", p.some))
            .chain(p.full.map(|f| ("full", f)))
            .collect();
        for (kind, line) in &lines {
            m.gauge(
                "host_memory_pressure_avg10_ratio",
                "Share of the last 10 s some (or all) tasks stalled on memory (/proc/pressure/memory avg10 / 100).",
                line.avg10 / 100.0,
                &[("kind", kind)],
            )?;
        }
        for (kind, line) in &lines {
            m.counter(
                "host_memory_pressure_stall_seconds_total",
                "Time some (or all) tasks stalled on memory since boot (/proc/pressure/memory total).",
                line.total_microseconds as f64 / 1e6,
                &[("kind", kind)],
            )?;
        }
    }
    Ok(())
}

/// The history sampler's own cost and size (`history_*`).
///
/// # Errors
///
/// Returns the error `out` returns when a write fails.
pub fn write_history_metrics<W: Write>(
    m: &mut MetricsWriter<W>,
    status: &HistoryStatus,
) -> io::Result<()> {
    let cost = &status.sampler_cost_us;
    m.counter(
        "history_ticks_total",
        "Points the history sampler has taken.",
        cost.ticks as f64,
        &[],
    )?;
    m.counter(
        "history_tick_seconds_total",
        "Time the history sampler has spent taking points.",
        cost.total_us as f64 / 1e6,
        &[],
    )?;
    m.gauge(
        "history_last_tick_seconds",
        "Time the history sampler's last point took.",
        cost.last_us as f64 / 1e6,
        &[],
    )?;
    m.gauge(
        "history_max_tick_seconds",
        "Longest time a history point took.",
        cost.max_us as f64 / 1e6,
        &[],
    )?;
    m.gauge(
        "history_points",
        "Points the history holds.",
        status.held_points as f64,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut MetricsWriter<Vec<u8>>) -> io::Result<()>) -> io::Result<String> {
        let mut m = MetricsWriter::new(Vec::new());
        f(&mut m)?;
        Ok(String::from_utf8(m.finish()?).unwrap())
    }

    #[test]
    fn families_get_one_header_and_escaped_labels() {
        let out = text(|m| {
            m.gauge(
                "a_bytes",
                "Help with \\ and\nnewline.",
                1.5,
                &[("k", "v\"1\\\n")],
            )?;
            m.gauge("a_bytes", "ignored", 2.0, &[("k", "v2")])?;
            m.counter("b_total", "B.", f64::NAN, &[])?;
            m.counter("c_total", "C.", 1e20, &[])
        })
        .unwrap();
        assert_eq!(
            out,
            "# HELP memprof_a_bytes Help with \\\\ and\\nnewline.\n\
             # TYPE memprof_a_bytes gauge\n\
             memprof_a_bytes{k=\"v\\\"1\\\\\\n\"} 1.5\n\
             memprof_a_bytes{k=\"v2\"} 2\n\
             # HELP memprof_b_total B.\n\
             # TYPE memprof_b_total counter\n\
             memprof_b_total NaN\n\
             # HELP memprof_c_total C.\n\
             # TYPE memprof_c_total counter\n\
             memprof_c_total 100000000000000000000\n"
        );
    }

    /// `n` top-level scopes (ids 1..=n, `top-i` holding `i` bytes), and
    /// under each of the first two a nested scope registered last.
    fn many_scopes(n: u32) -> Vec<ScopeStats> {
        let stats = |id: u32, path: String, parent: u32, bytes: f64| ScopeStats {
            id,
            path,
            parent,
            entered: 1,
            alloc_objects: 1.0,
            alloc_bytes: bytes,
            freed_objects: 0.0,
            freed_bytes: 0.0,
            net_bytes: bytes,
            peak_bytes: bytes,
        };
        let mut all: Vec<ScopeStats> = (1..=n)
            .map(|i| stats(i, format!("top-{i}"), 0, f64::from(i)))
            .collect();
        all.push(stats(n + 1, "top-1/inner".to_string(), 1, 1.0));
        all.push(stats(n + 2, "top-2/inner".to_string(), 2, 2.0));
        all.reverse();
        all
    }

    #[test]
    fn scope_series_stop_at_the_cap_and_the_rest_sum_under_other() {
        let n = MAX_SCOPE_SERIES as u32 + 50;
        let out = text(|m| write_scope_metrics(m, &many_scopes(n))).unwrap();
        let series = |family: &str| -> Vec<&str> {
            out.lines()
                .filter(|l| l.starts_with(&format!("memprof_{family}{{")))
                .collect()
        };
        let net = series("scope_net_bytes");
        assert_eq!(net.len(), MAX_SCOPE_SERIES + 1, "{out}");
        assert!(net.contains(&"memprof_scope_net_bytes{scope=\"top-100\"} 100"));
        assert!(!out.contains("top-101\""), "the 101st scope has no series");
        assert!(!out.contains("inner"), "nested scopes past the cap neither");
        // Top-level scopes 101..=150 (their nested ones are in them).
        let other: u32 = (MAX_SCOPE_SERIES as u32 + 1..=n).sum();
        assert!(
            net.contains(&format!("memprof_scope_net_bytes{{scope=\"~other\"}} {other}").as_str()),
            "{net:?}"
        );
        assert!(out.contains("memprof_scope_entered_total{scope=\"~other\"} 50\n"));
        assert_eq!(
            series("scope_peak_bytes").len(),
            MAX_SCOPE_SERIES,
            "no ~other peak"
        );

        let few = text(|m| write_scope_metrics(m, &many_scopes(3))).unwrap();
        assert!(!few.contains("~other"), "{few}");
        assert_eq!(few.matches("memprof_scope_net_bytes{").count(), 5);
    }

    #[test]
    fn refuses_what_prometheus_would_reject() {
        assert!(text(|m| m.gauge("bad-name", "x", 1.0, &[])).is_err());
        assert!(text(|m| m.gauge("1x", "x", 1.0, &[])).is_err());
        assert!(text(|m| m.gauge("x", "x", 1.0, &[("__reserved", "v")])).is_err());
        assert!(text(|m| m.gauge("x", "x", 1.0, &[("a:b", "v")])).is_err());
        assert!(text(|m| {
            m.gauge("x", "x", 1.0, &[])?;
            m.counter("x", "x", 1.0, &[])
        })
        .is_err());
        assert!(text(|m| {
            m.gauge("x", "x", 1.0, &[])?;
            m.gauge("y", "y", 1.0, &[])?;
            m.gauge("x", "x", 2.0, &[])
        })
        .is_err());
    }
}
