//! The `pmu-conformance` command: run the suites here, print this machine's
//! fingerprint, validate suites, or show how events resolve on this CPU.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use comfy_table::Table;
use libtest_mimic::{Arguments, ColorSetting, FormatSetting};
use pmu_conformance::case::{SuiteSources, load_suites};
use pmu_conformance::cpu::{CpuidDump, CpuidReader};
use pmu_conformance::environment::Matrices;
use pmu_conformance::event_table::{EventTable, Exactness};
use pmu_conformance::fingerprint::Fingerprint;
use pmu_conformance::known_bugs::KnownBugs;
use pmu_conformance::run::{self, Output, Request, RunError};

/// Does this machine's PMU count exactly, deliver every overflow interrupt,
/// and keep counts exact across overflow?
///
/// Without a subcommand, runs every suite on this machine: it prints the
/// machine's fingerprint, a dot per case as it ends, and a table of
/// verdicts. Each outcome is compared with the expectations recorded for this
/// environment and host class under expected/<environment>/<host class>/;
/// where nothing is recorded, a case must pass. Unsupported cases are skipped
/// with their reason.
///
/// Expectations are read from --expected DIR, else $PMU_CONFORMANCE_EXPECTED,
/// else the expected/ folder of the checkout the run starts in, else nowhere
/// (then every case must pass on its own).
///
/// Exit status: 0 when every case is as expected, 101 when any is not,
/// 2 on bad input (suites, matrices, arguments), 1 when the environment
/// cannot be reached or a report cannot be written.
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
    Run(Box<RunArgs>),
    /// Print a completion script for SHELL, e.g. `pmu-conformance
    /// completions bash > ~/.local/share/bash-completion/completions/pmu-conformance`
    /// (`cargo xtask dist` writes them beside the static runner).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Certify this machine (or the one a report came from): run the suites
    /// (with the run's options), or read `--from REPORT.json`, and write
    /// `certificate.md` and `certificate.html` to `--out`. Exit status 0 when
    /// certified, 101 when not (a case failed, no PMU case passed, or under
    /// `--strict` a case was unsupported for a reason other than the machine's
    /// class lacking the feature), 2 on bad input.
    Certify {
        /// Also refuse cases left unsupported by a vPMU that is off, filtered
        /// or refused (only a missing feature of the CPU's class is excused).
        #[arg(long)]
        strict: bool,
        /// Certify from this report (`--json` of a run here or elsewhere)
        /// instead of running the suites.
        #[arg(long, value_name = "REPORT")]
        from: Option<PathBuf>,
        /// Where the certificate's two files go.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
    /// Compare machines: one table of reports × cases, from `--json` reports,
    /// matrix reports (`matrix.json`) or folders of them, with each row whose
    /// outcomes differ marked `≠`. Exit status 0; 2 if a report cannot be read.
    Compare {
        /// Reports, matrix reports, or folders of them.
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// `terminal` (a table that fits $COLUMNS), `markdown`, or `html` (one self-contained page).
        #[arg(long, value_enum, default_value_t = CompareFormat::Terminal)]
        format: CompareFormat,
        /// Colour the differing rows (`auto`: on a terminal, unless NO_COLOR is set).
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorSetting::Auto)]
        color: ColorSetting,
    },
    /// Print the man page (roff), e.g. `pmu-conformance man | man -l -`, or
    /// with SUBCOMMAND that subcommand's page (`pmu-conformance-SUBCOMMAND(1)`).
    Man { subcommand: Option<String> },
    /// Print this machine's fingerprint as YAML.
    Env {
        /// Print the raw CPUID leaves the fingerprint read instead, as a dump
        /// that `--cpuid-replay` and tests replay (`"leaf.subleaf: eax ebx ecx edx"`).
        #[arg(long, conflicts_with = "cpuid_replay")]
        cpuid: bool,
        /// Derive the fingerprint from a dump that `env --cpuid` printed (on
        /// another machine, say) instead of this machine's CPUID. There is no
        /// Linux part then, so the PMU part of the id comes from CPUID alone.
        #[arg(long, value_name = "FILE")]
        cpuid_replay: Option<PathBuf>,
    },
    /// Print the table of a JSON report written by `--json`, here or on
    /// another machine. Exit status as for the run it reports: 0 when every
    /// trial was ok, 101 when any failed.
    Show {
        /// The report (schema pmu-conformance/report/v2).
        report: PathBuf,
    },
    /// List every environment the matrices define, with its kind.
    Environments {
        #[arg(long, value_name = "DIR")]
        matrices: Option<PathBuf>,
    },
    /// List the stable codes outcomes are given in: failure signatures, the
    /// units of their magnitudes, and the reasons a case was not judged.
    /// Expectations and known-bugs.yaml's `shows` hold these, never sentences.
    Codes,
    /// Write an initramfs whose /init is this runner (or `--runner PATH`):
    /// booted with a Linux kernel, the runner is the guest's PID 1, runs the
    /// suites with the arguments after `--` on the kernel command line,
    /// prints its report as framed chunks on the console and powers off.
    /// The runner must be static (`cargo xtask dist` builds one).
    Initramfs {
        /// The runner to carry, instead of this executable.
        #[arg(long, value_name = "PATH")]
        runner: Option<PathBuf>,
        /// Where to write the archive.
        out: PathBuf,
    },
    /// Run every environment of a matrix file in parallel, each gated
    /// against its own expectations, or list what one would run.
    #[command(subcommand)]
    Matrix(MatrixCommand),
    /// Run the given runner command line (`run …`), then print its JSON
    /// report as CRC-framed chunks on stdout: what a remote machine does for
    /// an `ssh` environment.
    #[command(hide = true)]
    StreamReport {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Validate suites and matrices without running anything.
    Check {
        #[arg(long, value_name = "DIR")]
        suites: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        matrices: Option<PathBuf>,
    },
    /// Show how each event in the event table resolves on this CPU.
    Events {
        /// Resolve them for the CPU of a dump that `env --cpuid` printed instead.
        #[arg(long, value_name = "FILE")]
        cpuid: Option<PathBuf>,
    },
    /// Print the detection matrix: which case catches which known bug, with
    /// what probability, on the reference model (as matrices/detection-matrix.md).
    DetectionMatrix,
    /// Single-step a case's real window under ptrace and print what it
    /// retired beside what its listing and its expectation say.
    ///
    /// Counts follow the suite's convention (suites/README.md, "Counting"):
    /// user-mode instructions, conditional and near branches, marker hits,
    /// page faults and CPUID/WRMSR from the return of the syscall that starts
    /// the count to the disarming syscall, inclusive. For a case that samples,
    /// one notification is delivered mid-loop and its handler's cost shown.
    /// Windows of up to a million instructions are stepped whole; longer ones
    /// are traced at three small sizes and extrapolated (a step costs about
    /// 100 µs in a guest). A kernel case's window is booted under QEMU's TCG
    /// and logged by QEMU instruction by instruction (needs the probe kernel
    /// image: `cargo xtask kernel`).
    ///
    /// Exit status: 0 when every trace agrees, 1 when any disagrees or cannot
    /// be traced, 2 on bad input.
    Trace {
        /// Cases to trace, as `suite/case`; default every linux case and every
        /// kernel case with an expected count.
        cases: Vec<String>,
        /// Trace at this size (the workload's size parameter) instead of the case's.
        #[arg(long, value_name = "N")]
        size: Option<u64>,
        /// Step the whole window however long it is.
        #[arg(long, conflicts_with = "extrapolate")]
        full: bool,
        /// Trace at three small sizes and extrapolate, however short the window is.
        #[arg(long)]
        extrapolate: bool,
        #[arg(long, value_name = "DIR")]
        suites: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MatrixCommand {
    /// Run each environment of FILE as a child runner, JOBS at a time, each
    /// with its own deadline; show progress; print one table of cases ×
    /// environments; write a matrix report (JSON and JUnit) and each
    /// environment's output, report and guest consoles under --out.
    ///
    /// Exit status: 0 when every environment was as expected, 101 when any
    /// was not (a gate failure, an environment that could not be reached or
    /// passed its deadline), 2 on bad input, 130 when interrupted.
    Run {
        #[command(flatten)]
        matrix: MatrixArgs,
        /// How many environments run at once. Default: one per core.
        #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        jobs: Option<u32>,
        /// The artifacts folder. Default: pmuc-matrix/<FILE's stem>.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where recorded expectations live (as for `run`).
        #[arg(long, value_name = "DIR")]
        expected: Option<PathBuf>,
        /// The probe kernel image for `qemu` environments (as for `run`).
        #[arg(long, value_name = "PATH")]
        kernel: Option<PathBuf>,
        /// Give every case SECS seconds instead of its own deadline (as for `run`).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..86_400))]
        timeout: Option<u64>,
        /// Also write the matrix report here (schema pmu-conformance/matrix/v1).
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Also write the JUnit report here (a test suite per environment).
        #[arg(long, value_name = "PATH")]
        junit: Option<PathBuf>,
    },
    /// Show the environments a matrix would run, their kinds, how many cases
    /// each selects and its deadline; run nothing.
    List {
        #[command(flatten)]
        matrix: MatrixArgs,
    },
}

#[derive(Args, Clone)]
struct MatrixArgs {
    /// A matrix file (matrices/*.yaml).
    file: PathBuf,
    /// Only environments whose id contains PATTERN.
    #[arg(long = "env", value_name = "PATTERN")]
    pattern: Option<String>,
    /// Load suites from DIR instead of the ones built in.
    #[arg(long, value_name = "DIR")]
    suites: Option<PathBuf>,
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
    /// The environment: an id from the matrices (`pmu-conformance
    /// environments` lists them), or this machine's derived id. Default: this
    /// machine, under the id its fingerprint derives.
    #[arg(long, value_name = "ID", conflicts_with = "label")]
    env: Option<String>,
    /// Run on this machine under NAME instead of its derived id, e.g. an
    /// instance type (`aws-c7i.metal`): expectations are recorded under it.
    /// Lower-case letters, digits and `._:-`, at most 64 characters.
    #[arg(long, value_name = "NAME")]
    label: Option<String>,
    /// Load suites from DIR instead of the ones built in.
    #[arg(long, value_name = "DIR")]
    suites: Option<PathBuf>,
    /// Load matrices from PATH (a matrix file, or a folder of them) instead
    /// of the ones built in.
    #[arg(long, value_name = "PATH")]
    matrices: Option<PathBuf>,
    /// Keep each guest's console (the command, what the guest printed, how
    /// the boot ended, QEMU's stderr) as a file in DIR, one per boot.
    #[arg(long, value_name = "DIR")]
    consoles: Option<PathBuf>,
    /// Where recorded expectations live, relative to the working directory.
    /// Default: $PMU_CONFORMANCE_EXPECTED, else the expected/ folder of the
    /// checkout the run starts in, else none.
    #[arg(long, value_name = "DIR")]
    expected: Option<PathBuf>,
    /// Record every outcome as this environment's expectation (never on CI).
    #[arg(long)]
    accept: bool,
    /// The probe kernel image that `qemu` environments boot. Default:
    /// $PMUC_PROBE_KERNEL, else where `cargo xtask kernel` builds it.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Run each case N times instead of its own run budget; its deadline
    /// scales to match (never below 5 s).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Give every case SECS seconds instead of its own deadline (a case's
    /// `timeout`, 60 s unless it says). A guest still running at its
    /// deadline is killed, and the case is an error that says so.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..86_400))]
    timeout: Option<u64>,
    /// Write the JSON report to PATH (schema in README.md).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report to PATH.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Print only the trial lines and the summary line.
    #[arg(short, long)]
    quiet: bool,
    /// `human`: the fingerprint, a dot per case as it ends, and the table.
    /// `ktap`: KTAP version 1 and nothing else, for kselftest's and
    /// KernelCI's parsers (a case is `ok`, `ok … # SKIP reason` or `not ok`,
    /// as the gate judged it).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Colour the trial lines: on a terminal unless NO_COLOR is set (`auto`),
    /// `always`, or `never`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorSetting::Auto)]
    color: ColorSetting,
    /// Say what CASE (`suite/case`) does, what its failure would mean and
    /// which known bugs it catches, with their sources; run nothing.
    #[arg(long, value_name = "CASE")]
    explain: Option<String>,
    /// libtest's `test <case> ... ok` line per case instead of a dot: what
    /// `matrix run` reads each environment's current case from.
    #[arg(long, hide = true)]
    trial_lines: bool,
    /// How long a boot or a case runs before the terminal shows it running
    /// (milliseconds; 1000 unless a test asks for less).
    #[arg(long, hide = true, value_name = "MS")]
    progress_after: Option<u64>,
}

/// How `compare` prints its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CompareFormat {
    Terminal,
    Markdown,
    Html,
}

/// What a run prints (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    #[default]
    Human,
    Ktap,
}

