//! Supervised guests: every way a guest or its QEMU can misbehave becomes
//! that case's `error` within its deadline and a second, the next case goes
//! on, and nothing is left running: not after a deadline, not after SIGINT,
//! not after the runner itself is killed.
//!
//! QEMU here is a wrapper script (`$PMUC_QEMU`) around the real one, which
//! misbehaves as the case named in the guest's plan asks: it hangs after
//! the guest's hello, floods the console, leaves a child holding the console
//! open, or fails before the guest starts. The first boot, which only reads
//! the guest's CPUID, is the real QEMU's; the boot of all the planned cases
//! together fails, so each case falls back to a boot of its own. These need QEMU and the probe
//! kernel image, as the other boot tests do (`cargo xtask test` sets both up).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `sleep` duration no other process on the machine uses, so /proc shows
/// ours: one per test, since tests run at once.
fn mark(test: u32) -> String {
    format!("31{test}.{}", std::process::id())
}

fn fake_qemu(dir: &Path, mark: &str) -> PathBuf {
    let script = dir.join("fake-qemu");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             # The real QEMU, misbehaving as the plan's case asks. A plan of\n\
             # several cases (the executor's one boot for all) fails to start,\n\
             # so that each case gets the boot of its own it falls back to.\n\
             case \"$*\" in\n\
             *\\;*) echo 'this QEMU boots one case at a time' >&2; exit 1 ;;\n\
             *faults/hangs-after-hello*) qemu-system-x86_64 \"$@\" > \"$0.out\" 2>/dev/null; sed '/kind=hello/q' \"$0.out\"; exec sleep {mark} ;;\n\
             *faults/floods*) exec yes 'a guest that will not stop talking' ;;\n\
             *faults/holds-console*) sleep {mark} & exec qemu-system-x86_64 \"$@\" ;;\n\
             *faults/qemu-fails*) echo 'pretend QEMU could not start' >&2; exit 1 ;;\n\
             *) exec qemu-system-x86_64 \"$@\" ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// A suite of kernel cases with these ids, each with a 3 s deadline.
fn suite(dir: &Path, ids: &[&str]) -> PathBuf {
    let suites = dir.join("suites");
    std::fs::create_dir_all(&suites).unwrap();
    let mut text = String::from("about: guests that misbehave\ncases:\n");
    for id in ids {
        text.push_str(&format!(
            "  - id: {id}\n    about: x\n    probe: kernel\n    check: overflow-status\n    runs: 1\n    timeout: 3\n"
        ));
    }
    std::fs::write(suites.join("faults.yaml"), text).unwrap();
    suites
}

fn runner(dir: &Path, ids: &[&str], mark: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    command
        .args(["--env", "qemu-tcg", "--quiet"])
        .arg("--suites")
        .arg(suite(dir, ids))
        .arg("--expected")
        .arg(dir)
        .arg("--json")
        .arg(dir.join("report.json"))
        .env("PMUC_QEMU", fake_qemu(dir, mark))
        .env_remove("CI")
        .env_remove("INSTA_UPDATE");
    command
}

/// Processes on this machine running our marked `sleep`.
fn marked_sleepers(mark: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline.split(|&b| b == 0).any(|arg| arg == mark.as_bytes())
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Waits up to a second for marked sleepers to be gone (a killed process
/// lingers until it is reaped).
fn assert_no_sleepers_left(mark: &str, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !marked_sleepers(mark).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        marked_sleepers(mark),
        Vec::<String>::new(),
        "processes left behind {when}"
    );
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn every_misbehaving_guest_is_an_error_within_its_deadline_and_the_next_case_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ["hangs-after-hello", "floods", "holds-console", "qemu-fails"];
    let mark = mark(1);
    let output = runner(dir.path(), &ids, &mark).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(101),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(dir.path());
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), ids.len(), "every case ran and was reported");
    let says = [
        ("deadline", "still running at its deadline of 3 s"),
        ("guest", "wrote more than 4 MiB to its console"),
        ("guest", "another process kept its console open"),
        ("guest", "QEMU exited with status 1 before the guest printed anything"),
    ];
    for (case, (code, says)) in cases.iter().zip(says) {
        assert_eq!(case["verdict"], "error", "{case}");
        assert_eq!(case["reason"]["code"], code, "{case}");
        let reason = case["reason"]["message"].as_str().unwrap();
        assert!(reason.contains(says), "{}: {reason}", case["id"]);
        let ended = case["figures"]["ended_ms"].as_u64().unwrap();
        assert!(
            ended <= 4_000,
            "{}: a verdict after {ended} ms, past its 3 s deadline and 1 s",
            case["id"]
        );
        eprintln!("{}: error after {ended} ms", case["id"]);
    }
    assert!(
        cases[3]["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("pretend QEMU could not start"),
        "QEMU's own words are quoted"
    );
    assert_no_sleepers_left(&mark, "after the run");
}

/// Starts the runner on `ids` with a long deadline, and returns once one of
/// its guests hangs (its marked `sleep` runs).
fn until_a_guest_hangs(dir: &Path, ids: &[&str], mark: &str) -> std::process::Child {
    let child = runner(dir, ids, mark)
        .arg("--timeout")
        .arg("60")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while marked_sleepers(mark).is_empty() {
        assert!(Instant::now() < deadline, "the hanging guest never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// SIGINT while a guest hangs: the guest is killed, the finished cases are
/// written as a partial report, and the runner exits 130.
#[test]
fn sigint_kills_the_guests_and_writes_a_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let mark = mark(2);
    // The second case's QEMU hanging means the first has finished.
    let child = until_a_guest_hangs(dir.path(), &["qemu-fails", "hangs-after-hello"], &mark);
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130), "{status:?}");
    let report = report(dir.path());
    assert_eq!(report["interrupted"], "SIGINT after 1 of 2 cases; the rest did not run");
    assert_eq!(report["cases"].as_array().unwrap().len(), 1);
    assert_eq!(report["cases"][0]["id"], "faults/qemu-fails");
    assert_no_sleepers_left(&mark, "after SIGINT");
}

/// `kill -9` of the runner cannot run any of its code, yet its guest dies
/// with it (PR_SET_PDEATHSIG).
#[test]
fn no_guest_outlives_a_runner_killed_with_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mark = mark(3);
    let mut child = until_a_guest_hangs(dir.path(), &["hangs-after-hello"], &mark);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_sleepers_left(&mark, "after the runner was killed");
}

