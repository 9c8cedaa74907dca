//! `memprof report FILE|DUMPDIR`: for a dump, what its summary says (the
//! trigger, time, process, cgroup and the doctor's findings); for any
//! profile, its top stacks; and the leak candidates the summary holds.

use std::path::Path;
use std::process::ExitCode;

use memprof::doctor::format_bytes;
use memprof::export::profile_file::{ProfileFormat, ReadLimits};
use memprof::profile::program_site;
use memprof::{Kind, StackProfile};
use serde::Serialize;
use serde_json::Value;

use crate::dumps::cgroup_text;
use crate::source::{load, utc, Source, Summary};
use crate::{print, print_json, Failure, Result};

#[derive(Serialize)]
struct Report<'a> {
    source: &'a Path,
    profile: &'a Path,
    format: ProfileFormat,
    sample_types: &'a [String],
    kind: Kind,
    /// The sum of `kind` over every stack.
    total: f64,
    stacks: usize,
    top: Vec<TopStack>,
    /// The dump's summary as written, or null for a plain profile.
    summary: Option<&'a Value>,
    leak_candidates: &'a [Value],
}

#[derive(Serialize)]
struct TopStack {
    inuse_bytes: f64,
    inuse_objects: f64,
    alloc_bytes: f64,
    alloc_objects: f64,
    site: String,
    /// Function names, leaf first.
    frames: Vec<String>,
}

impl TopStack {
    fn of(stack: &StackProfile) -> TopStack {
        TopStack {
            inuse_bytes: stack.estimates.inuse_bytes,
            inuse_objects: stack.estimates.inuse_objects,
            alloc_bytes: stack.estimates.alloc_bytes,
            alloc_objects: stack.estimates.alloc_objects,
            site: program_site(&stack.frames),
            frames: stack.frames.iter().map(|f| f.function.clone()).collect(),
        }
    }
}

pub(crate) fn report(
    path: &Path,
    top: usize,
    kind: Kind,
    limits: &ReadLimits,
    json: bool,
) -> Result<ExitCode> {
    let source = load(path, limits)?;
    let summary = match &source.dump_dir {
        Some(dir) => Some(Summary::read(dir).map_err(Failure)?),
        None => None,
    };
    let snapshot = &source.profile.snapshot;
    let stacks = snapshot.top(top, kind);
    let empty: &[Value] = &[];
    let report = Report {
        source: path,
        profile: &source.profile_path,
        format: source.profile.format,
        sample_types: &source.profile.sample_types,
        kind,
        total: snapshot.totals.get(kind),
        stacks: snapshot.stacks.len(),
        top: stacks.iter().map(|s| TopStack::of(s)).collect(),
        summary: summary.as_ref().map(|s| &s.0),
        leak_candidates: summary.as_ref().map_or(empty, Summary::leak_candidates),
    };
    if json {
        return print_json(&report);
    }
    print(&render(&report, &source, summary.as_ref(), &stacks))
}

/// A value of `kind`: bytes in binary units, counts as numbers.
pub(crate) fn amount(kind: Kind, value: f64) -> String {
    match kind.unit() {
        "bytes" => format_bytes(value.abs().round() as u64),
        _ => format!("{:.0}", value.abs()),
    }
}

fn render(
    report: &Report<'_>,
    source: &Source,
    summary: Option<&Summary>,
    stacks: &[&StackProfile],
) -> String {
    let mut out = format!("memprof report: {}\n", report.source.display());
    if let Some(summary) = summary {
        out.push_str(&render_summary(summary));
    }
    let kind = report.kind;
    out.push_str(&format!(
        "\nTOP STACKS by {} ({}; {} stacks, {} in all)\n",
        kind.name(),
        source.profile_path.display(),
        report.stacks,
        amount(kind, report.total)
    ));
    if stacks.is_empty() {
        out.push_str(&format!(
            "  none: no stack has {} (the profile's sample types: {})\n",
            kind.name(),
            report.sample_types.join(", ")
        ));
    }
    for (i, stack) in stacks.iter().enumerate() {
        let objects = match kind {
            Kind::InuseSpace => format!(" in {:.0} objects", stack.estimates.inuse_objects),
            Kind::AllocSpace => format!(" in {:.0} objects", stack.estimates.alloc_objects),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:>3}. {}{objects}\n     at {}\n",
            i + 1,
            amount(kind, stack.value(kind)),
            program_site(&stack.frames)
        ));
    }
    if summary.is_some() {
        out.push_str("\nLEAK CANDIDATES (from the summary)\n");
        if report.leak_candidates.is_empty() {
            out.push_str("  none\n");
        }
        for (i, candidate) in report.leak_candidates.iter().enumerate() {
            out.push_str(&format!(
                "{:>3}. {}\n",
                i + 1,
                describe_candidate(candidate)
            ));
        }
    }
    out
}

