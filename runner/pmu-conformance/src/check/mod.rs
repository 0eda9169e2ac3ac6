//! Checks: one module per kind, each turning a case's windows into an outcome.
//!
//! A check is written once, against [`Probe`], and knows nothing about where
//! its windows run. It asks the probe for `case.runs` windows and judges the
//! readings and notifications it gets back. A probe error ends the check: an
//! environment that cannot run a window makes the case `unsupported`, a
//! harness failure makes it `error`.

pub mod exact_count;
mod miscount;
pub mod overflow_preservation;
pub mod pmi_delivery;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::case::{Case, CheckKind};
use crate::event_table::ResolvedEvent;
use crate::outcome::{Outcome, ReasonCode};
use crate::probe::{Probe, ProbeError, Sampling, Window, WindowRun};

/// How long a case waits out a burst of stray traps: while windows keep
/// coming back disturbed one after another for less than this, each is run
/// again; a burst that lasts longer makes the case an `error`. Stray traps
/// come in bursts: on an Emerald Rapids KVM guest a loop of 1000-hit
/// windows saw none for seconds, then one every few windows for 1 to 12 s
/// (each a hit whose DR6 was lost: the count was short by exactly the
/// strays), so a fixed number of retries either gave up inside a burst or
/// would be far too many outside one.
pub const OUTLAST: std::time::Duration = std::time::Duration::from_secs(5);

/// However short its bursts, a case runs no more disturbed windows than this.
pub const MAX_DISTURBED: u64 = 200;

/// The pause before a disturbed window runs again, doubled with each
/// disturbed window in a row, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_millis(1000);

/// Runs `case` on `probe`, with its event already resolved for this environment.
pub fn run(case: &Case, event: &ResolvedEvent, probe: &mut dyn Probe) -> Outcome {
    run_outlasting(case, event, probe, OUTLAST)
}

/// [`run`], waiting out bursts of stray traps for `outlast`.
fn run_outlasting(case: &Case, event: &ResolvedEvent, probe: &mut dyn Probe, outlast: std::time::Duration) -> Outcome {
    let mut probe = Retrying {
        inner: probe,
        outlast,
        disturbed: 0,
        in_a_row: 0,
        burst_since: None,
        first: None,
    };
    let result = match case.check {
        CheckKind::ExactCount => exact_count::run(case, event, &mut probe),
        CheckKind::PmiDelivery => pmi_delivery::run(case, event, &mut probe),
        CheckKind::OverflowPreservation => overflow_preservation::run(case, event, &mut probe),
        CheckKind::Kernel(k) => unreachable!("`{k:?}` runs in the probe kernel, not on a Probe"),
    };
    let outcome = result.unwrap_or_else(|stop| *stop.0);
    match probe.first {
        Some(why) => outcome
            .figure("disturbed_windows", probe.disturbed)
            .figure("disturbance", why),
        None => outcome,
    }
}

/// A probe that runs a disturbed window again, after a pause twice the last
/// ([`FIRST_PAUSE`]), until a burst of them has lasted longer than `outlast`.
/// A disturbed window's result is discarded, never adjusted, so every run a
/// check judges is a window nothing disturbed.
struct Retrying<'a> {
    inner: &'a mut dyn Probe,
    outlast: std::time::Duration,
    /// Disturbed windows in the case, and in a row since the last clean one.
    disturbed: u64,
    in_a_row: u32,
    /// When the first window of this burst came back disturbed.
    burst_since: Option<std::time::Instant>,
    first: Option<String>,
}