/// A Linux guest that never reports, whether its QEMU exits talking noise
/// or hangs, ends the environment within its deadline for each attempt
/// (two under TCG, the stated retry policy), saying why, and leaves nothing
/// running. QEMU here is a script; the guest's "runner" is the probe kernel
/// image, a static ELF that the script never boots.
#[test]
fn a_linux_guest_that_never_reports_ends_within_its_deadline_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mark = mark(7);
    let qemu = dir.path().join("fake-qemu");
    std::fs::write(
        &qemu,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n*hangs*) echo '[    0.0] Linux version 6.1'; exec sleep {mark} ;;\n\
             *) echo '[    0.0] Linux version 6.1'; echo 'Kernel panic - not syncing: no init'; exit 0 ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&qemu, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let matrices = dir.path().join("matrices");
    std::fs::create_dir_all(&matrices).unwrap();
    let kernel = qemu.display().to_string();
    std::fs::write(
        matrices.join("guests.yaml"),
        format!(
            "about: x\nenvironments:\n  - id: panics\n    about: x\n    probe: qemu-linux\n    accel: tcg\n    \
             kernel: {kernel}\n    deadline: 2\n  - id: hangs\n    about: x\n    probe: qemu-linux\n    accel: tcg\n    \
             kernel: {kernel}\n    deadline: 2\n    extra_args: [hangs]\n"
        ),
    )
    .unwrap();
    let image = pmu_conformance::executor::qemu::image::find(None).expect("the probe kernel image is built");
    for (env, says) in [
        (
            "panics",
            "the guest's last line: \"Kernel panic - not syncing: no init\"",
        ),
        ("hangs", "the boot ended Deadline"),
    ] {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
            .args(["--env", env, "--matrices"])
            .arg(&matrices)
            .env("PMUC_QEMU", &qemu)
            .env("PMUC_GUEST_RUNNER", &image)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{env}: {stderr}");
        assert!(
            stderr.contains("the Linux guest sent no report in 2 boots"),
            "{env}: {stderr}"
        );
        assert!(stderr.contains(says), "{env}: {stderr}");
        assert!(
            elapsed < Duration::from_secs(8),
            "{env}: {elapsed:?} for two boots of 2 s"
        );
    }
    assert_no_sleepers_left(&mark, "after the Linux guests");
}

/// With the real QEMU, every planned kernel case runs in the boot that says
/// hello: one console kept, and each case's record says how many shared it.
/// A `--runs` override asks for other requests than that boot ran: they get
/// a boot of their own.
#[test]
fn the_planned_kernel_cases_share_one_boot() {
    let dir = tempfile::tempdir().unwrap();
    let consoles = dir.path().join("consoles");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["--env", "qemu-tcg", "--quiet", "--json"])
        .arg(&json)
        .arg("--consoles")
        .arg(&consoles)
        .env_remove("PMUC_QEMU")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() > 1);
    for c in cases {
        assert_eq!(c["figures"]["cases_in_boot"], cases.len(), "{c}");
    }
    let mut kept: Vec<String> = std::fs::read_dir(&consoles)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, [format!("001-hello-and-{}-cases.log", cases.len())]);

    let consoles = dir.path().join("consoles-runs");
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["--env", "qemu-tcg", "--quiet", "--runs", "2", "--consoles"])
        .arg(&consoles)
        .env_remove("PMUC_QEMU")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut kept: Vec<String> = std::fs::read_dir(&consoles)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            format!("001-hello-and-{}-cases.log", cases.len()),
            format!("002-{}-cases.log", cases.len())
        ]
    );
}
