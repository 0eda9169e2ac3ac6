//! One run of the suites, from a request to its reports and exit status.
//!
//! Both front ends call [`execute`]: the `pmu-conformance` binary, and the
//! `conformance` test target that puts the same trials under `cargo test`
//! and cargo-nextest. Everything that can be wrong with the request (the
//! suites, the matrices, the environment's name, where expectations and
//! reports go) is found before the first trial runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Arguments;

use crate::case::{SuiteSources, load_suites};
use crate::cpu::CpuidReader;
use crate::environment::{Choice, Matrices};
use crate::event_table::EventTable;
use crate::executor::StartError;
use crate::executor::qemu::launcher;
use crate::expectation::location::VARIABLE;
use crate::expectation::{Location, Store, UpdateMode};
use crate::fingerprint::Fingerprint;
use crate::harness::{Session, Straggler};
use crate::input_error::InputErrors;
use crate::interrupt::{self, Watch};
use crate::known_bugs::KnownBugs;
use crate::report::{self, Report};
use crate::vocabulary::EnvironmentId;

/// What to run and what to write.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `--env`: a listed environment, or this machine's derived id; with
    /// neither this nor `label`, this machine under its derived id.
    pub environment: Option<String>,
    /// `--label`: this machine, under a name of the user's choosing.
    pub label: Option<String>,
    /// Load suites from this folder instead of the built-in ones.
    pub suites: Option<PathBuf>,
    /// Load matrices from this folder instead of the built-in ones.
    pub matrices: Option<PathBuf>,
    /// `--expected`: the expectations folder (see `expectation::location`).
    pub expected: Option<PathBuf>,
    /// Record every outcome as this environment's expectation.
    pub accept: bool,
    /// The probe kernel image for `qemu` environments; `None` searches for it.
    pub kernel: Option<PathBuf>,
    /// Replace every case's run budget (and scale its deadline to match).
    pub runs: Option<u32>,
    /// Replace every case's deadline.
    pub timeout: Option<Duration>,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Keep each guest's console in this folder, one file per boot.
    pub consoles: Option<PathBuf>,
    /// What goes to standard output besides libtest's trial lines.
    pub output: Output,
    /// Refuse a filter or skip that matches no case (the binary does; a test
    /// target shares its filter with every other test binary, so it must not).
    pub reject_empty_selection: bool,
    /// Trial selection and output, as libtest understands them.
    pub libtest: Arguments,
    /// What is shown while a guest boots or a case runs past a second.
    pub progress: crate::progress::Progress,
}

/// What a run prints on standard output, besides libtest's trial lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// The fingerprint before the trials, the table and the summary line after.
    Verbose,
    /// The summary line only (`-q`).
    #[default]
    Quiet,
    /// KTAP version 1 and nothing else: libtest's lines go nowhere
    /// (`--format ktap`).
    Ktap,
}

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: suites or matrices. Exit status 2.
    #[error("{0}")]
    Input(#[from] InputErrors),
    /// A bad argument, or one that does not fit this run (`--accept` on
    /// CI, an unknown environment, an `--expected` that is a file). Exit status 2.
    #[error("error: {0}")]
    Usage(String),
    /// The environment cannot be reached here: no QEMU, no image, a guest
    /// that does not boot. Exit status 1.
    #[error("error: {0}")]
    Environment(String),
    /// A report could not be written. Exit status 1.
    #[error("error: {0}")]
    Report(String),
}

impl RunError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Input(_) | RunError::Usage(_) => ExitCode::from(2),
            RunError::Environment(_) | RunError::Report(_) => ExitCode::from(1),
        }
    }
}