impl Probe for Retrying<'_> {
    fn run(&mut self, window: &Window<'_>) -> Result<WindowRun, ProbeError> {
        loop {
            match self.inner.run(window) {
                Err(ProbeError::Disturbed(why)) => {
                    let since = *self.burst_since.get_or_insert_with(std::time::Instant::now);
                    let lasted = since.elapsed();
                    if lasted > self.outlast || self.disturbed >= MAX_DISTURBED {
                        return Err(ProbeError::Disturbed(format!(
                            "{why}; stray traps disturbed {} windows in a row over {:.1} s, longer than the {} s \
                             this case waits them out ({} disturbed windows in the case)",
                            self.in_a_row + 1,
                            lasted.as_secs_f64(),
                            self.outlast.as_secs_f64(),
                            self.disturbed + 1
                        )));
                    }
                    let doubled = FIRST_PAUSE.saturating_mul(1 << self.in_a_row.min(16));
                    std::thread::sleep(doubled.min(LONGEST_PAUSE));
                    self.disturbed += 1;
                    self.in_a_row += 1;
                    self.first.get_or_insert(why);
                }
                other => {
                    self.in_a_row = 0;
                    self.burst_since = None;
                    return other;
                }
            }
        }
    }

    fn traced_counts(
        &mut self,
        workload: &crate::workload::Workload,
        read_with: crate::vocabulary::ReadWith,
    ) -> Option<Result<crate::workload::Counts, String>> {
        self.inner.traced_counts(workload, read_with)
    }
}

/// An early end to a check, already phrased as its outcome.
/// Boxed: an outcome is large, and every run's `Result` carries one.
pub struct Stop(pub Box<Outcome>);

/// The window a linux case runs, with its event as resolved here.
pub fn window<'a>(case: &Case, event: &'a ResolvedEvent) -> Window<'a> {
    Window {
        event,
        workload: case.workload,
        sampling: case.period.map(|period| Sampling {
            period,
            refresh: case.refresh,
        }),
        read_with: case.read_with,
    }
}

/// Runs the case's window `case.runs` times, handing each result to `each`.
fn for_each_run(
    case: &Case,
    event: &ResolvedEvent,
    probe: &mut dyn Probe,
    each: impl FnMut(WindowRun),
) -> Result<(), Stop> {
    runs_of(&window(case, event), case.runs, probe, each)
}

/// Runs `window` `runs` times, handing each result to `each`.
fn runs_of(window: &Window<'_>, runs: u32, probe: &mut dyn Probe, mut each: impl FnMut(WindowRun)) -> Result<(), Stop> {
    for i in 0..runs {
        each(one_run(window, probe, &format!("run {} of {runs}", i + 1))?);
    }
    Ok(())
}

/// Runs `window` once; `which` names the run in an error.
fn one_run(window: &Window<'_>, probe: &mut dyn Probe, which: &str) -> Result<WindowRun, Stop> {
    match probe.run(window) {
        Ok(run) => Ok(run),
        Err(ProbeError::Unsupported(reason)) => Err(Stop(Box::new(Outcome::unsupported(reason)))),
        Err(ProbeError::Harness(message)) => Err(Stop(Box::new(Outcome::error(
            ReasonCode::Harness,
            format!("{which}: {message}"),
        )))),
        Err(ProbeError::Disturbed(message)) => Err(Stop(Box::new(Outcome::error(
            ReasonCode::Disturbed,
            format!("{which}: {message}"),
        )))),
    }
}

/// What a pass proves: the bound zero failures in `trials` set, and the
/// budget the case's runs were sized to, if they were. Zero trials prove
/// nothing, so they state no bound (and no check passes on them).
pub fn proves(case: &Case, failures: &str, trials: u64, unit: &str) -> Option<String> {
    if trials == 0 {
        return None;
    }
    let bound = crate::statistics::zero_failure_statement(failures, trials, unit);
    Some(match case.budget {
        Some(b) => format!(
            "{bound}; sized to catch a rate of {:.1e} with probability {:.1} %",
            b.rate,
            b.probability * 100.0
        ),
        None => bound,
    })
}

/// An `error` outcome for a check that observed less than it must: no pass
/// without evidence.
pub fn not_exercised(what: String) -> Stop {
    Stop(Box::new(Outcome::error(
        ReasonCode::NotExercised,
        format!("not exercised: {what}"),
    )))
}

/// How often each deviation from the expected count occurred.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deviations(pub BTreeMap<i128, u64>);

impl Deviations {
    pub fn add(&mut self, deviation: i128) {
        *self.0.entry(deviation).or_default() += 1;
    }

    pub fn runs(&self) -> u64 {
        self.0.values().sum()
    }

    /// `{"0": 98, "+1": 2}`, for reports.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.iter().map(|(d, n)| (signed(*d), Value::from(*n))).collect())
    }

    /// `0 ×98, +1 ×2`, for the terminal.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(d, n)| format!("{} ×{n}", signed(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `+3`, `0`, `-2`.
