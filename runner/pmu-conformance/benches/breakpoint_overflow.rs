//! The breakpoint overflow path, timed against perf's own test of it.
//!
//! Measures, in one run:
//! - our window in the shape of `perf test "Breakpoint overflow sampling"`
//!   (an execute breakpoint hit 10 000 times, an overflow signal every 100
//!   hits): events per second and time per event;
//! - the same test run by perf itself, when `perf` is installed, with perf's
//!   start-up taken off by timing a trivial perf test beside it: the first of
//!   [`BASELINES`] that passes here, printed by name (perf's "Simple
//!   expression parser" fails in a VM with "Failed to find TSC frequency");
//! - the whole self-check suite through the harness, as `cargo run` runs it.
//!
//! Prints a table and the ratio of our time per event to perf's (target: at
//! most 1.5). Run with `cargo bench --bench breakpoint_overflow` or
//! `cargo xtask bench`.

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmu_conformance::cpu::CpuidReader;
use pmu_conformance::event_table::EventTable;
use pmu_conformance::fingerprint::Fingerprint;
use pmu_conformance::probe::linux::{LinuxProbe, Machine};
use pmu_conformance::probe::{Probe, ProbeError, Sampling, Window};
use pmu_conformance::run::{self, Request};
use pmu_conformance::vocabulary::ReadWith;
use pmu_conformance::workload::{Workload, WorkloadKind};

/// perf's shape: 10 000 breakpoint hits, period 100.
const HITS: u64 = 10_000;
const PERIOD: u64 = 100;
const SAMPLES: usize = 31;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_ours() -> Duration {
    let table = EventTable::builtin();
    let fingerprint = Fingerprint::here(&table, &CpuidReader::native());
    let event = table
        .resolve(
            "breakpoint-marker",
            &fingerprint.cpu.identity,
            &fingerprint.pmu.architectural,
            &fingerprint.cpu.features,
        )
        .expect("breakpoints resolve everywhere");
    let mut probe = LinuxProbe::new(Arc::new(Machine::new(table, &fingerprint)));
    let window = Window {
        event: &event,
        workload: Workload {
            kind: WorkloadKind::BranchLoop,
            size: HITS,
        },
        sampling: Some(Sampling {
            period: PERIOD,
            refresh: None,
        }),
        read_with: ReadWith::Syscall,
    };
    // A stray debug trap (some VMs raise them) is caught, not fatal, and
    // its window is timed again, as the harness runs it again.
    pmu_conformance::probe::linux::stray_traps::catch().expect("SIGTRAP can be caught");
    let mut disturbed = 0;
    let mut times = Vec::new();
    while times.len() < SAMPLES {
        let start = Instant::now();
        let run = match probe.run(&window) {
            Err(ProbeError::Disturbed(_)) if disturbed < 10 * SAMPLES => {
                disturbed += 1;
                continue;
            }
            other => other.expect("the breakpoint window runs"),
        };
        let elapsed = start.elapsed();
        assert_eq!(
            (run.reading.value, run.notifications.len() as u64),
            (HITS, HITS / PERIOD)
        );
        times.push(elapsed);
    }
    if disturbed > 0 {
        println!("  ({disturbed} windows disturbed by a stray debug trap were timed again)");
    }
    median(times)
}

/// perf tests that touch no hardware and start up as the breakpoint test
/// does, so their time is perf's start-up: the first that passes here is the
/// baseline. "Parse perf pmu format" parses strings only; "Simple expression
/// parser" reads the TSC frequency from /proc/cpuinfo, which a VM's lacks.
const BASELINES: [&str; 3] = [
    "Parse perf pmu format",
    "Roundtrip evsel->name",
    "Simple expression parser",
];

/// Why perf could not be run at all (as opposed to a test that failed).
const NO_PERF: &str = "perf is not installed (Debian's linux-perf has it)";

/// The first of [`BASELINES`] that passes, with its median time; or why none did.
fn time_baseline() -> Result<(&'static str, Duration), String> {
    let mut why = Vec::new();
    for name in BASELINES {
        match time_perf_test(name) {
            Ok(t) => return Ok((name, t)),
            Err(e) if e == NO_PERF => return Err(e),
            Err(e) => why.push(e),
        }
    }
    Err(format!("no start-up baseline passed: {}", why.join("; ")))
}

