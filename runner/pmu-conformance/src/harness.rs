//! The plan for one environment, as libtest-mimic trials.
//!
//! One trial per selected case, named `suite/case`, so filters, `--exact`,
//! `--list`, `--ignored` and cargo-nextest behave as Rust users expect.
//! Whether a case can run here is decided while the list is built (each
//! probe's `preflight` is cheap), so an unsupported case is an *ignored*
//! trial and nextest shows it as SKIP, never as PASS.
//!
//! A trial runs its check on a fresh thread with a fresh probe and waits at
//! most the case's deadline (and [`GRACE`] for the executor to say why), so a
//! hung or crashed window becomes an `error` verdict and every other case
//! goes on. Trials run one at a time: PMU work must not share the machine
//! with itself.
//!
//! One deadline per case: the case's `timeout` (60 s unless it says), for the
//! run budget it states. `--runs N` scales it by N over that budget (never
//! below [`MIN_DEADLINE`]), and `--timeout S` replaces it. A QEMU executor
//! kills its guest at the deadline; a linux window cannot be interrupted, so
//! its thread is left to finish, and the next case waits for it (for at most
//! its own deadline) before it runs: that thread still holds the
//! notification slots and the measuring CPU.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};

use crate::case::{Case, Suite};
use crate::environment::Environment;
use crate::event_table::ResolvedEvent;
use crate::executor::Executor;
use crate::expectation::{Expectation, Gate, Recorded, Store, TrialResult, UpdateMode};
use crate::known_bugs::KnownBugs;
use crate::outcome::{Outcome, Reason, ReasonCode};

/// Everything a run needs, built once before any trial exists.
pub struct Session {
    pub environment: Environment,
    pub suites: Vec<Suite>,
    pub executor: Arc<dyn Executor>,
    pub store: Store,
    pub bugs: Arc<KnownBugs>,
    /// The hypervisor the fingerprint shows (`kvm`, `xen`, …), or `None` on
    /// bare metal: diagnoses suggest only bugs that can apply under it.
    pub hypervisor: Option<String>,
    /// Replaces every case's run budget, for quick runs and soak tests.
    pub runs_override: Option<u32>,
    /// Replaces every case's deadline.
    pub timeout_override: Option<Duration>,
    /// The command that records one case's outcome here; `{case}` is replaced.
    pub bless_command: String,
    /// A case's measuring thread that outlived its deadline, if one did.
    pub straggler: Straggler,
    /// What a case that runs past a second shows while it runs.
    pub progress: crate::progress::Progress,
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
    /// How long the case took, from its trial's start to its outcome (zero
    /// for a case skipped before it ran).
    pub duration: Duration,
}

/// Results in plan order, filled in as trials finish.
#[derive(Clone, Default)]
pub struct Records(Arc<Mutex<BTreeMap<usize, Record>>>);

