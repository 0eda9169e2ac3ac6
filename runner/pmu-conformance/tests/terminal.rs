//! What a person, a pipe or a CI parser reads from a run: the table at any
//! width with no id broken, each case named once, `-q`'s summary line, a
//! closed pipe ending quietly, KTAP that parses, and what a terminal shows
//! while a case runs long.
//!
//! Each test runs a `sim:` environment (the reference model), which needs no
//! PMU and gives failures, skips and passes to show.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Xen as its tree has it: passes, recorded failures and skips.
const ENV: &str = "sim:xen-intel";

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    command
        .env_remove("CI")
        .env_remove("INSTA_UPDATE")
        .env_remove("INSTA_FORCE_PASS")
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR");
    command
}

/// Standard output of a run in [`ENV`] with these arguments, after its exit
/// status is checked (0: the model's failures are recorded).
fn stdout_of(command: &mut Command) -> String {
    let output = command.output().expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The case ids the run reports, from its JSON report.
fn case_ids() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    stdout_of(bin().args(["--env", ENV, "-q", "--json"]).arg(&json));
    let report = pmu_conformance::report::json::read(&json).expect("the report reads back");
    report.cases.into_iter().map(|c| c.id).collect()
}

/// The lines after libtest's block (its `test result:` line) and before the
/// summary line: the table, or the list.
fn table_lines(stdout: &str) -> Vec<&str> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("test result:"))
        .expect("libtest's result line")
        + 1;
    let end = lines
        .iter()
        .rposition(|l| l.contains("trials failed the gate"))
        .expect("the summary line");
    lines[start..end].to_vec()
}

#[test]
fn the_table_fits_60_80_and_200_columns_and_never_breaks_an_id() {
    let ids = case_ids();
    assert!(ids.len() >= 40, "{} cases", ids.len());
    for width in [60usize, 80, 200] {
        let stdout = stdout_of(bin().args(["--env", ENV]).env("COLUMNS", width.to_string()));
        let table = table_lines(&stdout);
        // Below 100 columns a list, a case to a paragraph; from 100 a table.
        let is_table = table
            .iter()
            .any(|l| l.trim_start().starts_with("case ") && l.contains("verdict"));
        assert_eq!(is_table, width >= 100, "at {width} columns:\n{}", table.join("\n"));
        for line in &table {
            let long = line.chars().count() > width;
            // Only a line that holds one whole id, which cannot be broken,
            // may pass the width.
            let unbreakable = line.split_whitespace().count() == 2 && ids.iter().any(|id| line.ends_with(id.as_str()));
            assert!(
                !long || unbreakable,
                "at {width} columns, a line of {}: {line}",
                line.chars().count()
            );
        }
        // Every id whole, at the start of its row (table) or its paragraph
        // (list); none split across lines.
        for id in &ids {
            let rows = table
                .iter()
                .filter(|l| l.split_whitespace().take(2).any(|w| w == id))
                .count();
            assert_eq!(
                rows,
                1,
                "at {width} columns, `{id}` heads {rows} rows:\n{}",
                table.join("\n")
            );
        }
        let banner = stdout.lines().next().unwrap_or_default();
        assert!(banner.chars().count() <= width, "the banner is wrapped too: {banner}");
    }
}

#[test]
fn each_case_is_named_once_and_quiet_keeps_the_summary_line() {
    let stdout = stdout_of(bin().args(["--env", ENV]).env("COLUMNS", "200"));
    assert!(
        !stdout.lines().any(|l| l.starts_with("test ") && l.ends_with(" ok")),
        "libtest's per-case lines would name each case a second time:\n{stdout}"
    );
    let quiet = stdout_of(bin().args(["--env", ENV, "-q"]));
    let last = quiet.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("{ENV}: ")) && last.ends_with("trials failed the gate"),
        "-q ends with the summary line, not: {last}"
    );
    assert!(!quiet.contains("verdict"), "-q prints no table:\n{quiet}");
}

