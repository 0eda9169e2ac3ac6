//! The terminal table: one row per case with its verdict, what the gate made
//! of it, the key figure, and the signature, reason or statistical bound.

use comfy_table::{Cell, ContentArrangement, LineStyle, Table, TableStyle};

use super::{Tally, gate_failed};
use crate::expectation::Gate;
use crate::harness::Record;

/// A rule under the header and one under the last row; nothing between rows.
pub const STYLE: TableStyle = TableStyle::new()
    .header_separator(LineStyle::none().fill('─').junction('─'))
    .bottom_border(LineStyle::none().fill('─').junction('─'));

pub fn render(records: &[Record], environment: &str) -> String {
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["case", "verdict", "gate", "result", "signature / reason / bound"]);
    // On a terminal the table fits its width; in a log, lines stay readable.
    if !table.is_tty() {
        table.set_width(160);
    }
    for r in records {
        let gate = match (&r.gate, gate_failed(r)) {
            (_, true) if matches!(r.gate, Gate::Differs { .. }) => "DIFFERS",
            (_, true) if matches!(r.gate, Gate::Unwritable { .. }) => "NOT RECORDED",
            (_, true) => "FAILS",
            (Gate::Matches, _) => "as recorded",
            (Gate::Recorded, _) => "recorded now",
            (Gate::Unrecorded, _) => "unrecorded",
            (Gate::Differs { .. } | Gate::Unwritable { .. }, false) => {
                unreachable!("a difference, or a failure to record, always fails the trial")
            }
        };
        let mut explanation = r.outcome.explanation();
        for d in &r.outcome.diagnosis {
            explanation.push_str("; ");
            explanation.push_str(d);
        }
        table.add_row(vec![
            Cell::new(r.case.id.to_string()),
            Cell::new(r.outcome.verdict.name()),
            Cell::new(gate),
            Cell::new(&r.outcome.summary),
            Cell::new(explanation),
        ]);
    }
    let t = Tally::of(records);
    format!(
        "{table}\n{environment}: {} pass, {} fail, {} unsupported, {} error; {} of {} trials failed the gate\n",
        t.pass,
        t.fail,
        t.unsupported,
        t.error,
        t.gate_failures,
        records.len()
    )
}
