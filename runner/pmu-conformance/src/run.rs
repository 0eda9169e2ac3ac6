//! One run of the suites, from a request to its reports and exit status.
//!
//! Both front ends call [`execute`]: the `pmu-conformance` binary, and the
//! `conformance` test target that puts the same trials under `cargo test`
//! and cargo-nextest.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::Arguments;

use crate::case::{SuiteSources, load_suites};
use crate::cpu::CpuidReader;
use crate::environment::Matrices;
use crate::event_table::EventTable;
use crate::expectation::{Store, UpdateMode};
use crate::fingerprint::Fingerprint;
use crate::harness::Session;
use crate::input_error::InputErrors;
use crate::known_bugs::KnownBugs;
use crate::report;

/// What to run and what to write.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The environment id; `None` derives it from this machine's fingerprint.
    pub environment: Option<String>,
    /// Load suites from this folder instead of the built-in ones.
    pub suites: Option<PathBuf>,
    /// Load matrices from this folder instead of the built-in ones.
    pub matrices: Option<PathBuf>,
    /// The `expected/` folder; `None` uses the project's.
    pub expected: Option<PathBuf>,
    /// Record every outcome as this environment's expectation.
    pub accept: bool,
    /// The probe kernel image for `qemu` environments; `None` searches for it.
    pub kernel: Option<PathBuf>,
    /// Replace every case's run budget.
    pub runs: Option<u32>,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Print the fingerprint before the trials and the table after them.
    pub verbose_reports: bool,
    /// Refuse a filter that matches no case (the binary does; a test target
    /// shares its filter with every other test binary, so it must not).
    pub reject_empty_selection: bool,
    /// Trial selection and output, as libtest understands them.
    pub libtest: Arguments,
}

/// Why a run did not happen.
#[derive(Debug)]
pub enum RunError {
    /// Bad input: suites, matrices or arguments. Exit status 2.
    Input(InputErrors),
    /// A usage problem, such as `--accept` on CI. Exit status 2.
    Usage(String),
    /// Anything else (a report could not be written). Exit status 1.
    Other(String),
}

impl RunError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Input(_) | RunError::Usage(_) => ExitCode::from(2),
            RunError::Other(_) => ExitCode::from(1),
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Input(errors) => write!(f, "{errors}"),
            RunError::Usage(message) | RunError::Other(message) => write!(f, "error: {message}"),
        }
    }
}

impl From<InputErrors> for RunError {
    fn from(errors: InputErrors) -> RunError {
        RunError::Input(errors)
    }
}

/// The project's `expected/` folder when the binary runs from its checkout,
/// else `./expected`.
pub fn default_expected_dir() -> PathBuf {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../expected");
    match built_in.canonicalize() {
        Ok(path) => path,
        Err(_) => PathBuf::from("expected"),
    }
}

/// Loads everything, runs the selected trials and writes the reports.
/// Returns libtest's exit status: 0 when every trial is ok, 101 otherwise.
pub fn execute(request: Request) -> Result<ExitCode, RunError> {
    let mode = UpdateMode::from_env(request.accept).map_err(RunError::Usage)?;
    let table = EventTable::builtin();
    let bugs = KnownBugs::builtin();
    let sources = match &request.suites {
        Some(dir) => SuiteSources::from_dir(dir)?,
        None => SuiteSources::builtin(),
    };
    let suites = load_suites(&sources, &table, &bugs)?;
    let matrices = match &request.matrices {
        Some(dir) => Matrices::from_dir(dir)?,
        None => Matrices::builtin()?,
    };

    let here = Fingerprint::here(&table, &CpuidReader::native());
    let environment = matrices.pick(request.environment.as_deref(), &here.derived_id);
    let (executor, fingerprint) =
        crate::executor::for_environment(&environment, table, here, request.kernel.as_deref())
            .map_err(|why| RunError::Usage(format!("environment `{}`: {why}", environment.id)))?;
    let probe_description = executor.describe();

    let expected = request.expected.clone().unwrap_or_else(default_expected_dir);
    if std::env::var_os("INSTA_WORKSPACE_ROOT").is_none() {
        let root = expected.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        // SAFETY: still single-threaded: no trial has started.
        unsafe { std::env::set_var("INSTA_WORKSPACE_ROOT", root) };
    }
    let store = Store::new(&expected, &environment.expected_dir_name(), mode);
    let via_cargo = std::env::var_os("CARGO").is_some();
    let bless_command = format!(
        "{} --env {} --accept --exact {{case}}",
        if via_cargo {
            "cargo run --release --"
        } else {
            "pmu-conformance"
        },
        environment.id
    );
    let session = Session {
        environment,
        suites,
        executor,
        store,
        bugs: Arc::new(bugs),
        runs_override: request.runs,
        bless_command,
    };

    // Like datatest-stable: a filter that matches nothing is a typo, not a pass.
    if let Some(filter) = request
        .libtest
        .filter
        .as_ref()
        .filter(|_| request.reject_empty_selection)
    {
        let names: Vec<String> = session.selected().iter().map(|(c, _)| c.id.to_string()).collect();
        let matches = |n: &String| {
            if request.libtest.exact {
                n == filter
            } else {
                n.contains(filter.as_str())
            }
        };
        if !names.iter().any(matches) {
            return Err(RunError::Usage(format!(
                "no case in environment `{}` matches `{filter}`; `--list` shows them all",
                session.environment.id
            )));
        }
    }

    if request.verbose_reports && !request.libtest.list {
        println!(
            "pmu-conformance {} — environment {} ({}), probe: {probe_description}",
            env!("CARGO_PKG_VERSION"),
            session.environment.id,
            session.environment.about
        );
        println!("\n{}", fingerprint.to_yaml());
    }

    let (conclusion, records) = session.run(&request.libtest);
    if request.libtest.list {
        return Ok(ExitCode::SUCCESS);
    }
    if request.verbose_reports {
        println!("\n{}", report::table::render(&records, &session.environment.id));
    }
    if let Some(path) = &request.json {
        let value = report::json::render(&records, &session.environment, &probe_description, Some(&fingerprint));
        let text = serde_json::to_string_pretty(&value).expect("reports serialise");
        write_report(path, &text)?;
    }
    if let Some(path) = &request.junit {
        write_report(path, &report::junit::render(&records, &session.environment.id))?;
    }
    Ok(conclusion.exit_code())
}

fn write_report(path: &Path, text: &str) -> Result<(), RunError> {
    let mut file =
        std::fs::File::create(path).map_err(|e| RunError::Other(format!("cannot write {}: {e}", path.display())))?;
    writeln!(file, "{text}").map_err(|e| RunError::Other(format!("cannot write {}: {e}", path.display())))
}
