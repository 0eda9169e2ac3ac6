//! The detection matrix: which case catches which known bug, and with what
//! probability at the case's own run budget.
//!
//! Every case runs on the reference model once faithful and once with each
//! fault alone. A fault that always strikes is caught with probability 1 if
//! the case fails under it, else 0. A fault that strikes at rate r per
//! opportunity (a PMI, a counter enable, a branch between CPUIDs) is run
//! again with r forced to 1: if the case then fails, one strike is visible
//! to it, and over the n opportunities the model counted at the case's
//! budget it is caught with probability 1 − (1 − r)^n. The matrix is
//! computed, never sampled, so it is the same on every machine.
//!
//! `matrices/detection-matrix.md` is this module's output; a test keeps the
//! committed file equal to what the model says now.

use std::fmt::Write;
use std::sync::Arc;

use pmu_model::{Config, Fault, Faults};

use crate::case::{Case, Suite};
use crate::event_table::EventTable;
use crate::executor::Executor;
use crate::executor::sim::SimExecutor;
use crate::outcome::{Outcome, Verdict};
use crate::statistics::{CONFIDENCE, detection_probability};

/// The model every column runs on, but those of AMD-only bugs.
pub const PRESET: &str = "intel-skylake";
/// The model AMD-only bugs' columns run on.
pub const AMD_PRESET: &str = "amd-zen3";

/// Whether and how one case catches one fault.
#[derive(Clone, Debug)]
pub struct Cell {
    pub probability: f64,
    /// For a fault that strikes at a rate: the opportunities the case gave
    /// it, where one strike is visible to the case (else 0).
    pub opportunities: u64,
    /// The signature under the fault at its default rate, if the case failed.
    pub signature: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Matrix {
    pub faults: Vec<Fault>,
    /// Case ids, in suite order.
    pub cases: Vec<String>,
    /// `cells[case][fault]`.
    pub cells: Vec<Vec<Cell>>,
    /// Cases that did not pass on the faithful model, and what they gave.
    pub ideal_failures: Vec<(String, Outcome)>,
}

/// The model a column runs on: with `faults`, on the AMD preset where the
/// first is AMD's, as a guest of the hypervisor it belongs to (so Xen's
/// faults run with Xen's physical LVTPC). Returns the preset's name too.
pub fn model_for(faults: Vec<Fault>) -> (&'static str, Config) {
    let name = match faults.first().is_some_and(Fault::amd_only) {
        true => AMD_PRESET,
        false => PRESET,
    };
    let preset = Config::preset(name).expect("a known preset");
    let host = match faults.first().and_then(Fault::hypervisor) {
        Some(hypervisor) => preset.under(hypervisor).expect("every fault's hypervisor is modelled"),
        None => preset,
    };
    let config = Config {
        faults: Faults(faults),
        ..host
    };
    (name, config)
}

fn executor(table: &Arc<EventTable>, faults: Vec<Fault>) -> SimExecutor {
    let (name, config) = model_for(faults);
    SimExecutor::new(name, config, table.clone())
}

/// The least detection probability a catch must keep (as the detection
/// matrix's gate requires).
pub const REQUIRED: f64 = 0.999;

fn fails(outcome: &Outcome) -> bool {
    outcome.verdict == Verdict::Fail
}

/// Runs every case under every fault.
pub fn compute(suites: &[Suite], table: EventTable) -> Matrix {
    let table = Arc::new(table);
    let cases: Vec<&Case> = suites.iter().flat_map(|s| &s.cases).collect();
    let ideal = executor(&table, Vec::new());
    let mut ideal_failures = Vec::new();
    for case in &cases {
        let outcome = match ideal.preflight(case) {
            Ok(event) => ideal.run(case, event.as_ref()),
            Err(reason) => Outcome::unsupported(reason),
        };
        if !matches!(outcome.verdict, Verdict::Pass | Verdict::Unsupported) {
            ideal_failures.push((case.id.to_string(), outcome));
        }
    }
    let faults: Vec<Fault> = Fault::ALL.to_vec();
    let mut cells = vec![Vec::with_capacity(faults.len()); cases.len()];
    for &fault in &faults {
        let faulty = executor(&table, vec![fault]);
        let forced = fault.rate().map(|_| executor(&table, vec![fault.with_rate(1.0)]));
        for (row, case) in cases.iter().enumerate() {
            let Ok(event) = faulty.preflight(case) else {
                cells[row].push(Cell {
                    probability: 0.0,
                    opportunities: 0,
                    signature: None,
                });
                continue;
            };
            let (outcome, opportunities) = faulty.run_counted(case, event.as_ref());
            let signature = outcome
                .signature
                .as_ref()
                .filter(|_| fails(&outcome))
                .map(|s| s.kind.to_string());
            let (probability, seen) = match (&forced, fault.rate()) {
                (Some(forced), Some(rate)) => {
                    if fails(&forced.run(case, event.as_ref())) {
                        let n = opportunities.for_fault(&fault);
                        (detection_probability(rate, n), n)
                    } else {
                        (0.0, 0)
                    }
                }
                _ => (f64::from(u8::from(fails(&outcome))), 0),
            };
            cells[row].push(Cell {
                probability,
                opportunities: seen,
                signature,
            });
        }
    }
    Matrix {
        faults,
        cases: cases.iter().map(|c| c.id.to_string()).collect(),
        cells,
        ideal_failures,
    }
}

impl Matrix {
    /// The best probability any case has of catching fault `column`, and that case.
    pub fn best(&self, column: usize) -> (f64, Option<&str>) {
        self.cells
            .iter()
            .zip(&self.cases)
            .map(|(row, id)| (row[column].probability, id.as_str()))
            .fold(
                (0.0, None),
                |best, (p, id)| if p > best.0 { (p, Some(id)) } else { best },
            )
    }