fn main() -> ExitCode {
    // Output piped into `head` ends the run quietly, as for any Unix tool,
    // rather than as a panic on a closed pipe.
    // SAFETY: called first, before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // As a Linux guest's init, the arguments come from the kernel command line.
    if pmu_conformance::guest::init::is_init() {
        // A bad command line is printed, never an exit: init's exit panics the kernel.
        pmu_conformance::guest::init::run(|args| match Cli::try_parse_from(args) {
            Ok(cli) => run_command(cli),
            Err(e) => {
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
        });
    }
    run_command(Cli::parse())
}

fn run_command(cli: Cli) -> ExitCode {
    let result = match cli.command {
        None => run_suites(cli.run),
        Some(Command::Run(args)) => run_suites(*args),
        Some(Command::Env { cpuid, cpuid_replay }) => print_env(cpuid, cpuid_replay.as_deref()),
        Some(Command::Show { report }) => show(&report),
        Some(Command::Environments { matrices }) => list_environments(matrices),
        Some(Command::Codes) => print_codes(),
        Some(Command::Initramfs { runner, out }) => write_initramfs(runner.as_deref(), &out),
        Some(Command::Matrix(command)) => run_matrix(command),
        Some(Command::StreamReport { args }) => stream_report(args),
        Some(Command::Check { suites, matrices }) => check(suites, matrices),
        Some(Command::Events { cpuid }) => print_events(cpuid.as_deref()),
        Some(Command::DetectionMatrix) => print_detection_matrix(),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "pmu-conformance", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man { subcommand }) => print_man_page(subcommand.as_deref()),
        Some(Command::Compare { reports, format, color }) => compare_reports(&reports, format, color),
        Some(Command::Certify { strict, from, out, run }) => certify(strict, from, &out, *run),
        Some(Command::Trace {
            cases,
            size,
            full,
            extrapolate,
            suites,
        }) => trace_cases(&cases, size, (full || extrapolate).then_some(full), suites),
    };
    result.unwrap_or_else(|error| {
        eprintln!("{error}");
        error.exit_code()
    })
}