/// On a terminal (a pty that `script` gives it, 80 columns), a case that
/// runs past the threshold is shown at the cursor, after the dots, with
/// its elapsed time, and erased before its dot; through a pipe nothing is.
/// The threshold is lowered (hidden `--progress-after`) so that a software
/// event's self-check, a fraction of a second, is long enough.
#[test]
fn a_long_case_is_shown_while_it_runs_on_a_terminal_only() {
    let case = "selfcheck/page-faults-exact-count";
    let run = format!(
        "stty cols 80; {} -q --exact {case} --runs 1000 --progress-after 20",
        env!("CARGO_BIN_EXE_pmu-conformance")
    );
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("typescript");
    let output = Command::new("script")
        .args(["-qec", &run])
        .arg(&typescript)
        .env_remove("CI")
        .env_remove("COLUMNS")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(output.status.success(), "{output:?}");
    let screen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    let draws: Vec<&str> = screen.split("\x1b7").skip(1).collect();
    // Every draw is a name (the case, or the environment starting, where
    // that too outlasted the threshold) and its seconds.
    for draw in &draws {
        let text = draw.split("\x1b[K").next().unwrap();
        assert!(text.ends_with(" s") && draw.contains("\x1b[K\x1b8"), "{draw:?}");
    }
    assert!(
        draws.iter().any(|d| d.contains(&format!(" {case} "))),
        "the case never shown: {screen:?}"
    );
    let last = draws.last().unwrap();
    assert!(
        last.contains("\x1b8\x1b[K") && screen.contains("running 1 test"),
        "erased before the dot: {screen:?}"
    );

    let piped = bin()
        .args(["-q", "--exact", case, "--runs", "1000", "--progress-after", "20"])
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    for stream in [&piped.stdout, &piped.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains('\x1b'), "{piped:?}");
    }
}

#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    let mut child = bin()
        .args(["--env", ENV])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Read the banner, then close the pipe, as `| head -1` does.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("pmu-conformance "), "{first}");
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    // SIGPIPE ends it, as it ends any Unix tool; or it had written everything.
    assert!(
        output.status.signal() == Some(libc::SIGPIPE) || output.status.success(),
        "{:?}: {stderr}",
        output.status
    );
}

/// One KTAP result line: `ok` or `not ok`, its number, its description and
/// an optional `# SKIP reason`.
#[derive(Debug)]
struct KtapResult {
    ok: bool,
    number: usize,
    description: String,
    skip: Option<String>,
}

/// A strict reader of KTAP version 1 (Documentation/dev-tools/ktap.rst) as a
/// flat list: the version line first, one plan, result lines numbered from
/// 1 in order, `#` diagnostics; any other line, a second plan, a count that
/// differs from the plan or a directive other than SKIP is an error.
fn parse_ktap(text: &str) -> Result<Vec<KtapResult>, String> {
    let mut lines = text.lines();
    if lines.next() != Some("KTAP version 1") {
        return Err("the first line is not `KTAP version 1`".into());
    }
    let mut plan = None;
    let mut results = Vec::new();
    for (n, line) in lines.enumerate() {
        let at = n + 2;
        if line.starts_with('#') {
            continue;
        }
        if let Some(count) = line.strip_prefix("1..") {
            if plan.is_some() || !results.is_empty() {
                return Err(format!("line {at}: a plan after the plan or after results"));
            }
            plan = Some(
                count
                    .parse::<usize>()
                    .map_err(|_| format!("line {at}: bad plan `{line}`"))?,
            );
            continue;
        }
        let (ok, rest) = if let Some(rest) = line.strip_prefix("not ok ") {
            (false, rest)
        } else if let Some(rest) = line.strip_prefix("ok ") {
            (true, rest)
        } else {
            return Err(format!(
                "line {at}: neither a result, a plan nor a diagnostic: `{line}`"
            ));
        };
        let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let number: usize = number.parse().map_err(|_| format!("line {at}: no test number"))?;
        if number != results.len() + 1 {
            return Err(format!("line {at}: test {number} out of order"));
        }
        let (description, directive) = match rest.split_once(" # ") {
            Some((d, directive)) => (d, Some(directive)),
            None => (rest, None),
        };
        if description.contains('#') {
            return Err(format!("line {at}: a `#` in the description"));
        }
        let skip = match directive {
            None => None,
            Some(d) => match d.strip_prefix("SKIP") {
                Some(reason) if ok => Some(reason.trim().to_owned()),
                _ => return Err(format!("line {at}: directive `{d}` (only `ok … # SKIP` is used)")),
            },
        };
        results.push(KtapResult {
            ok,
            number,
            description: description.to_owned(),
            skip,
        });
    }
    match plan {
        Some(count) if count == results.len() => Ok(results),
        Some(count) => Err(format!("the plan says {count}, {} results follow", results.len())),
        None => Err("no plan".into()),
    }
}

