//! `pmu-conformance matrix`: one command reaches every environment of a
//! matrix file, in parallel, each gated against its own expectations.
//!
//! Each environment runs as a child runner, this same executable with
//! `run --matrices FILE --env ID` ([`child`]), in a process group of its
//! own, with its own deadline: a guest that hangs or an ssh connection that
//! drops ends one environment and never the others. A child writes its typed
//! report, its output and its guests' consoles into the environment's
//! artifacts folder; the matrix reads the reports back and renders them
//! together ([`report`], [`table`]), while [`progress`] shows how far each
//! one has got.
//!
//! Everything about the request (the file, the pattern, the folders) is
//! checked before the first child starts: bad input exits 2, and a matrix
//! whose every environment was as expected exits 0, otherwise 101, as
//! `run` does.

pub mod child;
pub mod progress;
pub mod report;
pub mod table;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::case::{SuiteSources, load_suites};
use crate::environment::{Environment, Matrices, Target};
use crate::event_table::EventTable;
use crate::known_bugs::KnownBugs;
use crate::run::RunError;
use crate::vocabulary::Accel;

use self::report::{EnvironmentRun, MatrixReport, RunStatus};

/// What `matrix run` and `matrix list` were asked for.
#[derive(Clone, Debug, Default)]
pub struct MatrixRequest {
    /// The matrix file.
    pub file: PathBuf,
    /// Only environments whose id contains this.
    pub pattern: Option<String>,
    /// How many environments run at once; default one per core.
    pub jobs: Option<usize>,
    /// The artifacts folder; default `pmuc-matrix/<file stem>` here.
    pub out: Option<PathBuf>,
    /// Passed to each child: `--expected`, `--kernel`, `--suites`, `--timeout`.
    pub expected: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub suites: Option<PathBuf>,
    pub timeout: Option<u64>,
    /// Also write the matrix report here (it is always in the artifacts folder).
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
}

/// One environment of the matrix, as it will run.
#[derive(Clone, Debug)]
pub struct Planned {
    pub environment: Environment,
    /// The cases it selects, as `suite/case`.
    pub cases: Vec<String>,
    /// When its child is killed, whatever it is doing.
    pub deadline: Duration,
}

/// Time a child gets beyond its cases' own deadlines: to start, to load, to
/// write its report.
const CHILD_MARGIN: Duration = Duration::from_secs(30);

/// The environments `request` selects, validated, with their cases.
pub fn plan(request: &MatrixRequest) -> Result<Vec<Planned>, RunError> {
    if !request.file.is_file() {
        return Err(RunError::Usage(format!(
            "{}: not a matrix file (matrices/*.yaml are; `pmu-conformance environments` lists what they define)",
            request.file.display()
        )));
    }
    let matrices = Matrices::from_path(&request.file)?;
    let table = EventTable::builtin();
    let sources = match &request.suites {
        Some(dir) => SuiteSources::from_dir(dir)?,
        None => SuiteSources::builtin(),
    };
    let suites = load_suites(&sources, &table, &KnownBugs::builtin())?;
    let planned: Vec<Planned> = matrices
        .environments
        .values()
        .filter(|e| request.pattern.as_deref().is_none_or(|p| e.id.as_str().contains(p)))
        .map(|environment| {
            let selected: Vec<_> = suites
                .iter()
                .flat_map(|s| s.cases.iter())
                .filter(|c| environment.selects(c))
                .collect();
            let per_case = |c: &crate::case::Case| request.timeout.map_or(c.timeout, Duration::from_secs);
            let deadline = match &environment.target {
                Target::QemuLinux(guest) => {
                    let attempts = if guest.accel == Accel::Tcg { 2 } else { 1 };
                    guest.deadline * attempts
                }
                Target::Ssh(remote) => remote.deadline,
                // The hello, the boot of every case together (within the
                // longest deadline), then each case alone at worst.
                Target::Qemu(_) | Target::Xl(_) => {
                    crate::executor::qemu::HELLO_TIMEOUT
                        + selected.iter().map(|c| per_case(c)).max().unwrap_or_default()
                        + selected.iter().map(|c| per_case(c)).sum::<Duration>()
                }
                Target::Local | Target::Sim { .. } => selected.iter().map(|c| per_case(c)).sum(),
            } + CHILD_MARGIN;
            Planned {
                environment: environment.clone(),
                cases: selected.iter().map(|c| c.id.to_string()).collect(),
                deadline,
            }
        })
        .collect();
    if planned.is_empty() {
        let known: Vec<&str> = matrices.environments.keys().map(String::as_str).collect();
        return Err(RunError::Usage(match &request.pattern {
            Some(p) => format!(
                "--env {p}: no environment of {} matches (it defines {})",
                request.file.display(),
                known.join(", ")
            ),
            None => format!("{} defines no environment", request.file.display()),
        }));
    }
    Ok(planned)
}

/// `matrix list`: what a matrix would run, and nothing more.
pub fn list(request: &MatrixRequest) -> Result<ExitCode, RunError> {
    let planned = plan(request)?;
    print!("{}", table::plan(&request.file, &planned));
    Ok(ExitCode::SUCCESS)
}