fn run_suites(args: RunArgs) -> Result<ExitCode, RunError> {
    if let Some(name) = &args.explain {
        return explain_case(name, args.suites.as_deref());
    }
    let libtest = Arguments {
        filter: args.filter,
        exact: args.exact,
        skip: args.skip,
        list: args.list,
        ignored: args.ignored,
        include_ignored: args.include_ignored,
        quiet: args.quiet,
        color: Some(args.color),
        // A dot per case as it ends: the table after names each case once.
        format: Some(if args.trial_lines {
            FormatSetting::Pretty
        } else {
            FormatSetting::Terse
        }),
        // KTAP is all that reaches standard output.
        logfile: (args.format == Format::Ktap).then(|| "/dev/null".to_owned()),
        ..Arguments::default()
    };
    let output = match (args.format, args.quiet) {
        (Format::Ktap, _) => Output::Ktap,
        (Format::Human, true) => Output::Quiet,
        (Format::Human, false) => Output::Verbose,
    };
    // Only where the terminal shows the dots: not KTAP, nor trial lines.
    let progress = if args.format == Format::Ktap || args.trial_lines {
        pmu_conformance::progress::Progress::hidden()
    } else {
        let after = args
            .progress_after
            .map_or(pmu_conformance::progress::AFTER, std::time::Duration::from_millis);
        pmu_conformance::progress::Progress::on_terminal(pmu_conformance::report::table::width(), after)
    };
    run::execute(Request {
        environment: args.env,
        label: args.label,
        suites: args.suites,
        matrices: args.matrices,
        expected: args.expected,
        accept: args.accept,
        runs: args.runs,
        timeout: args.timeout.map(std::time::Duration::from_secs),
        kernel: args.kernel,
        json: args.json,
        junit: args.junit,
        consoles: args.consoles,
        output,
        reject_empty_selection: true,
        libtest,
        progress,
    })
}

