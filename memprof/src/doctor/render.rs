//! Findings as plain text for a terminal.

use std::fmt::Write;

use super::finding::{Finding, Severity};

/// Renders findings for a terminal, most severe first as given:
///
/// ```text
/// CRITICAL  OOM killer ran in cgroup /system.slice/app.service: 3 kills  [oom-kills]
///   seen:    memory.events oom_kill = 3
///   means:   Processes of this group were killed because ...
///   try:     See which process was killed ...
/// ```
///
/// Long lines wrap at 100 columns. An empty list renders as one line saying
/// nothing was found.
pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("No findings: nothing looks wrong in the readings taken.\n");
        return out;
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "{} findings: {} critical, {} warning, {} info\n",
        findings.len(),
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info)
    );
    for f in findings {
        let label = match f.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING ",
            Severity::Info => "INFO    ",
        };
        let _ = writeln!(out, "{label}  {}  [{}]", f.title, f.rule);
        if !f.evidence.is_empty() {
            let seen: Vec<String> = f
                .evidence
                .iter()
                .map(|e| format!("{} = {}", e.name, e.display_value()))
                .collect();
            wrap(&mut out, "  seen:    ", &seen.join(", "));
        }
        wrap(&mut out, "  means:   ", &f.meaning);
        wrap(&mut out, "  try:     ", &f.advice);
        out.push('\n');
    }
    out
}

/// Appends `text` after `lead`, wrapped at 100 columns, continuation lines
/// indented to the lead's width.
fn wrap(out: &mut String, lead: &str, text: &str) {
    const WIDTH: usize = 100;
    let indent = " ".repeat(lead.len());
    let mut line = String::from(lead);
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line.clone_from(&indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}