/// `matrix run`: every selected environment, `jobs` at a time.
pub fn run(request: &MatrixRequest) -> Result<ExitCode, RunError> {
    let planned = plan(request)?;
    let out = request.out.clone().unwrap_or_else(|| {
        let stem = request
            .file
            .file_stem()
            .map_or_else(|| "matrix".into(), |s| s.to_os_string());
        Path::new("pmuc-matrix").join(stem)
    });
    for path in [&request.json, &request.junit].into_iter().flatten() {
        crate::report::check_destination(path).map_err(|e| RunError::Usage(e.to_string()))?;
    }
    for (flag, path) in [("--expected", &request.expected), ("--suites", &request.suites)] {
        if let Some(dir) = path.as_ref().filter(|d| !d.is_dir()) {
            return Err(RunError::Usage(format!("{flag} {}: not a folder", dir.display())));
        }
    }
    if let Some(kernel) = request.kernel.as_ref().filter(|k| !k.is_file()) {
        return Err(RunError::Usage(format!("--kernel {}: not a file", kernel.display())));
    }
    // Only once all the input is good does anything land on disk.
    std::fs::create_dir_all(&out)
        .map_err(|e| RunError::Usage(format!("the artifacts folder {}: {e}", out.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| RunError::Environment(format!("finding this executable to run each environment: {e}")))?;
    let jobs = request
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, planned.len());

    let started = Instant::now();
    let display = progress::Display::new(&planned, jobs, &request.file);
    let interrupted = Arc::new(AtomicBool::new(false));
    let watch = {
        let interrupted = interrupted.clone();
        crate::interrupt::Watch::start(move |signal| {
            interrupted.store(true, Ordering::SeqCst);
            crate::supervised::signal_every_child(signal);
        })
        .map_err(|e| RunError::Environment(format!("watching for SIGINT: {e}")))?
    };
    let queue: Mutex<Vec<(usize, &Planned)>> = Mutex::new(planned.iter().enumerate().rev().collect());
    let results: Mutex<Vec<Option<EnvironmentRun>>> = Mutex::new(vec![None; planned.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((index, p)) = next else { break };
                    let run = if interrupted.load(Ordering::SeqCst) {
                        EnvironmentRun::not_started(
                            p,
                            RunStatus::Interrupted,
                            "the matrix was interrupted before it started",
                        )
                    } else {
                        let dir = out.join(p.environment.id.as_str());
                        let bar = display.start(p);
                        let on_case = |case: &str| bar.case(case);
                        let run = match child::run(&exe, &child_args(request, p, &dir), &dir, p.deadline, &on_case) {
                            Ok(done) => EnvironmentRun::of(p, &dir, done),
                            Err(e) => {
                                EnvironmentRun::not_started(p, RunStatus::Crashed, &format!("starting its runner: {e}"))
                            }
                        };
                        display.finish(&bar, &run);
                        run
                    };
                    results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(run);
                }
            });
        }
    });
    drop(watch);
    display.clear();
    let environments: Vec<EnvironmentRun> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let report = MatrixReport::new(&request.file, jobs, started.elapsed(), environments, &out);
    println!("{}", table::render(&report));
    println!("{}", report.summary_line());
    let json = out.join("matrix.json");
    let junit = out.join("matrix.junit.xml");
    for path in std::iter::once(&json).chain(&request.json) {
        crate::report::write_atomically(path, |w| report::write_json(&report, w))
            .map_err(|e| RunError::Report(e.to_string()))?;
    }
    let junit_text = report::render_junit(&report);
    for path in std::iter::once(&junit).chain(&request.junit) {
        crate::report::write_atomically(path, |w| w.write_all(junit_text.as_bytes()))
            .map_err(|e| RunError::Report(e.to_string()))?;
    }
    println!(
        "matrix report: {}; JUnit: {}; artifacts: {}",
        json.display(),
        junit.display(),
        out.display()
    );
    Ok(if interrupted.load(Ordering::SeqCst) {
        ExitCode::from(130)
    } else if report.environments.iter().all(|e| e.status == RunStatus::Ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    })
}

/// The child's command line: one environment of this file, its report and
/// consoles into its artifacts folder.
fn child_args(request: &MatrixRequest, p: &Planned, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "run".into(),
        "--matrices".into(),
        request.file.clone().into(),
        "--env".into(),
        p.environment.id.as_str().into(),
        "--json".into(),
        dir.join("report.json").into(),
        "--consoles".into(),
        dir.join("consoles").into(),
        // libtest's `test <case> ...` lines, which the progress reads.
        "--trial-lines".into(),
    ];
    let mut pass = |flag: &str, value: Option<OsString>| {
        if let Some(v) = value {
            args.push(flag.into());
            args.push(v);
        }
    };
    pass("--expected", request.expected.clone().map(Into::into));
    pass("--kernel", request.kernel.clone().map(Into::into));
    pass("--suites", request.suites.clone().map(Into::into));
    pass("--timeout", request.timeout.map(|t| t.to_string().into()));
    args
}