fn run_matrix(command: MatrixCommand) -> Result<ExitCode, RunError> {
    use pmu_conformance::matrix::{self, MatrixRequest};
    let base = |m: MatrixArgs| MatrixRequest {
        file: m.file,
        pattern: m.pattern,
        suites: m.suites,
        ..MatrixRequest::default()
    };
    match command {
        MatrixCommand::List { matrix } => matrix::list(&base(matrix)),
        MatrixCommand::Run {
            matrix,
            jobs,
            out,
            expected,
            kernel,
            timeout,
            json,
            junit,
        } => matrix::run(&MatrixRequest {
            jobs: jobs.map(|j| j as usize),
            out,
            expected,
            kernel,
            timeout,
            json,
            junit,
            ..base(matrix)
        }),
    }
}

fn stream_report(mut args: Vec<String>) -> Result<ExitCode, RunError> {
    let dir = tempfile::tempdir().map_err(|e| RunError::Environment(format!("a folder for the report: {e}")))?;
    args.insert(0, "pmu-conformance".to_owned());
    Ok(pmu_conformance::guest::report_stream::run_then_stream(
        |args| run_command(Cli::parse_from(args)),
        args,
        &dir.path().join("report.json"),
    ))
}

/// This machine's fingerprint, or the one a dump replays (with no Linux part).
fn fingerprint_of(table: &EventTable, replay: Option<&std::path::Path>) -> Result<Fingerprint, RunError> {
    Ok(match replay {
        Some(path) => Fingerprint::from_parts(table, &CpuidReader::replay(CpuidDump::load(path)?), None),
        None => Fingerprint::here(table, &CpuidReader::native()),
    })
}

