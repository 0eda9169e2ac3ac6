//! The detection matrix as a gate: every known bug is caught, the faithful
//! model passes everything, and `matrices/detection-matrix.md` says what the
//! model says now.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use pmu_conformance::case::{Case, SuiteSources, load_suites};
use pmu_conformance::detection_matrix::{self, Matrix};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::executor::Executor;
use pmu_conformance::executor::sim::SimExecutor;
use pmu_conformance::known_bugs::KnownBugs;
use pmu_conformance::outcome::{Magnitude, Outcome, Unit, Verdict};
use pmu_model::{Config, Fault, Faults};

/// The probability a case's own budget must give its best catcher of every fault.
use pmu_conformance::detection_matrix::REQUIRED;

fn matrix() -> &'static Matrix {
    static MATRIX: OnceLock<Matrix> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let table = EventTable::builtin();
        let suites = load_suites(&SuiteSources::builtin(), &table, &KnownBugs::builtin()).unwrap();
        detection_matrix::compute(&suites, table)
    })
}

#[test]
fn every_known_bug_is_caught_at_the_cases_own_budget() {
    let m = matrix();
    let weak: Vec<String> = m
        .faults
        .iter()
        .enumerate()
        .filter_map(|(col, fault)| {
            let (p, best) = m.best(col);
            (p < REQUIRED).then(|| {
                format!(
                    "{}: best catcher {} at p = {p:.5} < {REQUIRED}; raise its `runs:` budget or add a case",
                    fault.id(),
                    best.unwrap_or("none")
                )
            })
        })
        .collect();
    assert!(weak.is_empty(), "\n{}", weak.join("\n"));
}

#[test]
fn the_faithful_model_fails_nothing() {
    let failures: Vec<String> = matrix()
        .ideal_failures
        .iter()
        .map(|(id, o)| format!("{id}: {:?} {}", o.verdict, o.explanation()))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_committed_matrix_is_what_the_model_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../matrices/detection-matrix.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let now = matrix().to_markdown();
    assert!(
        committed == now,
        "matrices/detection-matrix.md is stale: regenerate it with `cargo xtask detection-matrix`\n\n{}",
        similar_lines(&committed, &now)
    );
}

