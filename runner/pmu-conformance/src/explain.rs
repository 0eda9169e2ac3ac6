//! `--explain CASE`: what a case does, what its failure would mean, and
//! which known bugs it is there to catch, with their sources, in words a
//! user can act on without reading the suite's YAML.

use std::fmt::Write;

use crate::case::Case;
use crate::known_bugs::{KnownBugs, Shows};
use crate::report::table::wrap;
use crate::vocabulary::ProbeKind;

/// A paragraph of `text`, wrapped at `width` and indented.
fn paragraph(out: &mut String, text: &str, width: usize) {
    for line in wrap(text, width.saturating_sub(2).max(20)) {
        let _ = writeln!(out, "  {line}");
    }
}

fn shows(s: &Shows) -> String {
    match s {
        Shows::Failure { kind, unit, amount } => match (unit, amount) {
            (Some(unit), Some(amount)) => format!("fail {kind} ({amount} {unit})"),
            (Some(unit), None) => format!("fail {kind} (in {unit})"),
            _ => format!("fail {kind}"),
        },
        Shows::Reason(code) => format!("a case that cannot run, code {code}"),
    }
}

/// The explanation of `case` (named `name`, `suite/case`), at `width` columns.
pub fn explain(name: &str, case: &Case, bugs: &KnownBugs, width: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{name}  ({})\n", case.location);
    let _ = writeln!(out, "What it does");
    paragraph(&mut out, &case.about, width);
    // Under a `sim:` environment either runs on the reference model instead.
    let probe = match case.probe {
        ProbeKind::Linux => "a user-space window under perf_event_open (the linux probe)",
        ProbeKind::Kernel => "the probe kernel, at MSR level, as a guest of QEMU or Xen",
    };
    let sampled = case
        .period
        .map_or_else(String::new, |p| format!(", a notification every {p} events"));
    paragraph(
        &mut out,
        &format!(
            "It runs in {probe}: event {}, workload {}{sampled}, {} run{}.",
            case.event,
            case.workload,
            case.runs,
            if case.runs == 1 { "" } else { "s" }
        ),
        width,
    );
    let _ = writeln!(out, "\nWhat a failure means");
    paragraph(
        &mut out,
        &format!(
            "Its check, `{}`, requires this: {} A failure names how the PMU broke it (a signature kind and its \
             size; `pmu-conformance codes` lists them) and the known bugs below whose signature it matches. \
             `unsupported` is never a pass: it says why the case could not run here.",
            case.check.name(),
            case.check.about()
        ),
        width,
    );
    let _ = writeln!(out, "\nWhat it catches");
    if case.catches.is_empty() {
        paragraph(
            &mut out,
            "No catalogued bug: it checks a property every faithful PMU has (or, in the selfcheck suite, the \
             harness itself).",
            width,
        );
    }
    for id in &case.catches {
        let Some(bug) = bugs.get(id) else {
            let _ = writeln!(out, "  {id}: not in the catalogue");
            continue;
        };
        let _ = writeln!(out, "  {id} ({})", bug.hypervisors.join(", "));
        let mut about = bug.about.clone();
        about.push_str(&format!(" Affected: {}.", bug.affected.trim_end_matches('.')));
        let signs: Vec<String> = bug.shows.iter().map(shows).collect();
        if !signs.is_empty() {
            about.push_str(&format!(" Shows as: {}.", signs.join("; ")));
        }
        if let Some(why) = &bug.unverified {
            about.push_str(&format!(" Unverified: {why}."));
        }
        for line in wrap(&about, width.saturating_sub(4).max(20)) {
            let _ = writeln!(out, "    {line}");
        }
        for source in &bug.sources {
            let _ = writeln!(out, "    source: {source}");
        }
    }
    out
}