/// Loads everything, runs the selected trials and writes the reports.
/// Returns libtest's exit status: 0 when every trial is ok, 101 otherwise.
pub fn execute(request: Request) -> Result<ExitCode, RunError> {
    let started = std::time::SystemTime::now();
    let usage = |e: &dyn std::fmt::Display| RunError::Usage(e.to_string());
    let mode = UpdateMode::from_env(request.accept).map_err(|e| usage(&e))?;
    let cwd = std::env::current_dir().map_err(|e| RunError::Usage(format!("the working directory: {e}")))?;
    let location = Location::find(
        request.expected.as_deref(),
        std::env::var_os(VARIABLE),
        &cwd,
        mode != UpdateMode::Compare,
    )
    .map_err(|e| usage(&e))?;
    for path in [&request.json, &request.junit].into_iter().flatten() {
        report::check_destination(path).map_err(|e| usage(&e))?;
    }
    if let Some(dir) = &request.consoles {
        std::fs::create_dir_all(dir).map_err(|e| RunError::Usage(format!("--consoles {}: {e}", dir.display())))?;
        launcher::keep_consoles_in(dir.clone());
    }

    let table = EventTable::builtin();
    let bugs = KnownBugs::builtin();
    let sources = match &request.suites {
        Some(dir) => SuiteSources::from_dir(dir)?,
        None => SuiteSources::builtin(),
    };
    let suites = load_suites(&sources, &table, &bugs)?;
    let matrices = match &request.matrices {
        Some(dir) => Matrices::from_path(dir)?,
        None => Matrices::builtin()?,
    };

    let here = Fingerprint::here(&table, &CpuidReader::native());
    let choice = match (&request.environment, &request.label) {
        (Some(_), Some(_)) => return Err(RunError::Usage("give --env or --label, not both".into())),
        (Some(id), None) => Choice::Named(id),
        (None, Some(label)) => Choice::Label(label),
        (None, None) => Choice::Derived,
    };
    let environment = matrices.pick(choice, &here.derived_id).map_err(|e| usage(&e))?;
    // The kernel cases this run will probably ask for: the environment's,
    // less those the filter leaves out.
    let likely: Vec<Arc<crate::case::Case>> = suites
        .iter()
        .flat_map(|s| &s.cases)
        .filter(|c| c.probe == crate::vocabulary::ProbeKind::Kernel && environment.selects(c))
        .filter(|c| {
            let trial = libtest_mimic::Trial::test(c.id.to_string(), || Ok(()));
            !request.libtest.list && !request.libtest.is_filtered_out(&trial)
        })
        .map(|c| Arc::new(c.clone()))
        .collect();
    let starting = request.progress.start(format!("{}: starting", environment.id), 0);
    let started_executor =
        crate::executor::for_environment(&environment, table, here, request.kernel.as_deref(), &likely);
    drop(starting);
    let (executor, fingerprint) = started_executor.map_err(|e| match e {
        StartError::Argument(why) => RunError::Usage(format!("environment `{}`: {why}", environment.id)),
        StartError::Unavailable(why) => RunError::Environment(format!("environment `{}`: {why}", environment.id)),
    })?;
    let probe_description = executor.describe();
    let host_class = EnvironmentId::parse(&fingerprint.derived_id).map_err(|e| {
        RunError::Environment(format!(
            "the fingerprint derives a host class that cannot name a folder: {e}"
        ))
    })?;
    let store = Store::new(
        location.root.as_deref(),
        &environment.id.folder(),
        host_class.as_str(),
        mode,
    );
    let session = Session {
        bless_command: bless_command(&request, &environment.id, choice),
        environment,
        suites,
        executor,
        store,
        bugs: Arc::new(bugs),
        hypervisor: fingerprint.hypervisor.as_ref().map(|h| h.name.clone()),
        runs_override: request.runs,
        timeout_override: request.timeout,
        straggler: Straggler::default(),
        progress: request.progress.clone(),
    };
    if request.reject_empty_selection {
        check_selection(&session, &request.libtest)?;
    }

    let expectations = expectations_line(&session.store, &location, &host_class);
    if !request.libtest.list {
        if request.output == Output::Verbose {
            let banner = format!(
                "pmu-conformance {} — environment {} ({}), probe: {probe_description}",
                env!("CARGO_PKG_VERSION"),
                session.environment.id,
                session.environment.about
            );
            for line in report::table::wrap(&banner, usize::from(report::table::width())) {
                println!("{line}");
            }
            println!("\n{}", fingerprint.to_yaml());
        }
        // The model's guests have no host to mismatch.
        let modelled = matches!(session.environment.target, crate::environment::Target::Sim { .. });
        if let Some(warning) = fingerprint
            .cpu_model_warning(&EventTable::builtin())
            .filter(|_| !modelled)
        {
            eprintln!("{warning}");
        }
        if request.output != Output::Ktap {
            for line in report::table::wrap(&expectations, usize::from(report::table::width())) {
                println!("{line}");
            }
        }
    }

    let (trials, records, will_run) = session.trials(&request.libtest);
    // The trials that will run (or be skipped), not those a filter leaves out.
    let total = trials.iter().filter(|t| !request.libtest.is_filtered_out(t)).count();
    let partial = Partial {
        environment: session.environment.clone(),
        probe: probe_description.clone(),
        host_class: host_class.to_string(),
        expectations: expectations.clone(),
        fingerprint: fingerprint.clone(),
        started,
    };
    let watch = if request.libtest.list {
        None
    } else {
        let (partial, records, request) = (partial.clone(), records.clone(), request.clone());
        let on_signal = move |signal| partial.end_interrupted(signal, &records.snapshot(), total, &request);
        let watch =
            Watch::start(on_signal).map_err(|e| RunError::Environment(format!("watching SIGINT and SIGTERM: {e}")))?;
        Some(watch)
    };
    // Under the watch: an executor may boot a guest for the planned cases now.
    let planning = request.progress.start(
        format!("{}: preparing {} cases", session.environment.id, will_run.len()),
        0,
    );
    session.executor.plan(&will_run);
    drop(planning);
    let conclusion = Session::run(trials, &request.libtest);
    drop(watch);
    if request.libtest.list {
        return Ok(ExitCode::SUCCESS);
    }
    let report = partial.report(&records.take());
    match request.output {
        Output::Verbose => println!("\n{}", report::table::render(&report)),
        Output::Quiet => print!("{}", report::table::summary_line(&report)),
        Output::Ktap => print!("{}", report::ktap::render(&report)),
    }
    write_reports(&report, &request)?;
    Ok(conclusion.exit_code())
}