    /// For a fault that strikes at a rate: the rate below which even its
    /// best catcher's detection probability drops under [`REQUIRED`], from
    /// the most opportunities any case that sees a strike gives it. `None`
    /// for a fault that always strikes, or that nothing sees.
    pub fn sensitivity(&self, column: usize) -> Option<f64> {
        self.faults[column].rate()?;
        let n = self.cells.iter().map(|row| row[column].opportunities).max()?;
        (n > 0).then(|| -f64::exp_m1(f64::ln(1.0 - REQUIRED) / n as f64))
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Detection matrix\n");
        let _ = writeln!(
            out,
            "Which case catches which known bug, and with what probability at the case's own run\n\
             budget, on the reference model (`{PRESET}` preset; `{AMD_PRESET}` for AMD-only bugs).\n\
             Generated by `cargo xtask detection-matrix`; do not edit: `cargo test --test\n\
             detection_matrix` fails when this file and the model disagree.\n\n\
             A fault that always strikes is caught with probability 1 or 0. A fault that strikes at\n\
             rate r per opportunity is caught with probability 1 − (1 − r)^n over the n opportunities\n\
             the case gives it, where forcing r to 1 shows that one strike fails the case. A faithful\n\
             model passes every case (or leaves it unsupported, with its reason).\n\n\
             Each fault runs with the model as a guest of the hypervisor it belongs to (Xen's with\n\
             Xen's physical LVTPC). Every rate is invented: no source gives one. The last column\n\
             says how far a catch depends on that: below that rate, even the best case's chance of\n\
             catching the fault at its own budget drops under {REQUIRED}."
        );
        let _ = writeln!(out, "\n## By fault\n");
        let _ = writeln!(
            out,
            "| fault | runs under | rate | best case | probability | caught by | p ≥ {REQUIRED} down to rate |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
        for (col, fault) in self.faults.iter().enumerate() {
            let (p, best) = self.best(col);
            let catchers = self
                .cells
                .iter()
                .zip(&self.cases)
                .filter(|(row, _)| row[col].probability > 0.0)
                .count();
            let rate = fault.rate().map_or("always".to_owned(), |r| format!("{r} (invented)"));
            let sensitivity = match (fault.rate(), self.sensitivity(col)) {
                (None, _) => "—".to_owned(),
                (Some(_), None) => "never".to_owned(),
                (Some(_), Some(r)) => format!("{r:.1e}"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {rate} | {} | {} | {catchers} case{} | {sensitivity} |",
                fault.id(),
                fault.hypervisor().unwrap_or("none (any)"),
                best.map_or("none".to_owned(), |b| format!("`{b}`")),
                probability(p),
                if catchers == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(out, "\n## By case\n");
        let ids: Vec<&str> = self.faults.iter().map(Fault::id).collect();
        let _ = writeln!(out, "| case | {} |", ids.join(" | "));
        let _ = writeln!(out, "| --- |{}", " --- |".repeat(ids.len()));
        for (row, id) in self.cells.iter().zip(&self.cases) {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match (&c.signature, c.probability) {
                    (_, 0.0) => "·".to_owned(),
                    (Some(s), p) => format!("{} {s}", probability(p)),
                    (None, p) => probability(p),
                })
                .collect();
            let _ = writeln!(out, "| `{id}` | {} |", cells.join(" | "));
        }
        let _ = writeln!(
            out,
            "\nCells give the probability and the signature at the default rate; `·` is not caught.\n\
             Probabilities are rounded down to four places, so 0.9999 may be closer to 1; bounds\n\
             for passes are stated at {:.0} % confidence.",
            CONFIDENCE * 100.0
        );
        out
    }
}

/// Four places, rounded down, so a probability is never overstated.
fn probability(p: f64) -> String {
    if p >= 1.0 {
        return "1".to_owned();
    }
    format!("{:.4}", (p * 1e4).floor() / 1e4)
}
