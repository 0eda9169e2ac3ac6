//! The terminal table: one row per case with its verdict, what the gate made
//! of it, the key figure, and the signature, reason or statistical bound.

use comfy_table::{Cell, ContentArrangement, LineStyle, Table, TableStyle};

use super::{CaseReport, Report};

/// A rule under the header and one under the last row; nothing between rows.
pub const STYLE: TableStyle = TableStyle::new()
    .header_separator(LineStyle::none().fill('─').junction('─'))
    .bottom_border(LineStyle::none().fill('─').junction('─'));

/// What the gate made of a case, as the table's `gate` column says it.
pub fn gate_column(c: &CaseReport) -> &'static str {
    match (c.gate.status.as_str(), c.gate.passed) {
        ("differs", _) => "DIFFERS",
        ("unwritable", _) => "NOT RECORDED",
        (_, false) => "FAILS",
        ("matches", true) => "as recorded",
        ("recorded", true) => "recorded now",
        _ => "unrecorded",
    }
}

pub fn render(report: &Report) -> String {
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["case", "verdict", "gate", "result", "signature / reason / bound"]);
    // On a terminal the table fits its width; in a log, lines stay readable.
    if !table.is_tty() {
        table.set_width(160);
    }
    for c in &report.cases {
        let mut explanation = c.explanation();
        for d in &c.diagnosis {
            explanation.push_str("; ");
            explanation.push_str(d);
        }
        table.add_row(vec![
            Cell::new(&c.id),
            Cell::new(c.verdict.name()),
            Cell::new(gate_column(c)),
            Cell::new(&c.summary),
            Cell::new(explanation),
        ]);
    }
    let t = &report.summary;
    let interrupted = report.interrupted.as_ref().map_or_else(String::new, |why| {
        format!("\ninterrupted: {why}; the cases above are those that finished")
    });
    format!(
        "{table}\n{}: {} pass, {} fail, {} unsupported, {} error; {} of {} trials failed the gate{interrupted}\n",
        report.environment.id,
        t.pass,
        t.fail,
        t.unsupported,
        t.error,
        t.gate_failures,
        report.cases.len()
    )
}
