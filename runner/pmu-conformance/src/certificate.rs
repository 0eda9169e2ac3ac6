//! `pmu-conformance certify`: a machine's certificate, in Markdown and as one
//! self-contained HTML page, from a run's report, for a bug report or a
//! purchase decision.
//!
//! It says who ran what where (date, host, tool version and git revision,
//! the command line), the fingerprint, what each of the four properties
//! means for rr, perf and PAPI users and how this machine did on each, each
//! case's verdict in plain words with the statistical bound its pass proves,
//! the known bugs its failures match, and the skid each PMI-delivery case
//! measured, drawn as inline SVG.
//!
//! A machine is certified when every case it ran passed and at least one
//! PMU case (not the self-checks) did. `--strict` also refuses a case left
//! unsupported for any reason but the machine's class lacking the feature
//! (its PMU version, vendor, counters or TSX): a vPMU that is off, filtered
//! or refused is not certified.

use std::fmt::Write;

use crate::compare::escape_html;
use crate::outcome::{ReasonCode, Verdict};
use crate::report::{CaseReport, Report};

/// The four properties, by the suites that check them, and what each means
/// to the people who rely on it.
const PROPERTIES: [(&str, &str, &str); 4] = [
    (
        "exact-counts",
        "Counts are exact",
        "rr replays by counting retired conditional branches to the event it must stop at: one branch more \
         or less and the replay diverges. perf stat and PAPI users read the counts as the work done.",
    ),
    (
        "pmi-delivery",
        "Every overflow interrupt is delivered, on time",
        "rr stops a tracee with an overflow interrupt after a set number of branches, and a lost or late \
         one runs past the point; perf record's samples and PAPI's overflow handlers are lost with it.",
    ),
    (
        "overflow",
        "Counts stay exact across overflow",
        "Sampling counters wrap again and again; a hypervisor that adjusts a counter at the interrupt (Xen \
         writes 1 into a counter that reads 0) makes rr's 500 branches read 501.",
    ),
    (
        "ovf-ack",
        "Overflow status is set and acknowledged correctly",
        "Linux's PMU interrupt handler reads IA32_PERF_GLOBAL_STATUS to find which counter overflowed and \
         clears it through GLOBAL_OVF_CTRL; a wrong bit loses or duplicates samples.",
    ),
];

/// Reasons a case may be unsupported and the machine still certified under
/// `--strict`: its class (CPU model, vendor, PMU version) lacks the feature.
const CLASS_LACKS: [ReasonCode; 6] = [
    ReasonCode::PmuVersion,
    ReasonCode::OtherVendor,
    ReasonCode::NoTsx,
    ReasonCode::CounterNotAdvertised,
    ReasonCode::TooFewCounters,
    ReasonCode::EventNotAdvertised,
];

/// Whether the machine is certified, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub certified: bool,
    pub why: Vec<String>,
}

/// The decision for `report`, under `--strict` or not.
pub fn decide(report: &Report, strict: bool) -> Decision {
    let mut why = Vec::new();
    for c in &report.cases {
        match c.verdict {
            Verdict::Fail | Verdict::Error => why.push(format!("{} {}: {}", c.id, c.verdict, c.explanation())),
            Verdict::Unsupported if strict => {
                let code = c.reason.as_ref().map(|r| r.code);
                if !code.is_some_and(|code| CLASS_LACKS.contains(&code)) {
                    why.push(format!("{} is unsupported here: {}", c.id, c.explanation()));
                }
            }
            _ => {}
        }
    }
    let pmu_passes = report
        .cases
        .iter()
        .filter(|c| c.suite != "selfcheck" && c.verdict == Verdict::Pass)
        .count();
    if pmu_passes == 0 {
        let unsupported = report
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Unsupported)
            .count();
        let reason = report
            .cases
            .iter()
            .find(|c| c.suite != "selfcheck" && c.verdict == Verdict::Unsupported)
            .map(CaseReport::explanation)
            .unwrap_or_default();
        why.insert(
            0,
            format!(
                "no PMU case passed: this machine gives no usable PMU ({unsupported} of {} cases unsupported; {reason})",
                report.cases.len()
            ),
        );
    }
    if let Some(interrupted) = &report.interrupted {
        why.push(format!("the run was interrupted: {interrupted}"));
    }
    Decision {
        certified: why.is_empty(),
        why,
    }
}

/// Who made the certificate, and how.
#[derive(Clone, Debug)]
pub struct Provenance {
    pub command_line: String,
    pub revision: String,
    pub strict: bool,
}

/// A case's verdict in plain words.
fn in_words(c: &CaseReport) -> String {
    match c.verdict {
        Verdict::Pass => format!("passes: {}", c.summary),
        Verdict::Fail => format!("FAILS: {}", c.explanation()),
        Verdict::Unsupported => format!("not run here: {}", c.explanation()),
        Verdict::Error => format!("no verdict: {}", c.explanation()),
    }
}

