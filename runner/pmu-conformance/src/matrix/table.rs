//! The matrix's tables: what it would run (`matrix list`), and what it
//! found, one row per case and one column per environment, each cell the
//! verdict and what the gate made of it, with a row that says whether each
//! environment's PMU is faithful.

use std::path::Path;

use comfy_table::{ContentArrangement, Table};

use super::Planned;
use super::report::{MatrixReport, RunStatus};
use crate::outcome::Verdict;
use crate::report::CaseReport;
use crate::report::table::{STYLE, gate_column};

fn table(header: Vec<String>) -> Table {
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    // In a log, or on a terminal that gives no useful width (a pty with
    // none set), lines stay readable rather than one character wide.
    if !table.is_tty() || table.width().is_none_or(|w| w < 80) {
        table.set_width(200);
    }
    table
}

/// `matrix list`: each environment, its kind, how many cases, its deadline.
pub fn plan(file: &Path, planned: &[Planned]) -> String {
    let mut t = table(
        ["environment", "kind", "cases", "deadline", "about"]
            .map(str::to_owned)
            .to_vec(),
    );
    for p in planned {
        t.add_row(vec![
            p.environment.id.to_string(),
            p.environment.target.kind().to_owned(),
            p.cases.len().to_string(),
            format!("{} s", p.deadline.as_secs()),
            p.environment.about.split_whitespace().collect::<Vec<_>>().join(" "),
        ]);
    }
    format!("matrix {}: {} environments\n{t}\n", file.display(), planned.len())
}

/// One cell: `pass`, `fail ✗ DIFFERS`, `unsupported`, `—` where the
/// environment does not select the case.
fn cell(c: &CaseReport) -> String {
    let verdict = c.verdict.to_string();
    if c.gate.passed {
        match (c.verdict, c.gate.status.as_str()) {
            (Verdict::Pass | Verdict::Unsupported, _) => verdict,
            (_, "matches") => format!("{verdict} (as recorded)"),
            _ => verdict,
        }
    } else {
        format!("{verdict} ✗ {}", gate_column(c))
    }
}

/// Whether the environment's PMU is faithful, by the verdicts of its
/// hardware cases (every suite but the self-checks, which need no PMU):
/// any failure makes it unfaithful, recorded or not; passes and no failure
/// make it faithful; nothing judged means no vPMU was seen.
fn faithful(e: &super::report::EnvironmentRun) -> String {
    let Some(r) = &e.report else {
        return "unknown".to_owned();
    };
    let count = |v: Verdict| {
        r.cases
            .iter()
            .filter(|c| c.suite != "selfcheck" && c.verdict == v)
            .count()
    };
    match (count(Verdict::Fail), count(Verdict::Pass), count(Verdict::Error)) {
        (0, 0, 0) => "none seen".to_owned(),
        (0, 0, errors) => format!("unjudged ({errors} error)"),
        (0, passed, _) => format!("faithful ({passed} pass)"),
        (failed, _, _) => format!("unfaithful ({failed} fail)"),
    }
}

/// Cases down, environments across, then a line for each environment.
pub fn render(report: &MatrixReport) -> String {
    let mut cases: Vec<String> = Vec::new();
    for e in &report.environments {
        for c in &e.cases {
            if !cases.contains(c) {
                cases.push(c.clone());
            }
        }
    }
    let mut header = vec!["case".to_owned()];
    header.extend(report.environments.iter().map(|e| e.id.clone()));
    let mut t = table(header);
    for id in &cases {
        let mut row = vec![id.clone()];
        for e in &report.environments {
            row.push(match (&e.report, e.cases.contains(id)) {
                (_, false) => "—".to_owned(),
                (Some(r), true) => r
                    .cases
                    .iter()
                    .find(|c| &c.id == id)
                    .map_or_else(|| "not run".to_owned(), cell),
                (None, true) => format!("error ✗ {}", e.status.name()),
            });
        }
        t.add_row(row);
    }
    let mut vpmu = vec!["vPMU".to_owned()];
    vpmu.extend(report.environments.iter().map(faithful));
    t.add_row(vpmu);
    let mut status = vec!["environment".to_owned()];
    status.extend(report.environments.iter().map(|e| match e.status {
        RunStatus::Ok => format!("ok, {:.1} s", e.wall_ms as f64 / 1000.0),
        s => format!("{} ✗, {:.1} s", s.name(), e.wall_ms as f64 / 1000.0),
    }));
    t.add_row(status);
    let mut out = format!("{t}\n");
    for e in &report.environments {
        out.push_str(&format!("  {}\n", e.line()));
    }
    out
}
