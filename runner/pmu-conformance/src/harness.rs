//! The plan for one environment, as libtest-mimic trials.
//!
//! One trial per selected case, named `suite/case`, so filters, `--exact`,
//! `--list`, `--ignored` and cargo-nextest behave as Rust users expect.
//! Whether a case can run here is decided while the list is built (each
//! probe's `preflight` is cheap), so an unsupported case is an *ignored*
//! trial and nextest shows it as SKIP, never as PASS.
//!
//! A trial runs its check on a fresh thread with a fresh probe and waits at
//! most the case's timeout, so a hung or crashed window becomes an `error`
//! verdict and every other case goes on. Trials run one at a time: PMU work
//! must not share the machine with itself.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};

use crate::case::{Case, Suite};
use crate::environment::Environment;
use crate::event_table::ResolvedEvent;
use crate::executor::Executor;
use crate::expectation::{Expectation, Gate, Recorded, Store, TrialResult, UpdateMode};
use crate::known_bugs::KnownBugs;
use crate::outcome::Outcome;

/// Everything a run needs, built once before any trial exists.
pub struct Session {
    pub environment: Environment,
    pub suites: Vec<Suite>,
    pub executor: Arc<dyn Executor>,
    pub store: Store,
    pub bugs: Arc<KnownBugs>,
    /// Replaces every case's run budget, for quick runs and soak tests.
    pub runs_override: Option<u32>,
    /// The command that records one case's outcome here; `{case}` is replaced.
    pub bless_command: String,
}

/// One case's result, computed once (run, then diagnose, then gate), for
/// every reporter.
#[derive(Clone, Debug)]
pub struct Record {
    pub case: Arc<Case>,
    pub suite_path: String,
    /// The event as this environment encodes it, if it could be resolved.
    pub event: Option<ResolvedEvent>,
    pub outcome: Outcome,
    pub gate: Gate,
    /// What the trial reported: passed, skipped with a reason, or failed.
    pub trial: TrialResult,
}

/// Results in plan order, filled in as trials finish.
#[derive(Clone, Default)]
pub struct Records(Arc<Mutex<BTreeMap<usize, Record>>>);

impl Records {
    fn put(&self, index: usize, record: Record) {
        self.0.lock().expect("records lock").insert(index, record);
    }

    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.0.lock().expect("records lock"))
            .into_values()
            .collect()
    }
}

impl Session {
    /// The cases this environment selects, in suite order, with their budgets applied.
    pub fn selected(&self) -> Vec<(Arc<Case>, String)> {
        let mut out = Vec::new();
        for suite in &self.suites {
            for case in suite.cases.iter().filter(|c| self.environment.selects(c)) {
                let mut case = case.clone();
                if let Some(runs) = self.runs_override {
                    case.runs = runs;
                }
                out.push((Arc::new(case), suite.path.clone()));
            }
        }
        out
    }

    /// Builds the trials, deciding each case's support now.
    pub fn trials(&self, args: &Arguments) -> (Vec<Trial>, Records) {
        let records = Records::default();
        let mut trials = Vec::new();
        for (index, (case, suite_path)) in self.selected().into_iter().enumerate() {
            let preflight = self.executor.preflight(&case);
            let name = case.id.to_string();
            // Ignore it statically only when running it could change nothing:
            // unsupported, with nothing else recorded, and nothing to record.
            let unsupported = preflight
                .as_ref()
                .err()
                .map(|reason| Outcome::unsupported(reason.clone()));
            let ignore = self.store.mode == UpdateMode::Compare
                && unsupported
                    .as_ref()
                    .is_some_and(|outcome| match self.store.recorded(&case.id) {
                        Recorded::Nothing => true,
                        Recorded::Expectation(e) => e == Expectation::from(outcome),
                        Recorded::Unreadable(_) => false,
                    });
            let job = TrialJob {
                index,
                case: case.clone(),
                suite_path: suite_path.clone(),
                preflight,
                executor: self.executor.clone(),
                store: self.store.clone(),
                bugs: self.bugs.clone(),
                records: records.clone(),
                bless: self.bless_command.replace("{case}", &name),
            };
            let trial = Trial::ignorable_test(name.clone(), move || job.run()).with_ignored_flag(ignore);
            // An ignored trial's closure does not run, so record its outcome now.
            if let (true, Some(outcome)) = (ignore, unsupported)
                && !args.is_filtered_out(&trial)
                && !args.ignored
                && !args.include_ignored
            {
                let gate = self.store.gate(&case, &suite_path, &outcome);
                let trial = gate.trial_result(&outcome, &self.bless_command.replace("{case}", &name));
                records.put(
                    index,
                    Record {
                        case,
                        suite_path,
                        event: None,
                        outcome,
                        gate,
                        trial,
                    },
                );
            }
            trials.push(trial);
        }
        (trials, records)
    }

