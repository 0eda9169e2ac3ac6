//! KTAP version 1 (the kernel's Documentation/dev-tools/ktap.rst), as
//! kselftest and KernelCI read it: the version line, the plan, then one
//! result line per case in the report's order, each after its diagnostic
//! lines.
//!
//! A line's result is the gate's, as JUnit's is: `ok` for a case that is as
//! expected, `ok … # SKIP reason` for one skipped (unsupported, with its
//! reason), `not ok` for one whose trial failed. Descriptions and directives
//! are single lines without `#`, which KTAP reserves for the directive.

use std::fmt::Write;

use super::{CaseReport, Report};

/// One line of free text, safe after a result's `#` or a diagnostic's: no
/// line breaks, and no `#` that a parser would take for a directive (`#GP`
/// reads `GP`).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('#', "")
}

/// The result line of case number `n`.
fn result_line(n: usize, c: &CaseReport) -> String {
    match (c.gate.passed, &c.gate.message) {
        (true, None) => format!("ok {n} {}", c.id),
        (true, Some(why)) => format!("ok {n} {} # SKIP {}", c.id, one_line(why)),
        (false, _) => format!("not ok {n} {}", c.id),
    }
}

pub fn render(report: &Report) -> String {
    let mut out = String::from("KTAP version 1\n");
    let e = &report.environment;
    let _ = writeln!(out, "# pmu-conformance {} in environment {}", report.tool.version, e.id);
    let _ = writeln!(out, "# {}", one_line(&e.about));
    let _ = writeln!(out, "# probe: {}", one_line(&e.probe));
    let _ = writeln!(out, "# {}", one_line(&e.expectations));
    let _ = writeln!(out, "1..{}", report.cases.len());
    for (i, c) in report.cases.iter().enumerate() {
        let gate = super::table::gate_column(c);
        let _ = writeln!(out, "# {}: {} ({gate}): {}", c.id, c.verdict, one_line(&c.summary));
        if !c.gate.passed {
            let _ = writeln!(out, "# {}", one_line(&c.explanation()));
            for d in &c.diagnosis {
                let _ = writeln!(out, "# diagnosis: {}", one_line(d));
            }
            if let Some(message) = &c.gate.message {
                for line in message.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = writeln!(out, "# {}", one_line(line));
                }
            }
        }
        let _ = writeln!(out, "{}", result_line(i + 1, c));
    }
    // The run's summary line (and why it ended early), as diagnostics.
    for line in super::table::summary_line(report).lines() {
        let _ = writeln!(out, "# {}", one_line(line));
    }
    out
}