/// The skid a PMI-delivery case measured: (p50, p99, max, budget).
fn skid(c: &CaseReport) -> Option<(u64, u64, u64, Option<u64>)> {
    let f = |k: &str| c.figures.get(k).and_then(serde_json::Value::as_u64);
    let budget = c.facts.get("skid_budget").and_then(serde_json::Value::as_u64);
    Some((f("skid_p50")?, f("skid_p99")?, f("skid_max")?, budget))
}

/// A horizontal bar chart of one case's skid, in events, against its budget.
fn skid_svg(c: &CaseReport) -> Option<String> {
    let (p50, p99, max, budget) = skid(c)?;
    let scale = [p50, p99, max, budget.unwrap_or(0), 1].into_iter().max().unwrap_or(1) as f64;
    let width = 360.0;
    let bar = |y: u32, label: &str, v: u64, colour: &str| {
        let w = (v as f64 / scale * width).max(1.0);
        format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{label}</text>\
             <rect x=\"70\" y=\"{}\" width=\"{w:.1}\" height=\"14\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{v}</text>",
            y + 11,
            y,
            70.0 + w + 4.0,
            y + 11
        )
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"skid\" role=\"img\" width=\"480\" height=\"78\" \
         aria-label=\"skid of {}: p50 {p50}, p99 {p99}, max {max} events\">",
        escape_html(&c.id)
    );
    svg.push_str(&bar(0, "p50", p50, "#4c8bf5"));
    svg.push_str(&bar(20, "p99", p99, "#2a5db0"));
    svg.push_str(&bar(40, "max", max, "#1a3a70"));
    if let Some(b) = budget {
        let x = 70.0 + b as f64 / scale * width;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"58\" stroke=\"#a11\" stroke-dasharray=\"3,2\"/>\
             <text x=\"{x:.1}\" y=\"72\" font-size=\"11\" fill=\"#a11\">budget {b}</text>"
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// How the cases of `suite` did: (passed, failed or erred, not run).
fn tally(report: &Report, suite: &str) -> (usize, usize, usize) {
    let cases = report.cases.iter().filter(|c| c.suite == suite);
    cases.fold((0, 0, 0), |(p, f, u), c| match c.verdict {
        Verdict::Pass => (p + 1, f, u),
        Verdict::Fail | Verdict::Error => (p, f + 1, u),
        Verdict::Unsupported => (p, f, u + 1),
    })
}

fn headline(report: &Report, decision: &Decision) -> String {
    if decision.certified {
        format!("CERTIFIED: {} passes every case it ran", report.environment.id)
    } else {
        format!("NOT CERTIFIED: {}", report.environment.id)
    }
}

fn fingerprint_yaml(report: &Report) -> String {
    report
        .environment
        .fingerprint
        .as_ref()
        .map_or_else(|| "(no fingerprint in the report)".to_owned(), |f| f.to_yaml())
}

/// The certificate in Markdown.
pub fn markdown(report: &Report, decision: &Decision, how: &Provenance) -> String {
    let mut out = String::new();
    let e = &report.environment;
    let _ = writeln!(out, "# PMU conformance certificate: {}\n", e.id);
    let _ = writeln!(out, "**{}**\n", headline(report, decision));
    for why in &decision.why {
        let _ = writeln!(out, "- {why}");
    }
    if !decision.why.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| date | {} |", report.started.as_deref().unwrap_or("unknown"));
    let _ = writeln!(out, "| host | {} |", report.hostname.as_deref().unwrap_or("unknown"));
    let _ = writeln!(
        out,
        "| tool | pmu-conformance {} ({}) |",
        report.tool.version, how.revision
    );
    let _ = writeln!(out, "| command | `{}` |", how.command_line);
    let _ = writeln!(out, "| environment | {} ({}) |", e.id, e.about);
    let _ = writeln!(out, "| probe | {} |", e.probe);
    let _ = writeln!(out, "| strict | {} |\n", if how.strict { "yes" } else { "no" });
    let _ = writeln!(out, "## Fingerprint\n\n```yaml\n{}```\n", fingerprint_yaml(report));
    let _ = writeln!(out, "## The four properties\n");
    for (suite, title, meaning) in PROPERTIES {
        let (p, f, u) = tally(report, suite);
        let _ = writeln!(
            out,
            "### {title}\n\n{meaning}\n\nHere: {p} passed, {f} failed, {u} not run (`{suite}/`).\n"
        );
    }
    let _ = writeln!(
        out,
        "## Every case\n\n| case | verdict | what the pass proves |\n|---|---|---|"
    );
    for c in &report.cases {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            c.id,
            in_words(c).replace('|', "\\|"),
            c.proves.as_deref().unwrap_or("").replace('|', "\\|")
        );
    }
    let diagnosed: Vec<&CaseReport> = report.cases.iter().filter(|c| !c.diagnosis.is_empty()).collect();
    let _ = writeln!(out, "\n## Known bugs these outcomes match\n");
    if diagnosed.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for c in diagnosed {
        let _ = writeln!(out, "- **{}**: {}", c.id, c.diagnosis.join("; "));
    }
    let _ = writeln!(out, "\n## Skid\n");
    let skids: Vec<&CaseReport> = report.cases.iter().filter(|c| skid(c).is_some()).collect();
    if skids.is_empty() {
        let _ = writeln!(out, "No PMI-delivery case measured skid here.");
    }
    for c in skids {
        if let Some((p50, p99, max, budget)) = skid(c) {
            let budget = budget.map_or_else(|| "none".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "- {}: p50 {p50}, p99 {p99}, max {max} events (budget {budget})",
                c.id
            );
        }
    }
    out
}