    /// Runs the trials one at a time and returns libtest's conclusion and every record.
    pub fn run(&self, args: &Arguments) -> (Conclusion, Vec<Record>) {
        let (trials, records) = self.trials(args);
        let mut args = args.clone();
        args.test_threads = Some(1);
        let conclusion = libtest_mimic::run(&args, trials);
        (conclusion, records.take())
    }
}

/// What one trial owns.
struct TrialJob {
    index: usize,
    case: Arc<Case>,
    suite_path: String,
    preflight: Result<Option<ResolvedEvent>, String>,
    executor: Arc<dyn Executor>,
    store: Store,
    bugs: Arc<KnownBugs>,
    records: Records,
    bless: String,
}

impl TrialJob {
    fn run(self) -> Result<Completion, Failed> {
        let mut outcome = match &self.preflight {
            Ok(event) => run_case(self.case.clone(), event.clone(), self.executor.clone()),
            Err(reason) => Outcome::unsupported(reason.clone()),
        };
        outcome.diagnosis = self.bugs.diagnose(&outcome, &self.case.catches);
        let gate = self.store.gate(&self.case, &self.suite_path, &outcome);
        let trial = gate.trial_result(&outcome, &self.bless);
        let result = match &trial {
            TrialResult::Passed => Ok(Completion::Completed),
            TrialResult::Skipped(reason) => Ok(Completion::ignored_with(reason.clone())),
            TrialResult::Failed(message) => Err(message.as_str().into()),
        };
        self.records.put(
            self.index,
            Record {
                case: self.case,
                suite_path: self.suite_path,
                event: self.preflight.ok().flatten(),
                outcome,
                gate,
                trial,
            },
        );
        result
    }
}

/// Runs the case on its own thread, giving up after the case's timeout.
fn run_case(case: Arc<Case>, event: Option<ResolvedEvent>, executor: Arc<dyn Executor>) -> Outcome {
    let (done, outcome) = mpsc::channel();
    let timeout = case.timeout;
    let worker = {
        let case = case.clone();
        thread::Builder::new().name(format!("pmu {}", case.id)).spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| executor.run(&case, event.as_ref())));
            let outcome = result.unwrap_or_else(|payload| {
                let message = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                Outcome::error(format!("the check panicked: {message}"))
            });
            let _ = done.send(outcome);
        })
    };
    let worker = match worker {
        Ok(handle) => handle,
        Err(e) => return Outcome::error(format!("cannot start the measuring thread: {e}")),
    };
    match outcome.recv_timeout(timeout) {
        Ok(outcome) => {
            let _ = worker.join();
            outcome
        }
        // The thread is left behind: a window cannot be interrupted safely.
        Err(RecvTimeoutError::Timeout) => Outcome::error(format!(
            "timed out after {} s; the case was abandoned",
            timeout.as_secs()
        )),
        Err(RecvTimeoutError::Disconnected) => Outcome::error("the measuring thread ended without an outcome"),
    }
}
