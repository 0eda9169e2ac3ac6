//! `pmu-conformance compare REPORT...`: one table of machines (or instance
//! types, or environments) × cases, from run reports and matrix reports, in
//! the terminal, in Markdown or as HTML. A row whose outcomes differ between
//! the machines is marked, so "which instance types have a faithful vPMU"
//! reads off the table.
//!
//! A cell is what a case's outcome says in codes: `pass`, `fail
//! <signature>`, `unsupported <reason>`, `error <reason>`; two machines
//! agree on a case when their cells are equal, and a case one machine did
//! not run differs from every outcome.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use comfy_table::{Cell, ContentArrangement, Table};

use crate::report::{CaseReport, Report};

/// One column: a machine's report, under the name it ran as.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// Where it came from, for messages.
    pub source: String,
    pub report: Report,
}

/// One case across the columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub case: String,
    /// Per column: its cell, or `None` where that machine did not run it.
    pub cells: Vec<Option<String>>,
    pub differs: bool,
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// Reads every report `paths` name: a run report (`--json`), a matrix
/// report (`matrix.json`: each environment that wrote a report is a
/// column), or a folder of either (its `*.json` files, in name order).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Column>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
                .collect();
            inside.sort();
            if inside.is_empty() {
                return Err(format!("{}: a folder with no *.json report in it", path.display()));
            }
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    let mut columns = Vec::new();
    for file in &files {
        columns.extend(read_one(file)?);
    }
    if columns.is_empty() {
        return Err("no report to compare".into());
    }
    // Two reports of one environment (two machines that ran `--env X`)
    // are told apart by host name, else by file.
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    for c in &mut columns {
        if names.iter().filter(|n| **n == c.name).count() > 1 {
            let by = c.report.hostname.clone().unwrap_or_else(|| c.source.clone());
            c.name = format!("{} ({by})", c.name);
        }
    }
    Ok(columns)
}

fn read_one(file: &Path) -> Result<Vec<Column>, String> {
    let shown = file.display().to_string();
    let text = crate::input_file::read(file, crate::report::json::REPORT_LIMIT).map_err(|e| format!("{shown}: {e}"))?;
    #[derive(serde::Deserialize)]
    struct Versioned {
        schema: String,
    }
    let schema = serde_json::from_str::<Versioned>(&text)
        .map_err(|e| format!("{shown}: not a pmu-conformance report: {e}"))?
        .schema;
    if schema == crate::matrix::report::SCHEMA {
        let matrix = crate::matrix::report::parse(&shown, &text)?;
        let columns: Vec<Column> = matrix
            .environments
            .into_iter()
            .filter_map(|e| {
                e.report.map(|report| Column {
                    name: e.id.clone(),
                    source: format!("{shown} ({})", e.id),
                    report,
                })
            })
            .collect();
        if columns.is_empty() {
            return Err(format!("{shown}: no environment of this matrix wrote a report"));
        }
        return Ok(columns);
    }
    let report = crate::report::json::parse(&shown, &text).map_err(|e| e.to_string())?;
    Ok(vec![Column {
        name: report.environment.id.clone(),
        source: shown,
        report,
    }])
}

/// A case's outcome in codes, as the table shows it.
pub fn cell(c: &CaseReport) -> String {
    match (&c.signature, &c.reason) {
        (Some(s), _) => format!("{} {}", c.verdict, s.kind),
        (None, Some(r)) => format!("{} {}", c.verdict, r.code),
        (None, None) => c.verdict.to_string(),
    }
}

/// The table: every case any column ran, in the order first seen.
pub fn compare(columns: &[Column]) -> Comparison {
    let mut cases: Vec<String> = Vec::new();
    for c in columns {
        for case in &c.report.cases {
            if !cases.contains(&case.id) {
                cases.push(case.id.clone());
            }
        }
    }
    let rows = cases
        .into_iter()
        .map(|case| {
            let cells: Vec<Option<String>> = columns
                .iter()
                .map(|c| c.report.cases.iter().find(|r| r.id == case).map(cell))
                .collect();
            let differs = cells.iter().any(|c| *c != cells[0]);
            Row { case, cells, differs }
        })
        .collect();
    Comparison {
        columns: columns.iter().map(|c| c.name.clone()).collect(),
        rows,
    }
}

impl Comparison {
    pub fn differing(&self) -> usize {
        self.rows.iter().filter(|r| r.differs).count()
    }

    pub fn summary_line(&self) -> String {
        format!(
            "{} machines, {} cases: {} differ",
            self.columns.len(),
            self.rows.len(),
            self.differing()
        )
    }

    /// The terminal table, `width` columns wide; a differing row's case is
    /// marked `≠`, and its cells are bold where `color` is on.
    pub fn terminal(&self, width: u16, color: bool) -> String {
        let mut table = Table::new();
        table
            .load_style(crate::report::table::STYLE)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width);
        let mut header = vec![Cell::new("case")];
        header.extend(self.columns.iter().map(Cell::new));
        table.set_header(header);
        for row in &self.rows {
            let mark = if row.differs { "≠ " } else { "  " };
            let mut cells = vec![Cell::new(format!("{mark}{}", row.case))];
            for c in &row.cells {
                let mut cell = Cell::new(c.as_deref().unwrap_or("—"));
                if row.differs && color {
                    cell = cell.add_attribute(comfy_table::Attribute::Bold);
                }
                cells.push(cell);
            }
            table.add_row(cells);
        }
        if let Some(column) = table.column_mut(0) {
            column.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
        if !color {
            table.force_no_tty();
        }
        format!("{table}\n{}\n", self.summary_line())
    }

    /// A Markdown table; differing rows' cases are bold and marked `≠`.
    pub fn markdown(&self) -> String {
        let escape = |s: &str| s.replace('|', "\\|");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| case | {} |",
            self.columns.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---|".repeat(self.columns.len()));
        for row in &self.rows {
            let case = if row.differs {
                format!("≠ **{}**", escape(&row.case))
            } else {
                escape(&row.case)
            };
            let cells: Vec<String> = row
                .cells
                .iter()
                .map(|c| c.as_deref().map_or("—".to_owned(), escape))
                .collect();
            let _ = writeln!(out, "| {case} | {} |", cells.join(" | "));
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }

    /// One self-contained HTML page: the table, differing rows highlighted.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
             <title>pmu-conformance: machines compared</title>\n<style>\n\
             body{font-family:system-ui,sans-serif;margin:2em;color:#1a1a1a}\n\
             table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}\n\
             th{background:#f3f3f3}tr.differs td{background:#fff4d6}tr.differs td.case::before{content:'≠ '}\n\
             td.pass{color:#1b6e20}td.fail,td.error{color:#a11}td.unsupported{color:#666}\n\
             </style></head><body>\n<h1>Machines compared</h1>\n",
        );
        let _ = writeln!(out, "<p class=\"summary\">{}</p>", escape_html(&self.summary_line()));
        out.push_str("<table>\n<thead><tr><th>case</th>");
        for c in &self.columns {
            let _ = write!(out, "<th>{}</th>", escape_html(c));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            let class = if row.differs { " class=\"differs\"" } else { "" };
            let _ = write!(out, "<tr{class}><td class=\"case\">{}</td>", escape_html(&row.case));
            for c in &row.cells {
                let text = c.as_deref().unwrap_or("—");
                let verdict = text.split(' ').next().unwrap_or_default();
                let _ = write!(out, "<td class=\"{verdict}\">{}</td>", escape_html(text));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n</body></html>\n");
        out
    }
}

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
