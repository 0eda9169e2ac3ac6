//! The `pmu-conformance` binary as a user meets it: exit statuses, located
//! errors, listing, recording expectations and the gate's diff.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    // Whatever the caller's environment, these tests decide about CI and insta.
    command
        .env_remove("CI")
        .env_remove("INSTA_UPDATE")
        .env_remove("INSTA_FORCE_PASS");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = command.output().expect("the binary runs");
    let code = status.code().expect("exited, not killed");
    (
        code,
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A self-check of a software event (page faults): exact on any host. A
/// breakpoint case would do as well, but this host kind's debug registers
/// now and then lose a window under load (see tests/soak.rs), and these
/// tests are about recording and gating, not about breakpoints.
const ONE_CASE: &str = "selfcheck/page-faults-exact-count";

#[test]
fn bad_suites_exit_2_with_a_located_error_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "about: x\ncases:\n  - id: a\n    runz: 3\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(bin().arg("--suites").arg(dir.path()));
    assert_eq!(code, 2, "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    let expected = format!(
        "{}:4:5: error: unknown field `runz`",
        dir.path().join("bad.yaml").display()
    );
    assert!(first.starts_with(&expected), "first line: {first}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.is_empty(), "nothing may run: {stdout}");
    // `check` validates the same way.
    assert_eq!(run(bin().arg("check").arg("--suites").arg(dir.path())).0, 2);
}

#[test]
fn check_accepts_the_builtin_suites() {
    let (code, stdout, stderr) = run(bin().arg("check"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

#[test]
fn list_prints_one_trial_per_case_and_nothing_else() {
    let (code, stdout, _) = run(bin().arg("--list"));
    assert_eq!(code, 0);
    assert!(stdout.lines().any(|l| l == format!("{ONE_CASE}: test")), "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.ends_with(": test") || l.is_empty() || l.contains("tests,")),
        "{stdout}"
    );
}

#[test]
fn a_filter_that_matches_nothing_is_an_error() {
    let (code, _, stderr) = run(bin().arg("selfcheck/no-such-case"));
    assert_eq!(code, 2);
    assert!(stderr.contains("no case in environment"), "{stderr}");
}

#[test]
fn ci_never_records() {
    let (code, _, stderr) = run(bin().env("CI", "true").args(["--accept", "--exact", ONE_CASE]));
    assert_eq!(code, 2);
    assert!(stderr.contains("CI never records"), "{stderr}");
}

#[test]
fn env_prints_the_fingerprint() {
    let (code, stdout, _) = run(bin().arg("env"));
    assert_eq!(code, 0);
    for key in ["derived_id:", "cpu:", "pmu:", "linux:", "perf_event_paranoid:"] {
        assert!(stdout.contains(key), "missing {key}:\n{stdout}");
    }
    let (code, stdout, _) = run(bin().args(["env", "--cpuid"]));
    assert_eq!(code, 0);
    assert!(stdout.starts_with("- \"00000000.0: "), "{stdout}");
}

/// The one snapshot of `case` under `root/<environment folder>/`, whatever
/// this machine's host class is: every run here has the same one.
fn snapshot_of(root: &Path, environment_folder: &str, case: &str) -> std::path::PathBuf {
    let dir = root.join(environment_folder);
    let classes: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(classes.len(), 1, "one host class folder: {classes:?}");
    classes[0].join(format!("{case}.snap"))
}

/// Record, match, then tamper: the gate's whole life on one case.
#[test]
fn accept_records_and_a_changed_expectation_fails_with_a_diff() {
    let expected = tempfile::tempdir().unwrap();
    let gated = || {
        let mut c = bin();
        c.args(["--label", "cli-test", "--runs", "2", "--exact", ONE_CASE])
            .arg("--expected")
            .arg(expected.path());
        c
    };

    let (code, _, stderr) = run(gated().arg("--accept"));
    assert_eq!(code, 0, "{stderr}");
    let snapshot = snapshot_of(expected.path(), "cli-test", ONE_CASE);
    let recorded = std::fs::read_to_string(&snapshot).expect("--accept wrote the expectation");
    assert!(
        recorded.contains("verdict: pass") && recorded.contains("expected: 256"),
        "{recorded}"
    );

    let json = expected.path().join("report.json");
    let (code, stdout, stderr) = run(gated().arg("--json").arg(&json));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("as recorded"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "pmu-conformance/report/v2");
    assert_eq!(report["cases"][0]["gate"]["status"], "matches");
    assert_eq!(report["cases"][0]["verdict"], "pass");
    assert!(report["environment"]["fingerprint"]["cpu"].is_object());

    std::fs::write(&snapshot, recorded.replace("expected: 256", "expected: 257")).unwrap();
    let (code, stdout, stderr) = run(&mut gated());
    assert_eq!(code, 101, "{stdout}{stderr}");
    assert!(
        stdout.contains("-  expected: 257") && stdout.contains("+  expected: 256"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--label cli-test --expected ") && stdout.contains(&format!("--accept --exact {ONE_CASE}")),
        "{stdout}"
    );
    assert!(Path::new(&snapshot).exists());
    assert!(
        !snapshot.with_extension("snap.new").exists(),
        "a plain run writes nothing"
    );
}

/// A QEMU environment that cannot boot says why before anything runs: a
/// `--kernel` that does not exist is a bad argument (exit 2) naming the
/// command that builds one; a file that is not a kernel is an environment
/// that cannot start (exit 1), with QEMU's own complaint and the command line
/// to reproduce it. (The second needs QEMU, which `cargo xtask test` installs.)
#[test]
fn a_qemu_environment_that_cannot_boot_says_why_before_anything_runs() {
    let (code, stdout, stderr) = run(bin().args(["--env", "qemu-tcg", "--kernel", "/nonexistent/probe-kernel"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/probe-kernel does not exist"), "{stderr}");
    assert!(stderr.contains("cargo xtask kernel"), "{stderr}");
    assert!(stdout.is_empty(), "nothing may run: {stdout}");

    let not_a_kernel = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let (code, stdout, stderr) = run(bin().args(["--env", "qemu-tcg", "--kernel"]).arg(&not_a_kernel));
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "nothing may run: {stdout}");
    assert!(stderr.contains("did not say hello"), "{stderr}");
    assert!(
        stderr.contains("QEMU exited with status 1 before the guest printed anything"),
        "{stderr}"
    );
    assert!(stderr.contains("QEMU said: qemu: invalid kernel header"), "{stderr}");
    assert!(
        stderr.contains("command: qemu-system-x86_64 -M pc -accel tcg"),
        "{stderr}"
    );
}

/// The acceptance run: on the model of Xen's PMC quirk, the
/// overflow-preservation cases fail as overcounts diagnosed as that quirk,
/// and that is what sim:xen-pmc-quirk has recorded, so the run exits 0.
#[test]
fn the_xen_quirk_on_the_model_is_diagnosed_and_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let (code, _, stderr) = run(bin()
        .args(["run", "--env", "sim:xen-pmc-quirk", "--quiet", "--json"])
        .arg(&json));
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let preserving: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        // Breakpoints are the kernel's, not the PMU's: the quirk cannot touch them.
        .filter(|c| {
            c["check"] == "overflow-preservation" && c["encoding"].as_str().is_some_and(|e| e.starts_with("raw"))
        })
        .collect();
    assert!(!preserving.is_empty());
    for case in preserving {
        assert_eq!(case["verdict"], "fail", "{case}");
        assert_eq!(case["signature"]["kind"], "overcount", "{case}");
        let diagnosis = case["diagnosis"].as_array().unwrap();
        assert!(
            diagnosis
                .iter()
                .any(|d| d.as_str().unwrap().starts_with("matches xen-pmc-quirk")),
            "{case}"
        );
        assert_eq!(case["gate"]["status"], "matches", "{case}");
    }
}

/// A stray SIGTRAP during a breakpoint window (the kernel sends one for a
/// debug trap it does not claim; here another process sends them, every
/// 10 ms) is that case's `error`, never the death of the run: disturbed
/// windows are run again until they have come one after another for 5 s,
/// then the case errs, and the report is still written.
#[test]
fn stray_debug_traps_become_the_cases_error_not_the_runs_death() {
    let dir = tempfile::tempdir().unwrap();
    let suites = dir.path().join("suites");
    std::fs::create_dir(&suites).unwrap();
    std::fs::write(
        suites.join("traps.yaml"),
        "about: long breakpoint runs\ncases:\n  - id: long-breakpoint-count\n    about: x\n    probe: linux\n    \
         check: exact-count\n    event: breakpoint-marker\n    workload: {kind: branch-loop, iterations: 20000}\n    \
         runs: 3\n    expect: {count: marker_hits}\n",
    )
    .unwrap();
    let json = dir.path().join("report.json");
    let mut child = bin()
        .args(["--label", "trap-test", "--quiet"])
        .arg("--suites")
        .arg(&suites)
        .arg("--expected")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Once libtest says it is running, the executor (and its SIGTRAP handler) exists.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("running 1 test") {
        line.clear();
        assert_ne!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap(),
            0,
            "no trial started"
        );
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTRAP) };
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(101), "{status:?}");
    drop(stdout);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let case = &report["cases"][0];
    assert_eq!(case["verdict"], "error", "{case}");
    assert_eq!(case["reason"]["code"], "disturbed", "{case}");
    let reason = case["reason"]["message"].as_str().unwrap();
    assert!(
        reason.contains("a breakpoint trap the kernel did not claim") && reason.contains("sent by process"),
        "{reason}"
    );
}

/// `--env` names a listed environment or this machine's derived id; anything
/// else is a usage error with the nearest match, never a green run of the
/// local suite under a typo.
#[test]
fn an_unknown_environment_is_exit_2_with_the_nearest_match() {
    let (code, stdout, stderr) = run(bin().args(["--env", "sim:xen-intell"]));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("unknown environment `sim:xen-intell`; did you mean `sim:xen-intel`?"),
        "{stderr}"
    );
    assert!(stderr.contains("known: ") && stderr.contains("qemu-tcg"), "{stderr}");
    assert!(stderr.contains("--label sim:xen-intell"), "{stderr}");
    assert!(stdout.is_empty(), "nothing may run: {stdout}");
    // A label cannot take a listed environment's name or folder either.
    let (code, _, stderr) = run(bin().args(["--label", "sim:ideal"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is the sim environment defined at"), "{stderr}");
    let (code, _, stderr) = run(bin().args(["--label", "sim-ideal"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("would record into expected/sim-ideal/"), "{stderr}");
}

/// Ids and labels name one folder under the expectations folder and can
/// never climb out of it, or write into its root.
#[test]
fn ids_that_would_leave_the_expectations_folder_are_refused() {
    let top = tempfile::tempdir().unwrap();
    let expected = top.path().join("expected");
    std::fs::create_dir(&expected).unwrap();
    for (flag, id, says) in [
        ("--label", "../../x", "starts with `.`"),
        ("--label", "a/../../x", "`/` (character 2) is not allowed"),
        ("--label", "", "it is empty"),
        ("--env", "", "it is empty"),
        ("--env", "../x", "starts with `.`"),
    ] {
        let (code, stdout, stderr) = run(bin()
            .args([flag, id, "--accept", "--exact", ONE_CASE])
            .arg("--expected")
            .arg(&expected));
        assert_eq!(code, 2, "{flag} {id:?}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{flag} {id:?}: {stderr}");
    }
    let written: Vec<_> = walk(top.path());
    assert_eq!(written, vec![expected.clone()], "nothing was written anywhere");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// A copied binary, run from a folder that is no checkout, records with a
/// relative `--expected` exactly where the next run compares.
#[test]
fn a_relative_expected_folder_round_trips_from_anywhere() {
    let work = tempfile::tempdir().unwrap();
    let gated = || {
        let mut c = bin();
        c.current_dir(work.path()).args([
            "--label",
            "round-trip",
            "--runs",
            "1",
            "--exact",
            ONE_CASE,
            "--expected",
            "exp",
        ]);
        c
    };
    let (code, stdout, stderr) = run(gated().arg("--accept"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let snapshot = snapshot_of(&work.path().join("exp"), "round-trip", ONE_CASE);
    assert!(snapshot.is_file(), "{}", snapshot.display());
    let (code, stdout, stderr) = run(&mut gated());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("as recorded"), "{stdout}");
    assert!(stdout.contains("expectations: exp/round-trip/"), "{stdout}");
    assert_eq!(
        walk(work.path()).iter().filter(|p| p.is_file()).count(),
        1,
        "one snapshot, nothing else"
    );

    // Outside a checkout and with no --expected, nothing is recorded: strict, and the header says so.
    let (code, stdout, _) =
        run(bin()
            .current_dir(work.path())
            .args(["--label", "round-trip", "--runs", "1", "--exact", ONE_CASE]));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("expectations: none (no expectations folder"),
        "{stdout}"
    );
    let (code, _, stderr) =
        run(bin()
            .current_dir(work.path())
            .args(["--label", "round-trip", "--accept", "--exact", ONE_CASE]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--accept has nowhere to record"), "{stderr}");
}

/// Where expectations or reports cannot go is found before any case runs.
#[test]
fn bad_destinations_are_usage_errors_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, stdout, stderr) = run(bin().arg("--expected").arg(&file).args(["--exact", ONE_CASE]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("it is a file, not a folder of expectations"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "said once: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let (code, _, stderr) = run(bin()
        .arg("--expected")
        .arg(dir.path())
        .arg("--expected")
        .arg(dir.path())
        .args(["--exact", ONE_CASE]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot be used multiple times"), "{stderr}");
    for (flag, path) in [
        ("--json", dir.path().join("no/such/folder/r.json")),
        ("--junit", dir.path().to_path_buf()),
    ] {
        let (code, stdout, stderr) = run(bin().arg(flag).arg(&path).args(["--exact", ONE_CASE]));
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains("cannot write a report to"), "{flag}: {stderr}");
        assert!(stdout.is_empty(), "{flag}: {stdout}");
    }
    let (code, _, stderr) = run(bin().args(["--skip", "no-such-case", "selfcheck/"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--skip no-such-case: no case"), "{stderr}");
}

#[test]
fn environments_lists_every_environment_with_its_kind() {
    let (code, stdout, stderr) = run(bin().arg("environments"));
    assert_eq!(code, 0, "{stderr}");
    for (id, kind) in [
        ("sim:xen-intel", "sim"),
        ("qemu-tcg-intel", "qemu"),
        ("kvm-amd-zen-nopmu", "linux"),
    ] {
        let row = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("{id}: {stdout}"));
        assert!(row.contains(&format!(" {kind} ")), "{row}");
    }
}

/// A linux window cannot be interrupted: a case past its deadline is an
/// error at once, its thread runs on, and the next case, which needs the
/// notification slots and the CPU that thread holds, waits for it and then
/// runs normally (it once failed with "another window already owns the
/// notification slots").
#[test]
fn a_linux_case_past_its_deadline_does_not_spoil_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let suites = dir.path().join("suites");
    std::fs::create_dir(&suites).unwrap();
    std::fs::write(
        suites.join("slow.yaml"),
        "about: x\ncases:\n  - id: outlives-its-deadline\n    about: x\n    probe: linux\n    check: pmi-delivery\n    \
         event: task-clock\n    workload: {kind: branch-loop, iterations: 3000000000}\n    period: 1000000\n    \
         runs: 1\n    timeout: 1\n  - id: needs-the-slots\n    about: x\n    probe: linux\n    check: pmi-delivery\n    \
         event: breakpoint-marker\n    workload: {kind: branch-loop, iterations: 1000}\n    period: 100\n    runs: 1\n",
    )
    .unwrap();
    let json = dir.path().join("report.json");
    let (code, stdout, stderr) = run(bin()
        .args(["--label", "slow", "--quiet"])
        .arg("--suites")
        .arg(&suites)
        .arg("--expected")
        .arg(dir.path())
        .arg("--json")
        .arg(&json));
    assert_eq!(code, 101, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (slow, next) = (&report["cases"][0], &report["cases"][1]);
    assert_eq!(slow["verdict"], "error", "{slow}");
    assert_eq!(slow["reason"]["code"], "deadline", "{slow}");
    assert!(
        slow["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("ran past its deadline of 1 s and was abandoned"),
        "{slow}"
    );
    assert_eq!(next["verdict"], "pass", "{next}");
}

/// A FIFO named like a suite would block a plain read forever, and a link to
/// /dev/zero would grow without end: both are refused at once, located.
#[test]
fn special_files_among_the_suites_are_refused_at_once() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/selfcheck.yaml"),
        dir.path().join("selfcheck.yaml"),
    )
    .unwrap();
    let fifo = std::ffi::CString::new(dir.path().join("x.yaml").as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary folder.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(bin().arg("check").arg("--suites").arg(dir.path()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it did not block"
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("x.yaml:1:1: error: cannot read this suite file: it is a FIFO"),
        "{stderr}"
    );
    assert!(
        stderr.contains("zero.yaml:1:1: error: cannot read this suite file: it is a character device"),
        "{stderr}"
    );
}

/// A dump `env --cpuid` printed on one machine is examined on any other: the
/// fingerprint and the events are those of the dump's CPU, and a damaged
/// dump is a located error.
#[test]
fn a_cpuid_dump_replays_anywhere() {
    let turin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cpuid/bare-amd-turin.yaml");
    let (code, stdout, stderr) = run(bin().arg("env").arg("--cpuid-replay").arg(&turin));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("derived_id: bare-amd-zen-perfmon-v2\n"), "{stdout}");
    assert!(!stdout.contains("linux:"), "a dump has no Linux part: {stdout}");
    let (code, stdout, stderr) = run(bin().arg("events").arg("--cpuid").arg(&turin));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("AuthenticAMD family 0x1a model 0x2"), "{stdout}");
    assert!(
        stdout.contains("raw 0x5100d1"),
        "Zen's retired conditional branches: {stdout}"
    );

    // What this machine dumps, it replays as itself, the Linux part aside.
    let dir = tempfile::tempdir().unwrap();
    let (_, dump, _) = run(bin().args(["env", "--cpuid"]));
    std::fs::write(dir.path().join("mine.yaml"), &dump).unwrap();
    let (code, replayed, _) = run(bin().arg("env").arg("--cpuid-replay").arg(dir.path().join("mine.yaml")));
    assert_eq!(code, 0);
    let (_, here, _) = run(bin().arg("env"));
    let cpu = |text: &str| {
        text.split("hypervisor:")
            .next()
            .unwrap()
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(cpu(&replayed), cpu(&here));

    std::fs::write(dir.path().join("bad.yaml"), "- \"00000001.0: 1 2 3\"\n").unwrap();
    let (code, _, stderr) = run(bin().arg("env").arg("--cpuid-replay").arg(dir.path().join("bad.yaml")));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("bad.yaml:1:1: error: `00000001.0: 1 2 3` is not `leaf.subleaf: eax ebx ecx edx`"),
        "{stderr}"
    );
}

#[test]
fn trace_prints_traced_against_expected_and_refuses_unknown_cases() {
    let (code, out, err) = run(bin().args(["trace", "overflow/rr-xen-probe", "exact-counts/kernel-branches"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("expect conditional_branches = 500; traced 500: agree"),
        "{out}"
    );
    assert!(
        out.contains("one notification's handler adds 18 instructions (13 up to its read)"),
        "{out}"
    );
    // The kernel's window, booted under TCG and logged by QEMU.
    assert!(out.contains("expect branches = 1000; traced 1000: agree"), "{out}");

    // A size the workload cannot take is not traced, and the run says so.
    let (code, out, _) = run(bin().args(["trace", "--size", "2", "overflow/rr-xen-probe"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not traced: `rr-xen-probe` needs branches ≥ 3"), "{out}");

    let (code, out, _) = run(bin().args([
        "trace",
        "--size",
        "40",
        "exact-counts/conditional-branches-across-cpuid",
    ]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cpuid-loop (40 iterations)") && out.contains("traced 80: agree"),
        "{out}"
    );

    let (code, _, err) = run(bin().args(["trace", "overflow/rr-xen-prob"]));
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `overflow/rr-xen-probe`"), "{err}");
}