fn print_env(cpuid: bool, replay: Option<&std::path::Path>) -> Result<ExitCode, RunError> {
    if cpuid {
        let reader = CpuidReader::native();
        Fingerprint::here(&EventTable::builtin(), &reader);
        print!("{}", serde_saphyr::to_string(&reader.dump()).expect("dumps serialise"));
    } else {
        print!("{}", fingerprint_of(&EventTable::builtin(), replay)?.to_yaml());
    }
    Ok(ExitCode::SUCCESS)
}

fn check(suites: Option<PathBuf>, matrices: Option<PathBuf>) -> Result<ExitCode, RunError> {
    let table = EventTable::builtin();
    let sources = match suites {
        Some(dir) => SuiteSources::from_dir(&dir)?,
        None => SuiteSources::builtin(),
    };
    let loaded = load_suites(&sources, &table, &KnownBugs::builtin())?;
    let environments = match matrices {
        Some(dir) => Matrices::from_path(&dir)?,
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

/// `certify`: a report (read, or made by running the suites), its decision,
/// and the two files.
fn certify(strict: bool, from: Option<PathBuf>, out: &std::path::Path, run: RunArgs) -> Result<ExitCode, RunError> {
    use pmu_conformance::certificate;
    if !out.is_dir() {
        return Err(RunError::Usage(format!("--out {}: not a folder", out.display())));
    }
    let scratch = tempfile::tempdir().map_err(|e| RunError::Environment(format!("a folder for the report: {e}")))?;
    let path = match from {
        Some(path) => path,
        None => {
            let path = run.json.clone().unwrap_or_else(|| scratch.path().join("report.json"));
            let args = RunArgs {
                json: Some(path.clone()),
                quiet: true,
                ..run
            };
            // The run's own exit status is the gate's; the certificate decides below.
            run_suites(args)?;
            path
        }
    };
    let report = pmu_conformance::report::json::read(&path).map_err(|e| RunError::Usage(e.to_string()))?;
    let decision = certificate::decide(&report, strict);
    let how = certificate::Provenance {
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        revision: env!("PMUC_GIT_REVISION").to_owned(),
        strict,
    };
    let write = |name: &str, text: String| {
        let file = out.join(name);
        std::fs::write(&file, text).map_err(|e| RunError::Environment(format!("{}: {e}", file.display())))?;
        Ok::<_, RunError>(file)
    };
    let md = write("certificate.md", certificate::markdown(&report, &decision, &how))?;
    let html = write("certificate.html", certificate::html(&report, &decision, &how))?;
    if decision.certified {
        println!(
            "certified: {} ({}, {})",
            report.environment.id,
            md.display(),
            html.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("not certified: {}", report.environment.id);
        for why in &decision.why {
            println!("  {why}");
        }
        println!("({}, {})", md.display(), html.display());
        Ok(ExitCode::from(101))
    }
}

/// `compare REPORT...`.
fn compare_reports(paths: &[PathBuf], format: CompareFormat, color: ColorSetting) -> Result<ExitCode, RunError> {
    use pmu_conformance::compare;
    let columns = compare::load(paths).map_err(RunError::Usage)?;
    let table = compare::compare(&columns);
    let text = match format {
        CompareFormat::Terminal => {
            use std::io::IsTerminal;
            let color = match color {
                ColorSetting::Always => true,
                ColorSetting::Never => false,
                ColorSetting::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            table.terminal(pmu_conformance::report::table::width(), color)
        }
        CompareFormat::Markdown => table.markdown(),
        CompareFormat::Html => table.html(),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `man [SUBCOMMAND]`: a man page, from the same definitions as `--help`.
fn print_man_page(subcommand: Option<&str>) -> Result<ExitCode, RunError> {
    let cli = Cli::command();
    let man = match subcommand {
        None => clap_mangen::Man::new(cli),
        Some(name) => {
            let names: Vec<String> = cli.get_subcommands().map(|c| c.get_name().to_owned()).collect();
            let found = cli
                .find_subcommand(name)
                .cloned()
                .ok_or_else(|| RunError::Usage(format!("no subcommand `{name}`; there are {}", names.join(", "))))?;
            // Titled as the main page's SUBCOMMANDS section names it.
            let found = found.bin_name(format!("pmu-conformance {name}"));
            clap_mangen::Man::new(found).title(format!("pmu-conformance-{name}"))
        }
    };
    let mut page = Vec::new();
    man.render(&mut page)
        .and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &page))
        .map_err(|e| RunError::Environment(format!("writing the man page: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// `--explain CASE`.
fn explain_case(name: &str, suites: Option<&std::path::Path>) -> Result<ExitCode, RunError> {
    let sources = match suites {
        Some(dir) => SuiteSources::from_dir(dir)?,
        None => SuiteSources::builtin(),
    };
    let bugs = KnownBugs::builtin();
    let loaded = load_suites(&sources, &EventTable::builtin(), &bugs)?;
    let all: Vec<(String, &pmu_conformance::case::Case)> = loaded
        .iter()
        .flat_map(|s| s.cases.iter().map(move |c| (format!("{}/{}", s.name, c.id.name), c)))
        .collect();
    let case = find_case(&all, name)?;
    let width = usize::from(pmu_conformance::report::table::width());
    print!("{}", pmu_conformance::explain::explain(name, case, &bugs, width));
    Ok(ExitCode::SUCCESS)
}

/// The case named `name` (`suite/case`), or a usage error with the nearest name.
fn find_case<'a>(
    all: &[(String, &'a pmu_conformance::case::Case)],
    name: &str,
) -> Result<&'a pmu_conformance::case::Case, RunError> {
    match all.iter().find(|(n, _)| n == name) {
        Some((_, case)) => Ok(case),
        None => {
            let nearest = all
                .iter()
                .min_by_key(|(n, _)| strsim::levenshtein(n, name))
                .map_or_else(String::new, |(n, _)| format!("; did you mean `{n}`?"));
            Err(RunError::Usage(format!("no case is named `{name}`{nearest}")))
        }
    }
}

fn trace_cases(
    names: &[String],
    size: Option<u64>,
    full: Option<bool>,
    suites: Option<PathBuf>,
) -> Result<ExitCode, RunError> {
    use pmu_conformance::case_trace::{Method, comparable, trace_case};
    use pmu_conformance::vocabulary::ProbeKind;

    let table = EventTable::builtin();
    let sources = match suites {
        Some(dir) => SuiteSources::from_dir(&dir)?,
        None => SuiteSources::builtin(),
    };
    let loaded = load_suites(&sources, &table, &KnownBugs::builtin())?;
    let all: Vec<(String, &pmu_conformance::case::Case)> = loaded
        .iter()
        .flat_map(|s| s.cases.iter().map(move |c| (format!("{}/{}", s.name, c.id.name), c)))
        .collect();
    let mut selected = Vec::new();
    for name in names {
        selected.push((name.clone(), find_case(&all, name)?));
    }
    if names.is_empty() {
        selected = all
            .into_iter()
            .filter(|(_, c)| c.probe == ProbeKind::Linux || c.expect.is_some())
            .collect();
    }
    let mut disagreements = 0;
    for (name, case) in selected {
        let counts = match &case.event {
            pmu_conformance::case::EventRef::Named(event) => table.events.get(event).and_then(|e| e.counts),
            pmu_conformance::case::EventRef::Raw(_) => None,
        };
        let workload = pmu_conformance::workload::Workload {
            size: size.unwrap_or(case.workload.size),
            ..case.workload
        };
        println!("{name}: {workload}, counted by {}", case.event);
        match trace_case(case, counts, size, full) {
            Ok(t) => {
                let row = |c: pmu_conformance::workload::Counts| {
                    format!(
                        "{:>12} {:>13} {:>10} {:>11} {:>11} {:>8}",
                        c.instructions, c.conditional_branches, c.branches, c.marker_hits, c.page_faults, c.vm_exits
                    )
                };
                println!(
                    "  {:<8} {:>12} {:>13} {:>10} {:>11} {:>11} {:>8}",
                    "", "instructions", "cond-branches", "branches", "marker-hits", "page-faults", "vm-exits"
                );
                println!("  {:<8} {}", "listing", row(t.listed));
                println!("  {:<8} {}", "traced", row(t.traced));
                if comparable(t.listed) != comparable(t.traced) {
                    println!("  the window does not retire its listing");
                }
                if let Some(c) = &t.compared {
                    println!(
                        "  {} {} = {}; traced {}: {}",
                        if c.stated { "expect" } else { "the event counts" },
                        c.formula,
                        c.expected,
                        c.traced,
                        if c.agrees() { "agree" } else { "DISAGREE" }
                    );
                }
                if let Some(h) = t.handler {
                    println!(
                        "  one notification's handler adds {} instructions ({} up to its read), {} branches ({} conditional)",
                        h.total.instructions, h.up_to_read.instructions, h.total.branches, h.total.conditional_branches
                    );
                }
                match t.method {
                    Method::Full { steps, elapsed } => {
                        println!("  stepped whole: {steps} steps in {:.1} s", elapsed.as_secs_f64())
                    }
                    Method::Guest { elapsed } => println!(
                        "  the probe kernel's window, logged by QEMU under TCG, in {:.1} s",
                        elapsed.as_secs_f64()
                    ),
                    Method::Extrapolated(shape) => println!(
                        "  extrapolated from traces at {:?} iterations: {} + {} per pass instructions",
                        shape.traced_at, shape.listing.before.instructions, shape.listing.body.instructions
                    ),
                }
                if !t.agrees() {
                    disagreements += 1;
                }
            }
            Err(e) => {
                println!("  {e}");
                disagreements += 1;
            }
        }
    }
    Ok(if disagreements == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(path: &std::path::Path) -> Result<ExitCode, RunError> {
    let report = pmu_conformance::report::json::read(path).map_err(|e| RunError::Usage(e.to_string()))?;
    let environment = &report.environment;
    println!(
        "pmu-conformance {} report — environment {} ({}), probe: {}\n{}",
        report.tool.version, environment.id, environment.about, environment.probe, environment.expectations
    );
    println!("\n{}", pmu_conformance::report::table::render(&report));
    Ok(if report.summary.gate_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    })
}

fn list_environments(matrices: Option<PathBuf>) -> Result<ExitCode, RunError> {
    let environments = match matrices {
        Some(dir) => Matrices::from_path(&dir)?,
        None => Matrices::builtin()?,
    };
    let mut out = Table::new();
    out.load_style(pmu_conformance::report::table::STYLE)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["environment", "kind", "about"]);
    if !out.is_tty() {
        out.set_width(160);
    }
    for env in environments.environments.values() {
        out.add_row(vec![env.id.as_str(), env.target.kind(), env.about.as_str()]);
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn write_initramfs(runner: Option<&std::path::Path>, out: &std::path::Path) -> Result<ExitCode, RunError> {
    let path = match runner {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().map_err(|e| RunError::Environment(format!("finding this executable: {e}")))?,
    };
    let init = pmu_conformance::guest::static_runner(&path).map_err(RunError::Usage)?;
    let mut archive = Vec::new();
    pmu_conformance::guest::initramfs::write(&mut archive, &init).expect("writing to memory");
    std::fs::write(out, &archive)
        .map_err(|e| RunError::Usage(format!("{}: cannot write the initramfs: {e}", out.display())))?;
    println!("{}: {} bytes, /init = {}", out.display(), archive.len(), path.display());
    Ok(ExitCode::SUCCESS)
}

fn print_codes() -> Result<ExitCode, RunError> {
    use pmu_conformance::outcome::{ReasonCode, SignatureKind, Unit};
    let mut out = Table::new();
    out.load_style(pmu_conformance::report::table::STYLE)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["code", "kind", "means"]);
    if !out.is_tty() {
        out.set_width(120);
    }
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for k in SignatureKind::ALL {
        out.add_row(vec![k.name().to_owned(), "signature".to_owned(), words(k.about())]);
    }
    for u in Unit::ALL {
        out.add_row(vec![u.name().to_owned(), "unit".to_owned(), words(u.about())]);
    }
    for c in ReasonCode::ALL {
        out.add_row(vec![c.name().to_owned(), "reason".to_owned(), words(c.about())]);
    }
    println!("{out}");
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

fn print_events(replay: Option<&std::path::Path>) -> Result<ExitCode, RunError> {
    let table = EventTable::builtin();
    let fingerprint = fingerprint_of(&table, replay)?;
    let cpu = &fingerprint.cpu.identity;
    println!(
        "{cpu}: {}",
        fingerprint
            .cpu
            .microarchitecture
            .as_deref()
            .unwrap_or("not in the event table")
    );
    if let Some(u) = table.microarchitecture(cpu) {
        if let Some(source) = &u.source {
            println!("  source: {source}");
        }
        if let Some(why) = &u.unverified {
            println!("  unverified: {why}");
        }
    }
    // A hybrid part's cores, one table each: the P-cores' (its entry) first.
    let mut core_types = vec!["cpu".to_owned()];
    if let Some(u) = table.microarchitecture(cpu)
        && !u.core_types.is_empty()
    {
        core_types = vec!["cpu_core".to_owned()];
        core_types.extend(u.core_types.keys().cloned());
    }
    for core_type in &core_types {
        if core_types.len() > 1 {
            let uarch = table
                .core_microarchitecture(cpu, core_type)
                .ok()
                .flatten()
                .map_or("unknown", |u| u.name.as_str());
            println!("\n{core_type} cores: {uarch}");
        }
        print_core_events(&table, &fingerprint, core_type);
    }
    Ok(ExitCode::SUCCESS)
}

/// The events as the cores Linux's PMU `core_type` drives encode them.
fn print_core_events(table: &EventTable, fingerprint: &Fingerprint, core_type: &str) {
    let cpu = &fingerprint.cpu.identity;
    let mut out = Table::new();
    out.load_style(pmu_conformance::report::table::STYLE)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["event", "encoding here", "skid budget", "exact"]);
    if !out.is_tty() {
        out.set_width(160);
    }
    for name in table.events.keys() {
        let exact = match &table.events[name].exactness {
            Exactness::Exact => "yes".to_owned(),
            Exactness::Inexact(why) => format!("no: {why}"),
        };
        let (encoding, skid, exact) = match table.resolve_on_core(
            name,
            cpu,
            core_type,
            &fingerprint.pmu.architectural,
            &fingerprint.cpu.features,
        ) {
            Ok(e) => (
                e.encoding.to_string(),
                e.skid.map_or("unknown".to_owned(), |s| s.to_string()),
                match e.erratum {
                    Some(erratum) => format!(
                        "{exact}; overcounts by erratum {} ({}): checked as at least",
                        erratum.id, erratum.source
                    ),
                    None => exact,
                },
            ),
            Err(reason) => (format!("unsupported: {reason}"), String::new(), exact),
        };
        out.add_row(vec![name.clone(), encoding, skid, exact]);
    }
    println!("{out}");
}