pub fn signed(d: i128) -> String {
    if d > 0 { format!("+{d}") } else { d.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::CheckKind;
    use crate::event_table::{Encoding, Exactness, Rearm, SoftwareEvent};
    use crate::outcome::Verdict;
    use crate::probe::Reading;
    use crate::vocabulary::CaseId;
    use crate::workload::Quantity;

    /// Answers each window with the next scripted result, noting the size of
    /// each window's workload.
    struct Scripted(Vec<Result<WindowRun, ProbeError>>, Vec<u64>);

    impl Probe for Scripted {
        fn run(&mut self, window: &Window<'_>) -> Result<WindowRun, ProbeError> {
            self.1.push(window.workload.size);
            self.0.remove(0)
        }
    }

    fn scripted(results: Vec<Result<WindowRun, ProbeError>>) -> Scripted {
        Scripted(results, Vec::new())
    }

    fn counted(value: u64) -> Result<WindowRun, ProbeError> {
        Ok(WindowRun {
            reading: Reading {
                value,
                time_enabled: 1,
                time_running: 1,
            },
            notifications: Vec::new(),
            overflows_handled: None,
        })
    }

    fn disturbed() -> Result<WindowRun, ProbeError> {
        Err(ProbeError::Disturbed("a stray trap".into()))
    }

    /// An exact count of 10 marker hits, over two runs.
    fn exact_ten() -> (Case, ResolvedEvent) {
        let mut case = crate::case::tests::case_named(CaseId {
            suite: "selfcheck".into(),
            name: "retry".into(),
        });
        case.runs = 2;
        let event = ResolvedEvent {
            name: "breakpoint-marker".into(),
            encoding: Encoding::Software(SoftwareEvent::BreakpointExecute),
            counts: Some(Quantity::MarkerHits),
            exactness: Exactness::Exact,
            skid: Some(0),
            rearm: Rearm::Absolute,
            erratum: None,
            skid_unbounded: false,
        };
        (case, event)
    }

    #[test]
    fn a_disturbed_window_is_discarded_and_run_again() {
        let (case, event) = exact_ten();
        // The disturbed window is never judged: the one run in its place is.
        let mut probe = scripted(vec![counted(10), disturbed(), counted(10)]);
        let outcome = run(&case, &event, &mut probe);
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert_eq!(outcome.figures["disturbed_windows"], 1);
        assert_eq!(outcome.figures["disturbance"], "a stray trap");
        assert_eq!(outcome.facts["runs"], 2);
    }

    /// Counts every window `value`, and says the window traces as `traced`.
    struct Traced {
        value: u64,
        traced: crate::workload::Counts,
    }

    impl Probe for Traced {
        fn run(&mut self, _: &Window<'_>) -> Result<WindowRun, ProbeError> {
            counted(self.value)
        }

        fn traced_counts(
            &mut self,
            _: &crate::workload::Workload,
            _: crate::vocabulary::ReadWith,
        ) -> Option<Result<crate::workload::Counts, String>> {
            Some(Ok(self.traced))
        }
    }

    #[test]
    fn a_failing_exact_count_names_the_traced_count() {
        let (case, event) = exact_ten();
        let listed = case.workload.counts(case.probe).unwrap();
        // The window retires its listing, and the counter says 11: the PMU's fault.
        let outcome = run(
            &case,
            &event,
            &mut Traced {
                value: 11,
                traced: listed,
            },
        );
        assert_eq!(outcome.verdict, Verdict::Fail);
        assert!(
            outcome.diagnosis[0].contains("retires exactly 10") && outcome.diagnosis[0].contains("not the harness"),
            "{:?}",
            outcome.diagnosis
        );
        // The window retires something else: the harness's fault.
        let off = crate::workload::Counts {
            marker_hits: 9,
            ..listed
        };
        let outcome = run(&case, &event, &mut Traced { value: 11, traced: off });
        assert!(
            outcome.diagnosis[0].contains("retires 9") && outcome.diagnosis[0].contains("listing is wrong"),
            "{:?}",
            outcome.diagnosis
        );
        // A pass needs no trace.
        let outcome = run(&case, &event, &mut Traced { value: 10, traced: off });
        assert_eq!((outcome.verdict, outcome.diagnosis.len()), (Verdict::Pass, 0));
    }

    #[test]
    fn an_erratum_that_overcounts_relaxes_exact_counts_to_at_least() {
        let (case, mut event) = exact_ten();
        // Seven more than the listing, on a part SRF7 affects: a pass that names it.
        event.erratum = Some(&pmu_kernel_checks::errata::SRF7);
        let outcome = run(&case, &event, &mut scripted(vec![counted(17), counted(17)]));
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert!(
            outcome.summary.contains("as erratum SRF7 allows"),
            "{}",
            outcome.summary
        );
        assert!(
            outcome.facts["erratum"]
                .as_str()
                .unwrap()
                .starts_with("SRF7 (kvm-unit-tests")
        );
        // Fewer is still a failure, erratum or not.
        let outcome = run(&case, &event, &mut scripted(vec![counted(9), counted(9)]));
        assert_eq!(outcome.verdict, Verdict::Fail);
        // And without the erratum, seven more is an overcount.
        event.erratum = None;
        let outcome = run(&case, &event, &mut scripted(vec![counted(17), counted(17)]));
        assert_eq!(outcome.verdict, Verdict::Fail);
    }

    /// A pmi-delivery case on `event` over `iterations` of the branch loop.
    fn sampling(event: ResolvedEvent, iterations: u64, period: u64, runs: u32) -> (Case, ResolvedEvent) {
        let mut case = crate::case::tests::case_named(CaseId {
            suite: "pmi-delivery".into(),
            name: "evidence".into(),
        });
        case.check = CheckKind::PmiDelivery;
        case.workload.size = iterations;
        case.period = Some(period);
        case.runs = runs;
        case.expect = None;
        (case, event)
    }

    fn instructions() -> ResolvedEvent {
        ResolvedEvent {
            name: "instructions".into(),
            encoding: Encoding::Raw(0x5100c0),
            counts: Some(Quantity::Instructions),
            exactness: Exactness::Inexact("interrupts".into()),
            skid: Some(100),
            rearm: Rearm::Absolute,
            erratum: None,
            skid_unbounded: false,
        }
    }

    fn task_clock() -> ResolvedEvent {
        ResolvedEvent {
            name: "task-clock".into(),
            encoding: Encoding::Software(SoftwareEvent::TaskClock),
            counts: None,
            exactness: Exactness::Inexact("time".into()),
            skid: None,
            rearm: Rearm::Relative,
            erratum: None,
            skid_unbounded: false,
        }
    }

    /// A run of `time_ns` on the task clock, with `handled` expiries all notified.
    fn timed(time_ns: u64, handled: u64, period: u64) -> Result<WindowRun, ProbeError> {
        Ok(WindowRun {
            reading: Reading {
                value: time_ns,
                time_enabled: time_ns,
                time_running: time_ns,
            },
            notifications: (1..=handled)
                .map(|k| crate::probe::Notification {
                    count: k * period,
                    kind: crate::probe::NotificationKind::Overflow,
                    after_window: false,
                })
                .collect(),
            overflows_handled: Some(handled),
        })
    }

    #[test]
    fn counting_only_the_taken_branches_is_named_as_a_guest_cpu_model_mismatch() {
        use crate::workload::WorkloadKind;
        let (mut case, mut event) = exact_ten();
        case.workload = crate::workload::Workload {
            kind: WorkloadKind::UntakenBranchLoop,
            size: 1000,
        };
        event.counts = Some(Quantity::ConditionalBranches);
        // 2000 conditional branches, 999 of them taken.
        case.expect.as_mut().unwrap().count = 2000;
        let outcome = run(&case, &event, &mut scripted(vec![counted(999), counted(999)]));
        assert_eq!(outcome.verdict, Verdict::Fail);
        assert!(
            outcome
                .diagnosis
                .iter()
                .any(|d| d.contains("exactly the 999 taken conditional branches")),
            "{:?}",
            outcome.diagnosis
        );
        // Any other undercount is not named so.
        let outcome = run(&case, &event, &mut scripted(vec![counted(1000), counted(1000)]));
        assert!(
            outcome.diagnosis.iter().all(|d| !d.contains("taken")),
            "{:?}",
            outcome.diagnosis
        );
    }

    /// One run of 40 007 instructions, each boundary of 1000 notified with
    /// `skid`, but the tenth with `late`.
    fn notified_with(skid: u64, late: u64) -> Result<WindowRun, ProbeError> {
        Ok(WindowRun {
            notifications: (1..=40)
                .map(|k| crate::probe::Notification {
                    count: k * 1000 + if k == 10 { late } else { skid },
                    kind: crate::probe::NotificationKind::Overflow,
                    after_window: false,
                })
                .collect(),
            overflows_handled: Some(40),
            ..counted(40_007).unwrap()
        })
    }

    #[test]
    fn lateness_is_judged_against_rrs_replay_and_record_thresholds() {
        use crate::outcome::SignatureKind;
        let (case, event) = sampling(instructions(), 10_000, 1000, 1);
        // Budget 100 (+ 13 for the handler): 200 fails a replay, 600 even a recording.
        let outcome = run(&case, &event, &mut scripted(vec![notified_with(5, 5)]));
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        let outcome = run(&case, &event, &mut scripted(vec![notified_with(5, 200)]));
        assert_eq!(outcome.signature.unwrap().kind, SignatureKind::PmiLate);
        let outcome = run(&case, &event, &mut scripted(vec![notified_with(5, 600)]));
        assert_eq!(outcome.signature.unwrap().kind, SignatureKind::PmiLateRecord);
        assert_eq!(outcome.figures["late_beyond_record_tolerance"], 1);
        // Where rr treats skid as unbounded (Zen), the same is reported and passes.
        let zen = ResolvedEvent {
            skid_unbounded: true,
            ..event.clone()
        };
        let outcome = run(&case, &zen, &mut scripted(vec![notified_with(5, 600)]));
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert!(
            outcome
                .summary
                .contains("1 beyond the budget (1 beyond 5×), reported, not judged"),
            "{}",
            outcome.summary
        );
    }

    #[test]
    fn a_dead_counter_on_an_inexact_event_loses_its_boundaries_rather_than_passing() {
        // 10 000 passes retire at least 40 007 instructions: 40 boundaries of 1000.
        let (case, event) = sampling(instructions(), 10_000, 1000, 1);
        let dead = Ok(WindowRun {
            overflows_handled: Some(0),
            ..counted(0).unwrap()
        });
        let outcome = run(&case, &event, &mut scripted(vec![dead]));
        assert_eq!(outcome.verdict, Verdict::Fail, "{outcome:?}");
        assert_eq!(outcome.signature.unwrap().kind, crate::outcome::SignatureKind::PmiLost);
    }

    #[test]
    fn a_timer_window_is_sized_by_time_and_one_that_never_expires_is_not_exercised() {
        let period = 1_000_000;
        // Calibration: 1000 iterations in 30 µs, disturbed (30 ns each); then
        // 64 times as many (the most one step grows) at 10 ns each, still
        // short of two periods; then two runs of 400 000 aimed at four
        // periods, which last long enough. The fastest rate, 10 ns, sizes
        // the window: 10 periods × 1.5 need 1.5 million iterations.
        let (mut case, event) = sampling(task_clock(), 1000, period, 2);
        case.timeout = std::time::Duration::from_secs(60);
        let calibration = || {
            vec![
                timed(30_000, 0, period),
                timed(640_000, 0, period),
                timed(4_000_000, 4, period),
                timed(4_400_000, 4, period),
            ]
        };
        let mut sized = scripted(
            [
                calibration(),
                vec![timed(15_000_000, 15, period), timed(15_000_000, 15, period)],
            ]
            .concat(),
        );
        let outcome = run(&case, &event, &mut sized);
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert_eq!(
            sized.1,
            [1000, 64_000, 400_000, 400_000, 1_500_000, 1_500_000],
            "calibrated until two runs lasted two periods, then sized by the fastest"
        );
        assert!(outcome.proves.unwrap().contains("in 2 runs (30 overflows)"));

        // A run the host starved (2 expiries) is run again, and the case still passes.
        let mut starved = scripted(
            [
                calibration(),
                vec![
                    timed(15_000_000, 2, period),
                    timed(15_000_000, 15, period),
                    timed(15_000_000, 15, period),
                ],
            ]
            .concat(),
        );
        let outcome = run(&case, &event, &mut starved);
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert_eq!(outcome.figures["starved_timer_runs_run_again"], 1);
        assert!(outcome.proves.unwrap().contains("in 2 runs (30 overflows)"));

        // A run whose signals came more than three periods apart (three of
        // the 15 the kernel handled missing in a row) cannot be told from a
        // host that starved the guest, and is run again; one that stays so
        // after three is judged, and fails.
        let gapped = || {
            let mut run = timed(15_000_000, 15, period).unwrap();
            run.notifications.drain(5..8);
            Ok(run)
        };
        let mut once = scripted(
            [
                calibration(),
                vec![gapped(), timed(15_000_000, 15, period), timed(15_000_000, 15, period)],
            ]
            .concat(),
        );
        let outcome = run(&case, &event, &mut once);
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert_eq!(outcome.figures["starved_timer_runs_run_again"], 1);
        let mut always = scripted([calibration(), (0..5).map(|_| gapped()).collect()].concat());
        let outcome = run(&case, &event, &mut always);
        assert_eq!(outcome.verdict, Verdict::Fail, "{outcome:?}");
        assert_eq!(outcome.figures["starved_timer_runs_run_again"], 3);

        // Two runs, each run again at most three times in all: five windows.
        let mut never = scripted([calibration(), vec![timed(15_000_000, 0, period); 5]].concat());
        let outcome = run(&case, &event, &mut never);
        assert_eq!(outcome.verdict, Verdict::Error, "{outcome:?}");
        assert!(
            outcome.reason.unwrap().message.starts_with("not exercised: "),
            "zero evidence is never a pass"
        );
    }

    #[test]
    fn a_right_total_without_its_overflows_is_pmi_lost_not_a_pass() {
        // rr's shape on breakpoints: 10 passes, period 5, so two overflows a run.
        let (mut case, event) = exact_ten();
        case.check = CheckKind::OverflowPreservation;
        case.period = Some(5);
        case.runs = 2;
        let handled = |n: u64| {
            Ok(WindowRun {
                overflows_handled: Some(n),
                ..counted(10).unwrap()
            })
        };
        let outcome = run(&case, &event, &mut scripted(vec![handled(2), handled(2)]));
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert_eq!(outcome.facts["overflows_per_run"], 2);
        let outcome = run(&case, &event, &mut scripted(vec![handled(2), handled(0)]));
        let signature = outcome.signature.clone().expect("a failure");
        assert_eq!(
            (signature.kind, signature.magnitude, signature.detail.as_str()),
            (
                crate::outcome::SignatureKind::PmiLost,
                crate::outcome::Magnitude::new(2, crate::outcome::Unit::OverflowsLost),
                "2 overflows never handled in 1 of 2 runs"
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn zero_trials_prove_nothing() {
        let (case, _) = exact_ten();
        assert_eq!(proves(&case, "lost", 0, "boundaries"), None);
        assert!(proves(&case, "lost", 3, "runs").is_some());
    }

    #[test]
    fn a_burst_of_stray_traps_longer_than_the_case_waits_is_an_error() {
        let (case, event) = exact_ten();
        let outlast = std::time::Duration::from_millis(100);
        // 20, 40 and 80 ms of pauses outlast 100 ms by the fourth window.
        let mut script = vec![counted(10)];
        script.extend((0..4).map(|_| disturbed()));
        let outcome = run_outlasting(&case, &event, &mut scripted(script), outlast);
        assert_eq!(outcome.verdict, Verdict::Error, "{outcome:?}");
        let reason = outcome.reason.unwrap();
        assert!(
            reason
                .message
                .starts_with("run 2 of 2: a stray trap; stray traps disturbed 4 windows in a row over 0.1"),
            "{reason}"
        );
        assert!(
            reason
                .message
                .ends_with("longer than the 0.1 s this case waits them out (4 disturbed windows in the case)"),
            "{reason}"
        );
        // Bursts that each end within it, with clean windows between, are
        // waited out however many windows they disturb in all.
        let mut script = vec![disturbed(), disturbed(), counted(10)];
        script.extend([disturbed(), disturbed(), counted(10)]);
        let outcome = run_outlasting(&case, &event, &mut scripted(script), outlast);
        assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:?}");
        assert_eq!(outcome.figures["disturbed_windows"], 4);
    }
}