impl Records {
    fn put(&self, index: usize, record: Record) {
        self.lock().insert(index, record);
    }

    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.lock()).into_values().collect()
    }

    /// The records so far, leaving them in place (for a partial report).
    pub fn snapshot(&self) -> Vec<Record> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Record>> {
        // A trial that panicked while holding the lock left whole records behind.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Session {
    /// The cases this environment selects, in suite order, with their budgets applied.
    pub fn selected(&self) -> Vec<(Arc<Case>, String)> {
        let mut out = Vec::new();
        for suite in &self.suites {
            for case in suite.cases.iter().filter(|c| self.environment.selects(c)) {
                let mut case = case.clone();
                case.timeout = deadline(&case, self.runs_override, self.timeout_override);
                case.runs = self.runs_override.unwrap_or(case.runs);
                out.push((Arc::new(case), suite.path.clone()));
            }
        }
        out
    }

    /// Builds the trials, deciding each case's support now; also returns the
    /// cases that will run, for [`Executor::plan`] (nothing runs yet).
    pub fn trials(&self, args: &Arguments) -> (Vec<Trial>, Records, Vec<Arc<Case>>) {
        let records = Records::default();
        let mut trials = Vec::new();
        let mut will_run: Vec<Arc<Case>> = Vec::new();
        // libtest's terse line has a character for each trial not filtered
        // out, in this order: where the cursor is when a trial starts.
        let mut column = 0;
        for (index, (case, suite_path)) in self.selected().into_iter().enumerate() {
            let preflight = self.executor.preflight(&case);
            let name = case.id.to_string();
            let bless = self.bless_command.replace("{case}", &name);
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
                straggler: self.straggler.clone(),
                case: case.clone(),
                suite_path: suite_path.clone(),
                preflight,
                executor: self.executor.clone(),
                store: self.store.clone(),
                bugs: self.bugs.clone(),
                hypervisor: self.hypervisor.clone(),
                records: records.clone(),
                bless: bless.clone(),
                progress: self.progress.clone(),
                column,
            };
            let supported = job.preflight.is_ok();
            let trial = Trial::ignorable_test(name.clone(), move || job.run()).with_ignored_flag(ignore);
            if !args.is_filtered_out(&trial) {
                column += 1;
            }
            if supported && !ignore && !args.is_filtered_out(&trial) {
                will_run.push(case.clone());
            }
            // An ignored trial's closure does not run, so record its outcome now.
            if let (true, Some(outcome)) = (ignore, unsupported)
                && !args.is_filtered_out(&trial)
                && !args.ignored
                && !args.include_ignored
            {
                let gate = self.store.gate(&case, &suite_path, &outcome);
                let trial = gate.trial_result(&outcome, &bless);
                records.put(
                    index,
                    Record {
                        case,
                        suite_path,
                        event: None,
                        outcome,
                        gate,
                        trial,
                        duration: Duration::ZERO,
                    },
                );
            }
            trials.push(trial);
        }
        if args.list || args.ignored {
            will_run.clear();
        }
        (trials, records, will_run)
    }

    /// Runs `trials` one at a time and returns libtest's conclusion.
    pub fn run(trials: Vec<Trial>, args: &Arguments) -> Conclusion {
        let mut args = args.clone();
        args.test_threads = Some(1);
        libtest_mimic::run(&args, trials)
    }
}

/// What one trial owns.
struct TrialJob {
    index: usize,
    straggler: Straggler,
    case: Arc<Case>,
    suite_path: String,
    preflight: Result<Option<ResolvedEvent>, Reason>,
    executor: Arc<dyn Executor>,
    store: Store,
    bugs: Arc<KnownBugs>,
    hypervisor: Option<String>,
    records: Records,
    bless: String,
    progress: crate::progress::Progress,
    /// The cursor's column in libtest's terse line when this trial starts.
    column: usize,
}

impl TrialJob {
    fn run(self) -> Result<Completion, Failed> {
        let started = Instant::now();
        let activity = self.progress.start(self.case.id.to_string(), self.column);
        let mut outcome = match &self.preflight {
            Ok(event) => match self.straggler.wait(self.case.timeout) {
                Ok(()) => run_case(self.case.clone(), event.clone(), self.executor.clone(), &self.straggler),
                Err(why) => Outcome::error(ReasonCode::Deadline, why),
            },
            Err(reason) => Outcome::unsupported(reason.clone()),
        };
        drop(activity);
        // The check's own diagnosis (a traced count, say) first, then the known bugs it matches.
        let bugs = self
            .bugs
            .diagnose(&outcome, &self.case.catches, self.hypervisor.as_deref());
        outcome.diagnosis.extend(bugs);
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
                duration: started.elapsed(),
            },
        );
        result
    }
}

/// How long after a case's deadline the harness still waits for its
/// executor's own account of it (a QEMU executor kills its guest at the
/// deadline and then says what the guest did).
pub const GRACE: Duration = Duration::from_secs(1);

