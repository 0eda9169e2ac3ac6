//! The reference model's speed: simulated PMIs per second, and the wall
//! time of the whole sim matrix (every `sim:` environment × every case it
//! selects, run in this process as `pmu-conformance --env sim:…` runs them,
//! less the harness) and of the detection matrix.
//!
//! Target: the whole sim matrix in under 1 s. Run with
//! `cargo bench --bench reference_model` or `cargo xtask bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pmu_conformance::case::{SuiteSources, load_suites};
use pmu_conformance::detection_matrix;
use pmu_conformance::environment::{Matrices, Target};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::executor::Executor;
use pmu_conformance::executor::sim::SimExecutor;
use pmu_conformance::known_bugs::KnownBugs;
use pmu_conformance::outcome::Verdict;
use pmu_conformance::probe::sim::SimProbe;
use pmu_conformance::probe::{Probe, Sampling, Window};
use pmu_conformance::vocabulary::ReadWith;
use pmu_conformance::workload::{Workload, WorkloadKind};
use pmu_model::Config;

const SAMPLES: usize = 7;
const TARGET: Duration = Duration::from_secs(1);

/// Seven samples under `cargo bench`; one where `cargo test` runs this as a
/// smoke test (it passes no `--bench`), so the test command pays for one.
fn samples() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        SAMPLES
    } else {
        1
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// PMIs per second: one window of a million branches at period 100.
fn pmis_per_second(table: &EventTable) -> (f64, u64) {
    let sim = SimExecutor::new("intel-skylake", Config::intel_skylake(), Arc::new(table.clone()));
    let fp = sim.fingerprint();
    let event = table
        .resolve(
            "retired-conditional-branches",
            &fp.cpu.identity,
            &fp.pmu.architectural,
            &fp.cpu.features,
        )
        .expect("the model's CPU has conditional branches");
    let window = Window {
        event: &event,
        workload: Workload {
            kind: WorkloadKind::BranchLoop,
            size: 1_000_000,
        },
        sampling: Some(Sampling {
            period: 100,
            refresh: None,
        }),
        read_with: ReadWith::Syscall,
    };
    let mut pmis = 0;
    let times = (0..samples())
        .map(|_| {
            let start = Instant::now();
            let run = SimProbe::new(Config::intel_skylake())
                .run(&window)
                .expect("the model runs");
            let took = start.elapsed();
            pmis = run.overflows_handled.unwrap_or(run.notifications.len() as u64);
            took
        })
        .collect();
    (pmis as f64 / median(times).as_secs_f64(), pmis)
}

fn main() {
    let table = EventTable::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &KnownBugs::builtin()).expect("built-in suites load");
    let matrices = Matrices::builtin().expect("built-in matrices load");
    let sims: Vec<_> = matrices
        .environments
        .values()
        .filter_map(|env| match &env.target {
            Target::Sim { preset, config } => Some((env, preset.clone(), config.clone())),
            _ => None,
        })
        .collect();

    let (rate, pmis) = pmis_per_second(&table);

    let shared = Arc::new(table.clone());
    let mut trials = 0;
    let mut errors = 0;
    let mut per_case: std::collections::BTreeMap<String, Duration> = Default::default();
    let matrix_times: Vec<Duration> = (0..samples())
        .map(|_| {
            let start = Instant::now();
            trials = 0;
            errors = 0;
            per_case.clear();
            for (env, preset, config) in &sims {
                let sim = SimExecutor::new(preset, config.clone(), shared.clone());
                for case in suites.iter().flat_map(|s| &s.cases).filter(|c| env.selects(c)) {
                    trials += 1;
                    let case_start = Instant::now();
                    let outcome = match sim.preflight(case) {
                        Ok(event) => sim.run(case, event.as_ref()),
                        Err(_) => continue,
                    };
                    *per_case.entry(case.id.to_string()).or_default() += case_start.elapsed();
                    errors += usize::from(outcome.verdict == Verdict::Error);
                }
            }
            start.elapsed()
        })
        .collect();
    let whole = median(matrix_times);

    let detection_times: Vec<Duration> = (0..samples().min(3))
        .map(|_| {
            let start = Instant::now();
            let _ = detection_matrix::compute(&suites, table.clone());
            start.elapsed()
        })
        .collect();
    let detection = median(detection_times);

    println!("reference model (median of {})", samples());
    println!("  simulated PMIs per second     {rate:>12.0}   ({pmis} PMIs in a 1 000 000-branch window)");
    println!(
        "  whole sim matrix              {:>9.1} ms   ({} environments, {trials} trials, {errors} errors; target < {} ms: {})",
        whole.as_secs_f64() * 1e3,
        sims.len(),
        TARGET.as_millis(),
        if whole < TARGET { "met" } else { "MISSED" }
    );
    println!(
        "  detection matrix              {:>9.1} ms",
        detection.as_secs_f64() * 1e3
    );
    let mut slowest: Vec<_> = per_case.into_iter().collect();
    slowest.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    println!("  slowest cases over all sim environments (last sample):");
    for (id, took) in slowest.iter().take(5) {
        println!("    {id:<48} {:>7.1} ms", took.as_secs_f64() * 1e3);
    }
}