/// The first lines that differ, for the failure message.
fn similar_lines(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .take(5)
        .map(|(n, (x, y))| format!("line {}:\n- {x}\n+ {y}", n + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_on_model(id: &str, faults: Vec<Fault>) -> Outcome {
    let table = EventTable::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &KnownBugs::builtin()).unwrap();
    let case: &Case = suites
        .iter()
        .flat_map(|s| &s.cases)
        .find(|c| c.id.to_string() == id)
        .unwrap();
    let config = Config {
        faults: Faults(faults),
        ..Config::intel_skylake()
    };
    let sim = SimExecutor::new("intel-skylake", config, Arc::new(table));
    let event = sim.preflight(case).unwrap();
    sim.run(case, event.as_ref())
}

/// rr's check, exactly: 500 branches read as 500 on a faithful PMU and as
/// 501 in every run under Xen's PMI handler.
#[test]
fn the_rr_probe_reads_501_only_under_the_xen_quirk() {
    let faithful = run_on_model("overflow/rr-xen-probe", vec![]);
    assert_eq!(faithful.verdict, Verdict::Pass, "{}", faithful.explanation());
    assert_eq!(faithful.facts["expected"], 500);

    let xen = run_on_model("overflow/rr-xen-probe", vec![Fault::XenPmcQuirk]);
    assert_eq!(xen.verdict, Verdict::Fail);
    let runs = xen.facts["runs"].as_u64().unwrap();
    assert_eq!(
        xen.figures["deviations"]["+1"].as_u64(),
        Some(runs),
        "{:?}",
        xen.figures
    );
    let signature = xen.signature.unwrap();
    assert_eq!(signature.magnitude, Magnitude::new(1, Unit::EventsPerPmi));
    assert_eq!(signature.detail, "+1 per PMI in every run");
}

/// A case's `catches:` is a claim the model must bear out: the case fails
/// under each fault it names, with some probability at its own budget.
#[test]
fn every_claimed_catch_is_real() {
    let m = matrix();
    let table = EventTable::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &KnownBugs::builtin()).unwrap();
    let mut false_claims = Vec::new();
    for case in suites.iter().flat_map(|s| &s.cases) {
        let id = case.id.to_string();
        let row = m.cases.iter().position(|c| *c == id).unwrap();
        for bug in &case.catches {
            let col = m.faults.iter().position(|f| f.id() == bug).unwrap();
            if m.cells[row][col].probability == 0.0 {
                false_claims.push(format!("{id}: claims to catch {bug}, but passes under it on the model"));
            }
        }
    }
    assert!(false_claims.is_empty(), "\n{}", false_claims.join("\n"));
}

/// Every known bug's diagnosis, end to end: under the fault alone, as a
/// guest of its hypervisor, some case that claims to catch it fails, and the
/// diagnosis of that failure names the bug (and no bug of another hypervisor).
#[test]
fn every_known_bug_is_diagnosed_from_the_models_output() {
    let table = EventTable::builtin();
    let bugs = KnownBugs::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &bugs).unwrap();
    let table = Arc::new(table);
    let mut undiagnosed = Vec::new();
    for fault in Fault::ALL {
        // Rates forced to 1, so that the failure is there to diagnose.
        let (preset, config) = detection_matrix::model_for(vec![fault.with_rate(1.0)]);
        let sim = SimExecutor::new(preset, config, table.clone());
        let hypervisor = sim.fingerprint().hypervisor.as_ref().map(|h| h.name.clone());
        assert_eq!(
            hypervisor.as_deref(),
            fault.hypervisor(),
            "{}: the fingerprint shows its hypervisor",
            fault.id()
        );
        let mut named = false;
        for case in suites
            .iter()
            .flat_map(|s| &s.cases)
            .filter(|c| c.catches.iter().any(|b| b == fault.id()))
        {
            let Ok(event) = sim.preflight(case) else { continue };
            let outcome = sim.run(case, event.as_ref());
            if outcome.verdict != Verdict::Fail {
                continue;
            }
            let diagnosis = bugs.diagnose(&outcome, &case.catches, hypervisor.as_deref());
            named |= diagnosis
                .iter()
                .any(|d| d.starts_with(&format!("matches {}:", fault.id())));
            for d in &diagnosis {
                let id = d.trim_start_matches("matches ").split(':').next().unwrap();
                let bug = bugs.get(id).unwrap();
                assert!(
                    bug.applies_under(hypervisor.as_deref()),
                    "{}: {} suggested under {hypervisor:?}",
                    case.id,
                    id
                );
            }
        }
        if !named {
            undiagnosed.push(fault.id());
        }
    }
    assert!(
        undiagnosed.is_empty(),
        "no failing case's diagnosis names {undiagnosed:?}"
    );
}

/// Every refusal in the catalogue (a bug that shows as a reason code, such
/// as KVM's vPMU off on hybrid hosts), end to end: some sim environment's
/// outcome carries its code, and the diagnosis of that outcome names it.
#[test]
fn every_refusal_is_diagnosed_from_the_models_output() {
    use pmu_conformance::environment::{Matrices, Target};
    use pmu_conformance::known_bugs::Shows;
    let table = EventTable::builtin();
    let bugs = KnownBugs::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &bugs).unwrap();
    let table = Arc::new(table);
    let refusals: Vec<&str> = bugs
        .0
        .iter()
        .filter(|b| b.shows.iter().any(|s| matches!(s, Shows::Reason(_))))
        .map(|b| b.id.as_str())
        .collect();
    assert!(refusals.len() >= 3, "{refusals:?}");
    let mut named = std::collections::BTreeSet::new();
    for env in Matrices::builtin().unwrap().environments.values() {
        // The presets are where refusals live; a fault alone refuses nothing.
        let Target::Sim { preset, config } = &env.target else {
            continue;
        };
        if preset == "intel-skylake" || preset == "amd-zen3" {
            continue;
        }
        let sim = SimExecutor::new(preset, config.clone(), table.clone());
        let hypervisor = sim.fingerprint().hypervisor.as_ref().map(|h| h.name.clone());
        for case in suites.iter().flat_map(|s| &s.cases) {
            let outcome = match sim.preflight(case) {
                Ok(event) => sim.run(case, event.as_ref()),
                Err(reason) => Outcome::unsupported(reason),
            };
            for d in bugs.diagnose(&outcome, &case.catches, hypervisor.as_deref()) {
                let id = d.trim_start_matches("matches ").split(':').next().unwrap().to_owned();
                named.insert(id);
            }
        }
    }
    let missing: Vec<&&str> = refusals.iter().filter(|r| !named.contains(**r)).collect();
    assert!(
        missing.is_empty(),
        "no sim environment's outcome is diagnosed as {missing:?}"
    );
}