/// Median wall time of `perf test -F <name>`, or why it could not be timed.
///
/// A run that does not pass is run again, at most [`SAMPLES`] times in all:
/// on a VM whose debug registers raise stray traps, perf's own breakpoint
/// test dies of them as our windows would (its run ends before `: Ok`).
fn time_perf_test(name: &str) -> Result<Duration, String> {
    let mut times = Vec::new();
    let mut failed = Vec::new();
    while times.len() < SAMPLES {
        let start = Instant::now();
        let out = Command::new("perf").args(["test", "-F", name]).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NO_PERF.to_owned()
            } else {
                format!("perf: {e}")
            }
        })?;
        let elapsed = start.elapsed();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !text.contains(": Ok") {
            failed.push(format!("{} ({})", text.trim(), out.status));
            if failed.len() >= SAMPLES {
                return Err(format!(
                    "`perf test -F {name:?}` did not pass in {} runs: {}",
                    failed.len(),
                    failed[0]
                ));
            }
            continue;
        }
        times.push(elapsed);
    }
    if !failed.is_empty() {
        println!(
            "  (`perf test {name:?}` failed {} times and was run again: {})",
            failed.len(),
            failed[0]
        );
    }
    Ok(median(times))
}

fn time_selfcheck_suite() -> Duration {
    let expected = tempfile::tempdir().expect("a temporary folder");
    let request = Request {
        expected: Some(expected.path().to_path_buf()),
        libtest: libtest_mimic::Arguments {
            filter: Some("selfcheck/".into()),
            logfile: Some("/dev/null".into()),
            ..Default::default()
        },
        ..Request::default()
    };
    // Only passing runs are timed; one the machine's debug registers failed
    // (tests/soak.rs says how they do) is run again, at most 5 times.
    let (mut times, mut failed) = (Vec::new(), 0);
    while times.len() < 5 {
        let start = Instant::now();
        let status = run::execute(request.clone()).expect("the suites load");
        if status == ExitCode::SUCCESS {
            times.push(start.elapsed());
        } else {
            failed += 1;
            assert!(
                failed <= 5,
                "the self-check suite must pass to be timed; it failed {failed} times"
            );
        }
    }
    if failed > 0 {
        println!("  (the self-check suite failed {failed} times here and was run again)");
    }
    median(times)
}

fn main() -> ExitCode {
    // `cargo test` runs benches with `--test`... only as a smoke check; the
    // numbers need `cargo bench`, which passes `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("breakpoint_overflow: run with `cargo bench` to measure");
        return ExitCode::SUCCESS;
    }
    let ours = time_ours();
    let ours_per_event = ours.as_secs_f64() / HITS as f64;
    println!("breakpoint overflow path, {HITS} hits, period {PERIOD}, median of {SAMPLES}:");
    println!(
        "  ours: {:>9.3} ms per window, {:>6.2} µs per event, {:>9.0} events/s",
        ours.as_secs_f64() * 1e3,
        ours_per_event * 1e6,
        1.0 / ours_per_event
    );

    let perf = time_perf_test("Breakpoint overflow sampling").and_then(|bp| {
        let (baseline, startup) = time_baseline()?;
        Ok((bp, baseline, startup))
    });
    match perf {
        Ok((bp, baseline, startup)) => {
            let perf_per_event = bp.saturating_sub(startup).as_secs_f64() / HITS as f64;
            println!(
                "  perf: {:>9.3} ms per test, less {:.3} ms start-up (`perf test {baseline:?}`): {:>6.2} µs per event, {:>9.0} events/s",
                bp.as_secs_f64() * 1e3,
                startup.as_secs_f64() * 1e3,
                perf_per_event * 1e6,
                1.0 / perf_per_event
            );
            let ratio = ours_per_event / perf_per_event;
            let verdict = if ratio <= 1.5 { "within" } else { "OUTSIDE" };
            println!("  ratio, ours / perf per event: {ratio:.3} ({verdict} the 1.5× target)");
        }
        Err(why) => println!("  perf: not measured: {why}"),
    }

    let suite = time_selfcheck_suite();
    println!(
        "self-check suite through the harness, median of 5: {:.1} ms",
        suite.as_secs_f64() * 1e3
    );
    ExitCode::SUCCESS
}