/// The summary's header lines and the doctor's findings.
fn render_summary(s: &Summary) -> String {
    let mut out = String::new();
    let trigger = s.trigger().unwrap_or_else(|| "?".to_string());
    match s.detail() {
        Some(detail) => out.push_str(&format!("  trigger: {trigger} ({detail})\n")),
        None => out.push_str(&format!("  trigger: {trigger}\n")),
    }
    let mut process = Vec::new();
    if let Some(t) = s.time_unix() {
        process.push(utc(t));
    }
    if let Some(pid) = s.pid() {
        process.push(format!("pid {pid}"));
    }
    if let Some(comm) = s.comm() {
        process.push(format!("({comm})"));
    }
    if let Some(version) = s.version() {
        process.push(format!("version {version}"));
    }
    if !process.is_empty() {
        out.push_str(&format!("  {}\n", process.join(" ")));
    }
    let bytes = |v: Option<u64>| v.map_or_else(|| "-".to_string(), format_bytes);
    out.push_str(&format!(
        "  heap {}, RSS {}, cgroup {}\n",
        bytes(s.heap_bytes()),
        bytes(s.rss_bytes()),
        cgroup_text(s.cgroup_usage_bytes(), s.cgroup_limit_bytes())
    ));
    let findings = s.findings();
    if !findings.is_empty() {
        out.push_str("\nFINDINGS (from the summary)\n");
        for f in findings {
            let field = |name: &str| f.get(name).and_then(Value::as_str);
            out.push_str(&format!(
                "  {:<8} {}: {}\n",
                field("severity").unwrap_or("?"),
                field("rule").unwrap_or("?"),
                field("title")
                    .or_else(|| field("summary"))
                    .unwrap_or("(no title)")
            ));
        }
    }
    out
}

/// One leak candidate: its site, then its own summary sentence on the next
/// line where it has both (memprof's dumps do); else the one it has, with
/// the figures; else its JSON.
fn describe_candidate(candidate: &Value) -> String {
    let text = |name: &str| candidate.get(name).and_then(Value::as_str);
    let number = |name: &str| candidate.get(name).and_then(Value::as_f64);
    if let Some(summary) = text("summary") {
        return match text("site") {
            Some(site) => format!("{site}\n     {summary}"),
            None => summary.to_string(),
        };
    }
    if let Some(site) = text("site").or_else(|| text("key")) {
        let mut line = site.to_string();
        if let Some(inuse) = number("inuse_bytes") {
            line.push_str(&format!(": {} live", format_bytes(inuse.max(0.0) as u64)));
        }
        if let Some(growth) = number("growth_bytes_per_second") {
            line.push_str(&format!(
                ", growing {}/min",
                format_bytes((growth * 60.0).max(0.0) as u64)
            ));
        }
        return line;
    }
    let mut json = candidate.to_string();
    if json.len() > 200 {
        let mut end = 200;
        while !json.is_char_boundary(end) {
            end -= 1;
        }
        json.truncate(end);
        json.push('…');
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_with_a_site_and_a_summary_names_the_site_first() {
        let candidate = serde_json::json!({
            "site": "demo::remember_session (demo.rs:148)",
            "summary": "growing 45.8 MiB/min",
        });
        assert_eq!(
            describe_candidate(&candidate),
            "demo::remember_session (demo.rs:148)\n     growing 45.8 MiB/min"
        );
        let only_summary = serde_json::json!({ "summary": "parse_batch holds 1.0 MiB" });
        assert_eq!(
            describe_candidate(&only_summary),
            "parse_batch holds 1.0 MiB"
        );
    }
}
