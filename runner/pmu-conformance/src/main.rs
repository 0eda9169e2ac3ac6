//! The `pmu-conformance` command: run the suites here, print this machine's
//! fingerprint, validate suites, or show how events resolve on this CPU.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use comfy_table::Table;
use libtest_mimic::Arguments;
use pmu_conformance::case::{SuiteSources, load_suites};
use pmu_conformance::cpu::CpuidReader;
use pmu_conformance::environment::Matrices;
use pmu_conformance::event_table::{EventTable, Exactness};
use pmu_conformance::fingerprint::Fingerprint;
use pmu_conformance::known_bugs::KnownBugs;
use pmu_conformance::run::{self, Request, RunError};

/// Does this machine's PMU count exactly, deliver every overflow interrupt,
/// and keep counts exact across overflow?
///
/// Without a subcommand, runs every suite on this machine: it prints the
/// machine's fingerprint, one line per case as it runs, and a table of
/// verdicts. Each outcome is compared with the expectations recorded for this
/// environment under expected/<environment>/; where nothing is recorded, a
/// case must pass. Unsupported cases are skipped with their reason.
///
/// Exit status: 0 when every case is as expected, 101 when any is not,
/// 2 on bad input (suites, matrices, arguments).
#[derive(Parser)]
#[command(name = "pmu-conformance", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the suites (the default).
    Run(RunArgs),
    /// Print this machine's fingerprint as YAML.
    Env {
        /// Print the raw CPUID leaves the fingerprint read instead, as a dump
        /// that tests can replay (`[leaf, subleaf, eax, ebx, ecx, edx]`).
        #[arg(long)]
        cpuid: bool,
    },
    /// Validate suites and matrices without running anything.
    Check {
        #[arg(long, value_name = "DIR")]
        suites: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        matrices: Option<PathBuf>,
    },
    /// Show how each event in the event table resolves on this CPU.
    Events,
    /// Print the detection matrix: which case catches which known bug, with
    /// what probability, on the reference model (as matrices/detection-matrix.md).
    DetectionMatrix,
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Run only cases whose `suite/case` name contains FILTER.
    filter: Option<String>,
    /// Match FILTER against whole names only.
    #[arg(long)]
    exact: bool,
    /// Skip cases whose name contains PATTERN (repeatable).
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,
    /// List the cases this environment selects, and run nothing.
    #[arg(long)]
    list: bool,
    /// Run only the cases that are skipped as unsupported (they report why).
    #[arg(long)]
    ignored: bool,
    /// Run unsupported cases too.
    #[arg(long)]
    include_ignored: bool,
    /// The environment: an id from matrices/ or any label for this machine.
    /// Default: the id this machine's fingerprint derives.
    #[arg(long, value_name = "ID")]
    env: Option<String>,
    /// Load suites from DIR instead of the ones built in.
    #[arg(long, value_name = "DIR")]
    suites: Option<PathBuf>,
    /// Load matrices from DIR instead of the ones built in.
    #[arg(long, value_name = "DIR")]
    matrices: Option<PathBuf>,
    /// Where recorded expectations live. Default: the project's expected/.
    #[arg(long, value_name = "DIR")]
    expected: Option<PathBuf>,
    /// Record every outcome as this environment's expectation (never on CI).
    #[arg(long)]
    accept: bool,
    /// The probe kernel image that `qemu` environments boot. Default:
    /// $PMUC_PROBE_KERNEL, else where `cargo xtask kernel` builds it.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Run each case N times instead of its own run budget.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Write the JSON report to PATH (schema in README.md).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report to PATH.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Print only the trial lines and the summary.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_suites(cli.run),
        Some(Command::Run(args)) => run_suites(args),
        Some(Command::Env { cpuid }) => Ok(print_env(cpuid)),
        Some(Command::Check { suites, matrices }) => check(suites, matrices),
        Some(Command::Events) => Ok(print_events()),
        Some(Command::DetectionMatrix) => print_detection_matrix(),
    };
    result.unwrap_or_else(|error| {
        eprintln!("{error}");
        error.exit_code()
    })
}

fn run_suites(args: RunArgs) -> Result<ExitCode, RunError> {
    let libtest = Arguments {
        filter: args.filter,
        exact: args.exact,
        skip: args.skip,
        list: args.list,
        ignored: args.ignored,
        include_ignored: args.include_ignored,
        quiet: args.quiet,
        ..Arguments::default()
    };
    run::execute(Request {
        environment: args.env,
        suites: args.suites,
        matrices: args.matrices,
        expected: args.expected,
        accept: args.accept,
        runs: args.runs,
        kernel: args.kernel,
        json: args.json,
        junit: args.junit,
        verbose_reports: !args.quiet,
        reject_empty_selection: true,
        libtest,
    })
}

fn print_env(cpuid: bool) -> ExitCode {
    let reader = CpuidReader::native();
    let fingerprint = Fingerprint::here(&EventTable::builtin(), &reader);
    if cpuid {
        print!("{}", serde_saphyr::to_string(&reader.dump()).expect("dumps serialise"));
    } else {
        print!("{}", fingerprint.to_yaml());
    }
    ExitCode::SUCCESS
}

fn check(suites: Option<PathBuf>, matrices: Option<PathBuf>) -> Result<ExitCode, RunError> {
    let table = EventTable::builtin();
    let sources = match suites {
        Some(dir) => SuiteSources::from_dir(&dir)?,
        None => SuiteSources::builtin(),
    };
    let loaded = load_suites(&sources, &table, &KnownBugs::builtin())?;
    let environments = match matrices {
        Some(dir) => Matrices::from_dir(&dir)?,
        None => Matrices::builtin()?,
    };
    let cases: usize = loaded.iter().map(|s| s.cases.len()).sum();
    println!(
        "ok: {} suites, {cases} cases, {} environments",
        loaded.len(),
        environments.environments.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_detection_matrix() -> Result<ExitCode, RunError> {
    let table = EventTable::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &KnownBugs::builtin())?;
    print!(
        "{}",
        pmu_conformance::detection_matrix::compute(&suites, table).to_markdown()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_events() -> ExitCode {
    let table = EventTable::builtin();
    let fingerprint = Fingerprint::here(&table, &CpuidReader::native());
    let cpu = &fingerprint.cpu.identity;
    println!(
        "{cpu}: {}",
        fingerprint
            .cpu
            .microarchitecture
            .as_deref()
            .unwrap_or("not in the event table")
    );
    let mut out = Table::new();
    out.load_style(pmu_conformance::report::table::STYLE).set_header(vec![
        "event",
        "encoding here",
        "skid budget",
        "exact",
    ]);
    for name in table.events.keys() {
        let exact = match &table.events[name].exactness {
            Exactness::Exact => "yes".to_owned(),
            Exactness::Inexact(why) => format!("no: {why}"),
        };
        let (encoding, skid) = match table.resolve(name, cpu, &fingerprint.pmu.architectural) {
            Ok(e) => (
                e.encoding.to_string(),
                e.skid.map_or("unknown".to_owned(), |s| s.to_string()),
            ),
            Err(reason) => (format!("unsupported: {reason}"), String::new()),
        };
        out.add_row(vec![name.clone(), encoding, skid, exact]);
    }
    println!("{out}");
    ExitCode::SUCCESS
}