#[test]
fn ktap_parses_and_says_what_the_gate_said() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let ktap = stdout_of(bin().args(["--env", ENV, "--format", "ktap", "--json"]).arg(&json));
    let results = parse_ktap(&ktap).unwrap_or_else(|e| panic!("{e}:\n{ktap}"));
    let report = pmu_conformance::report::json::read(&json).unwrap();
    assert_eq!(results.len(), report.cases.len());
    for (r, c) in results.iter().zip(&report.cases) {
        assert_eq!(r.description, c.id, "test {}", r.number);
        assert_eq!(r.ok, c.gate.passed, "{}", c.id);
        assert_eq!(r.skip.is_some(), c.gate.passed && c.gate.message.is_some(), "{}", c.id);
    }
    let skips = results.iter().filter(|r| r.skip.is_some()).count();
    assert_eq!(
        skips, report.summary.unsupported,
        "every unsupported case is a SKIP with its reason"
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.skip.as_ref())
            .all(|why| !why.is_empty())
    );
    assert!(
        ktap.contains("# capabilities/all-counters: fail (as recorded): "),
        "{ktap}"
    );

    // A case whose gate fails is `not ok`, with its explanation before it.
    let empty = tempfile::tempdir().unwrap();
    let failing = bin()
        .args(["--env", ENV, "--format", "ktap", "--expected"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(101));
    let ktap = String::from_utf8(failing.stdout).unwrap();
    let results = parse_ktap(&ktap).unwrap_or_else(|e| panic!("{e}:\n{ktap}"));
    let not_ok = results.iter().filter(|r| !r.ok).count();
    assert_eq!(
        not_ok, report.summary.fail,
        "with nothing recorded each failure is `not ok`"
    );
    assert!(ktap.contains("# diagnosis: matches xen-pmc-quirk"), "{ktap}");

    // A broken document is refused, so the parser can fail.
    assert!(parse_ktap("KTAP version 1\n1..2\nok 1 a\n").is_err());
    assert!(parse_ktap("KTAP version 1\n1..1\nok 2 a\n").is_err());
    assert!(parse_ktap("TAP version 14\n1..0\n").is_err());
}

#[test]
fn explain_says_what_a_case_does_what_failing_means_and_what_it_catches() {
    let stdout = stdout_of(bin().args(["--explain", "overflow/rr-xen-probe"]).env("COLUMNS", "80"));
    for section in ["What it does", "What a failure means", "What it catches"] {
        assert!(stdout.lines().any(|l| l == section), "no `{section}`:\n{stdout}");
    }
    assert!(
        stdout.starts_with("overflow/rr-xen-probe  (suites/overflow.yaml:"),
        "{stdout}"
    );
    // The bug it is there for, with where that is written down.
    assert!(stdout.contains("  xen-pmc-quirk (xen)"), "{stdout}");
    assert!(stdout.contains("source: xen-project/xen@"), "{stdout}");
    // Prose wraps; a source is a reference, kept whole on its own line.
    assert!(
        stdout
            .lines()
            .all(|l| l.chars().count() <= 80 || l.starts_with("    source: ")),
        "{stdout}"
    );
    let output = bin().args(["--explain", "overflow/rr-xen-prob"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("did you mean `overflow/rr-xen-probe`?"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// The man page and the completions come from the same clap definitions as
/// `--help`: each names every subcommand and the run's options.
#[test]
fn the_man_page_and_the_completions_know_every_subcommand() {
    let man = stdout_of(bin().arg("man"));
    assert!(man.starts_with(".ie") || man.contains(".TH pmu-conformance 1"), "{man}");
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(bin().args(["completions", shell]));
        for word in ["matrix", "explain", "format", "ktap", "color"] {
            assert!(script.contains(word), "{shell} completions lack `{word}`");
        }
    }
    // The main page names each subcommand's page, and each exists.
    for sub in ["run", "env", "show", "matrix", "completions", "man"] {
        assert!(man.contains(&format!("pmu\\-conformance\\-{sub}(1)")), "{sub}");
        let page = stdout_of(bin().args(["man", sub]));
        assert!(page.contains(&format!(".TH pmu-conformance-{sub} 1")), "{page}");
    }
    assert_eq!(bin().args(["man", "nonsense"]).output().unwrap().status.code(), Some(2));
    let output = bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "an unknown shell is a usage error");
}