/// The certificate as one self-contained HTML page (no scripts, no links out).
pub fn html(report: &Report, decision: &Decision, how: &Provenance) -> String {
    let e = &report.environment;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>PMU conformance certificate</title>\n\
         <style>\nbody{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#1a1a1a;line-height:1.4}\n\
         table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\n\
         th{background:#f3f3f3}.certified{color:#1b6e20}.not-certified{color:#a11}\n\
         td.pass{color:#1b6e20}td.fail,td.error{color:#a11}td.unsupported{color:#666}pre{background:#f7f7f7;padding:1em}\n\
         </style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>PMU conformance certificate: {}</h1>", escape_html(&e.id));
    let class = if decision.certified {
        "certified"
    } else {
        "not-certified"
    };
    let _ = writeln!(
        out,
        "<p id=\"decision\" class=\"{class}\"><strong>{}</strong></p>",
        escape_html(&headline(report, decision))
    );
    if !decision.why.is_empty() {
        out.push_str("<ul id=\"why\">");
        for why in &decision.why {
            let _ = write!(out, "<li>{}</li>", escape_html(why));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<table id=\"provenance\">");
    let rows = [
        ("date", report.started.clone().unwrap_or_else(|| "unknown".into())),
        ("host", report.hostname.clone().unwrap_or_else(|| "unknown".into())),
        (
            "tool",
            format!("pmu-conformance {} ({})", report.tool.version, how.revision),
        ),
        ("command", how.command_line.clone()),
        ("environment", format!("{} ({})", e.id, e.about)),
        ("probe", e.probe.clone()),
        ("strict", if how.strict { "yes" } else { "no" }.to_owned()),
    ];
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", escape_html(&v));
    }
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<h2>Fingerprint</h2>\n<pre id=\"fingerprint\">{}</pre>",
        escape_html(&fingerprint_yaml(report))
    );
    out.push_str("<h2>The four properties</h2>\n");
    for (suite, title, meaning) in PROPERTIES {
        let (p, f, u) = tally(report, suite);
        let _ = writeln!(
            out,
            "<section class=\"property\" data-suite=\"{suite}\"><h3>{}</h3><p>{}</p>\
             <p>Here: {p} passed, {f} failed, {u} not run.</p></section>",
            escape_html(title),
            escape_html(meaning)
        );
    }
    out.push_str("<h2>Every case</h2>\n<table id=\"cases\"><thead><tr><th>case</th><th>verdict</th><th>what the pass proves</th></tr></thead><tbody>\n");
    for c in &report.cases {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape_html(&c.id),
            c.verdict,
            escape_html(&in_words(c)),
            escape_html(c.proves.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>\n<h2>Known bugs these outcomes match</h2>\n<ul id=\"diagnoses\">");
    let mut any = false;
    for c in report.cases.iter().filter(|c| !c.diagnosis.is_empty()) {
        any = true;
        let _ = write!(
            out,
            "<li><strong>{}</strong>: {}</li>",
            escape_html(&c.id),
            escape_html(&c.diagnosis.join("; "))
        );
    }
    if !any {
        out.push_str("<li>None.</li>");
    }
    out.push_str("</ul>\n<h2>Skid</h2>\n");
    let mut drawn = 0;
    for c in &report.cases {
        if let Some(svg) = skid_svg(c) {
            drawn += 1;
            let _ = writeln!(
                out,
                "<figure><figcaption>{}</figcaption>{svg}</figure>",
                escape_html(&c.id)
            );
        }
    }
    if drawn == 0 {
        out.push_str("<p>No PMI-delivery case measured skid here.</p>\n");
    }
    out.push_str("</body></html>\n");
    out
}