/// What a report needs besides the records, kept so that an interrupted
/// run can write one from whatever finished.
#[derive(Clone)]
struct Partial {
    environment: crate::environment::Environment,
    probe: String,
    host_class: String,
    expectations: String,
    fingerprint: Fingerprint,
    /// When the run started, for the report's timestamp.
    started: std::time::SystemTime,
}

impl Partial {
    fn report(&self, records: &[crate::harness::Record]) -> Report {
        Report::new(
            records,
            &self.environment,
            &self.probe,
            &self.host_class,
            &self.expectations,
            Some(&self.fingerprint),
        )
        .at(self.started, report::hostname())
    }

    /// On SIGINT or SIGTERM: kill the guests, write what finished as a
    /// partial report, and exit with 128 + the signal.
    fn end_interrupted(&self, signal: i32, records: &[crate::harness::Record], total: usize, request: &Request) -> ! {
        launcher::kill_every_guest();
        let mut report = self.report(records);
        let why = format!(
            "{} after {} of {total} cases; the rest did not run",
            interrupt::name(signal),
            records.len()
        );
        report.interrupted = Some(why.clone());
        let written = match write_reports(&report, request) {
            Ok(()) if request.json.is_some() || request.junit.is_some() => "; the partial report is written",
            Ok(()) => "",
            Err(e) => {
                eprintln!("{e}");
                ""
            }
        };
        eprintln!("\npmu-conformance: interrupted by {why}{written}");
        std::process::exit(128 + signal)
    }
}

/// Writes the JSON and JUnit reports the request asks for.
fn write_reports(report: &Report, request: &Request) -> Result<(), RunError> {
    let failed = |e: report::DestinationError| RunError::Report(e.to_string());
    if let Some(path) = &request.json {
        report::write_atomically(path, |out| report::json::write(report, out)).map_err(failed)?;
    }
    if let Some(path) = &request.junit {
        let text = report::junit::render(report);
        report::write_atomically(path, |out| writeln!(out, "{text}")).map_err(failed)?;
    }
    Ok(())
}

/// The command that records one case's outcome here; `{case}` stands for the case.
fn bless_command(request: &Request, id: &EnvironmentId, choice: Choice<'_>) -> String {
    let program = if std::env::var_os("CARGO").is_some() {
        "cargo run --release --"
    } else {
        "pmu-conformance"
    };
    let named = match choice {
        Choice::Label(_) => format!(" --label {id}"),
        Choice::Named(_) | Choice::Derived => format!(" --env {id}"),
    };
    let expected = request
        .expected
        .as_deref()
        .map_or_else(String::new, |dir| format!(" --expected {}", dir.display()));
    format!("{program}{named}{expected} --accept --exact {{case}}")
}

/// Like datatest-stable: a filter, or a `--skip`, that matches no case is a
/// typo, not a pass.
fn check_selection(session: &Session, args: &Arguments) -> Result<(), RunError> {
    let names: Vec<String> = session.selected().iter().map(|(c, _)| c.id.to_string()).collect();
    let matches = |pattern: &str, exact: bool| {
        names
            .iter()
            .any(|n| if exact { n == pattern } else { n.contains(pattern) })
    };
    let id = &session.environment.id;
    if let Some(filter) = &args.filter
        && !matches(filter, args.exact)
    {
        return Err(RunError::Usage(format!(
            "no case in environment `{id}` matches `{filter}`; `--list` shows them all"
        )));
    }
    for skip in &args.skip {
        if !matches(skip, args.exact) {
            return Err(RunError::Usage(format!(
                "--skip {skip}: no case in environment `{id}` matches it; `--list` shows them all"
            )));
        }
    }
    Ok(())
}

/// The header line that says what the gate compares with.
fn expectations_line(store: &Store, location: &Location, class: &EnvironmentId) -> String {
    let strict = "every case must pass on its own, and unsupported ones are skipped";
    match &store.dir {
        None => format!("expectations: none ({location}): {strict}"),
        Some(dir) => match store.count() {
            0 => format!(
                "expectations: none recorded for host class {class} in {} (from {location}): {strict}",
                shown(dir.parent().unwrap_or(dir))
            ),
            n => format!("expectations: {} ({n} recorded, from {location})", shown(dir)),
        },
    }
}

fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}
