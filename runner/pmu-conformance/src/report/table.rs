//! The terminal table: one row per case with its verdict, what the gate made
//! of it, the key figure, and the signature, reason or statistical bound.
//! It fits `$COLUMNS` (else the terminal, else 160 columns); below 100
//! columns it is a list, one case to a paragraph. Ids are never broken.

use comfy_table::{Cell, ColumnConstraint, ContentArrangement, LineStyle, Table, TableStyle};

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

/// Below this many columns the table gives way to a list: five columns
/// would leave each too narrow to read.
pub const TABLE_COLUMNS: u16 = 100;

/// The width output is laid out in: `$COLUMNS` where it is a positive
/// number, else the terminal's, else 160 (a log or a pipe).
pub fn width() -> u16 {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|&c| c > 0)
    {
        return columns;
    }
    // A terminal that says it has no columns (a pty nobody sized) is no width.
    Table::new().width().filter(|&c| c > 0).unwrap_or(160)
}

/// The table (or list) and the summary line, at [`width`].
pub fn render(report: &Report) -> String {
    render_at(report, width())
}

/// The table at `width` columns (a list below [`TABLE_COLUMNS`]), then the
/// summary line. A case's id is never broken, whatever the width.
pub fn render_at(report: &Report, width: u16) -> String {
    let body = if width < TABLE_COLUMNS {
        list(report, width)
    } else {
        table(report, width)
    };
    format!("{body}\n{}", summary_line(report))
}

/// A case's wall time, where it took a second or more (shorter ones are
/// not worth a reader's eye).
fn duration(c: &CaseReport) -> Option<String> {
    let seconds = c.duration_us as f64 / 1e6;
    (seconds >= 1.0).then(|| format!("{seconds:.1} s"))
}

/// What a case's last column says: its signature, reason or bound, and the
/// known bugs its outcome matches.
fn explanation(c: &CaseReport) -> String {
    let mut explanation = c.explanation();
    for d in &c.diagnosis {
        explanation.push_str("; ");
        explanation.push_str(d);
    }
    explanation
}

fn table(report: &Report, width: u16) -> String {
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(vec![
            "case",
            "verdict",
            "gate",
            "time",
            "result",
            "signature / reason / bound",
        ]);
    for c in &report.cases {
        table.add_row(vec![
            Cell::new(&c.id),
            Cell::new(c.verdict.name()),
            Cell::new(gate_column(c)),
            Cell::new(duration(c).unwrap_or_default()),
            Cell::new(&c.summary),
            Cell::new(explanation(c)),
        ]);
    }
    // The id, verdict, gate and time columns keep their content's width, so
    // that only the free text wraps (at spaces).
    for i in 0..4 {
        if let Some(column) = table.column_mut(i) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    table.to_string()
}

/// Below [`TABLE_COLUMNS`]: each case as a line with its verdict, id and
/// gate, then its result and explanation wrapped at spaces, indented.
fn list(report: &Report, width: u16) -> String {
    const INDENT: &str = "    ";
    let wrap_at = usize::from(width).saturating_sub(INDENT.len()).max(20);
    let mut out = String::new();
    for c in &report.cases {
        let head = format!("{} {}", c.verdict.name().to_uppercase(), c.id);
        let gate = match duration(c) {
            Some(took) => format!("({}, {took})", gate_column(c)),
            None => format!("({})", gate_column(c)),
        };
        // The gate joins the id's line where it fits, else starts the next.
        if head.chars().count() + 2 + gate.chars().count() <= usize::from(width) {
            out.push_str(&format!("{head}  {gate}\n"));
        } else {
            out.push_str(&format!("{head}\n{INDENT}{gate}\n"));
        }
        for text in [c.summary.clone(), explanation(c)] {
            for line in wrap(&text, wrap_at) {
                out.push_str(INDENT);
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken only at spaces (a
/// word longer than a line is a line of its own, whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The run's last line: the tally and what the gate made of it (and why the
/// run ended early, if it did).
pub fn summary_line(report: &Report) -> String {
    let t = &report.summary;
    let interrupted = report.interrupted.as_ref().map_or_else(String::new, |why| {
        format!("\ninterrupted: {why}; the cases above are those that finished")
    });
    format!(
        "{}: {} pass, {} fail, {} unsupported, {} error; {} of {} trials failed the gate{interrupted}\n",
        report.environment.id,
        t.pass,
        t.fail,
        t.unsupported,
        t.error,
        t.gate_failures,
        report.cases.len()
    )
}