/// The shortest deadline `--runs` scales a case's down to.
pub const MIN_DEADLINE: Duration = Duration::from_secs(5);

/// A case that ran past its deadline, and its measuring thread.
type Abandoned = (String, thread::JoinHandle<()>);

/// A case's deadline: its own `timeout`, scaled by `--runs` over its budget
/// (never below [`MIN_DEADLINE`]), or `--timeout`.
fn deadline(case: &Case, runs: Option<u32>, timeout: Option<Duration>) -> Duration {
    match (timeout, runs) {
        (Some(timeout), _) => timeout,
        (None, Some(runs)) => case
            .timeout
            .mul_f64(f64::from(runs) / f64::from(case.runs.max(1)))
            .max(MIN_DEADLINE),
        (None, None) => case.timeout,
    }
}

/// The measuring thread of a case that ran past its deadline, while it lives.
#[derive(Clone, Default)]
pub struct Straggler(Arc<Mutex<Option<Abandoned>>>);

impl Straggler {
    /// Waits up to `timeout` for a straggling thread to finish; says why the
    /// next case cannot run if it does not.
    fn wait(&self, timeout: Duration) -> Result<(), String> {
        let mut slot = self.0.lock().expect("straggler lock");
        let Some((case, handle)) = slot.as_ref() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "not run: `{case}` ran past its deadline and its measuring thread is still running, \
                     holding the notification slots and the measuring CPU; waited {} s for it. Cases after a \
                     window that never ends cannot be measured in this process: rerun the rest with --skip {case}",
                    timeout.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
        let (_, handle) = slot.take().expect("checked above");
        let _ = handle.join();
        Ok(())
    }

    fn leave(&self, case: String, handle: thread::JoinHandle<()>) {
        *self.0.lock().expect("straggler lock") = Some((case, handle));
    }
}

/// Runs the case on its own thread, giving up after the case's deadline and [`GRACE`].
fn run_case(
    case: Arc<Case>,
    event: Option<ResolvedEvent>,
    executor: Arc<dyn Executor>,
    straggler: &Straggler,
) -> Outcome {
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
                Outcome::error(ReasonCode::Internal, format!("the check panicked: {message}"))
            });
            let _ = done.send(outcome);
        })
    };
    let worker = match worker {
        Ok(handle) => handle,
        Err(e) => return Outcome::error(ReasonCode::Harness, format!("cannot start the measuring thread: {e}")),
    };
    match outcome.recv_timeout(timeout + GRACE) {
        Ok(outcome) => {
            let _ = worker.join();
            outcome
        }
        Err(RecvTimeoutError::Timeout) => {
            // A window cannot be interrupted safely: the thread is left to
            // finish, and the next case waits for it.
            straggler.leave(case.id.to_string(), worker);
            Outcome::error(
                ReasonCode::Deadline,
                format!("ran past its deadline of {} s and was abandoned", timeout.as_secs_f64()),
            )
        }
        Err(RecvTimeoutError::Disconnected) => {
            Outcome::error(ReasonCode::Internal, "the measuring thread ended without an outcome")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::CaseId;

    #[test]
    fn runs_scale_the_deadline_and_timeout_replaces_it() {
        let mut case = crate::case::tests::case_named(CaseId {
            suite: "s".into(),
            name: "c".into(),
        });
        case.runs = 100;
        case.timeout = Duration::from_secs(60);
        assert_eq!(deadline(&case, None, None), Duration::from_secs(60));
        assert_eq!(deadline(&case, Some(1000), None), Duration::from_secs(600));
        assert_eq!(deadline(&case, Some(50), None), Duration::from_secs(30));
        assert_eq!(deadline(&case, Some(1), None), MIN_DEADLINE, "never below the floor");
        let given = Some(Duration::from_secs(2));
        assert_eq!(deadline(&case, Some(1000), given), Duration::from_secs(2));
    }
}
