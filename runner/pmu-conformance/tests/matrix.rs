//! `pmu-conformance matrix`: the TCG configurations of matrices/kvm.yaml end
//! to end against what is recorded (the probe kernel on microvm and q35, and
//! a Linux guest whose self-checks pass inside it), in parallel, with one
//! table, a matrix report that reads back, JUnit and each guest's console;
//! an environment that cannot be reached fails the matrix without stopping
//! the others; bad input exits 2 before anything runs. Needs QEMU, the probe
//! kernel, the static runner and the guest kernel (`cargo xtask test` sets
//! them up).

use std::path::{Path, PathBuf};
use std::process::Command;

use pmu_conformance::matrix::report::{MatrixReport, RunStatus, parse};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    c.current_dir(root());
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report_in(dir: &Path) -> MatrixReport {
    let path = dir.join("matrix.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let report = parse(&path.display().to_string(), &text).unwrap();
    let mut again = Vec::new();
    pmu_conformance::matrix::report::write_json(&report, &mut again).unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), text, "the matrix report round-trips");
    report
}

#[test]
fn the_tcg_matrix_runs_end_to_end_against_its_expectations() {
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(bin()
        .args([
            "matrix",
            "run",
            "matrices/kvm.yaml",
            "--env",
            "tcg-",
            "-j",
            "2",
            "--out",
        ])
        .arg(out.path()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report = report_in(out.path());
    let ids: Vec<&str> = report.environments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["tcg-linux-q35", "tcg-probe-kernel-microvm", "tcg-probe-kernel-q35"]
    );
    assert_eq!(report.jobs, 2);
    for e in &report.environments {
        assert_eq!(e.status, RunStatus::Ok, "{}", e.line());
        let r = e.report.as_ref().expect("each environment reports");
        assert_eq!(r.summary.gate_failures, 0);
        assert!(stdout.contains(&e.id), "the table has a column for {}", e.id);
        let consoles = Path::new(&e.artifacts).join("consoles");
        assert!(
            std::fs::read_dir(&consoles).unwrap().count() >= 1,
            "{}: each boot's console is kept",
            e.id
        );
    }
    // The Linux guest's self-checks pass inside the guest.
    let guest = report.environments[0].report.as_ref().unwrap();
    let passed = guest
        .cases
        .iter()
        .filter(|c| c.id.starts_with("selfcheck/") && c.verdict.to_string() == "pass")
        .count();
    assert!(passed >= 8, "{passed} self-checks passed in the guest");
    // Every kernel case under TCG is unsupported, with its reason.
    for c in &report.environments[1].report.as_ref().unwrap().cases {
        assert!(c.reason.is_some(), "{}", c.id);
    }
    let junit = std::fs::read_to_string(out.path().join("matrix.junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 3, "{junit}");
    assert!(stdout.contains("matrix: 3 of 3 environments as expected"), "{stdout}");
    // TCG has no PMU: no hardware case is judged anywhere.
    let vpmu = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("vPMU"))
        .expect("a vPMU row");
    assert_eq!(vpmu.matches("none seen").count(), 3, "{vpmu}");
}

#[test]
fn list_shows_each_environment_and_runs_nothing() {
    let (code, stdout, stderr) = run(bin().args(["matrix", "list", "matrices/kvm.yaml"]));
    assert_eq!(code, 0, "{stderr}");
    for id in [
        "kvm-host-pmu-on",
        "kvm-host-pmu-off",
        "kvm-skylake-server",
        "kvm-linux-microvm",
        "tcg-linux-q35",
    ] {
        assert!(stdout.contains(id), "{id}: {stdout}");
    }
    assert!(stdout.contains("qemu-linux") && stdout.contains("cases"), "{stdout}");
}

#[test]
fn the_cloud_example_validates_and_lists_its_instance_types() {
    let (code, stdout, stderr) = run(bin().args(["check", "--matrices", "matrices/cloud.example.yaml"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("4 environments"), "{stdout}");
    let (code, stdout, _) = run(bin().args(["matrix", "list", "matrices/cloud.example.yaml"]));
    assert_eq!(code, 0);
    assert_eq!(stdout.matches(" ssh ").count(), 4, "{stdout}");
}

#[test]
fn bad_input_exits_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(bin().args(["matrix", "run", "matrices/nope.yaml"]));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(bin().args(["matrix", "run", "matrices/kvm.yaml", "--env", "xen"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no environment of matrices/kvm.yaml matches"),
        "{stderr}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "about: x\nenvironments:\n  - id: a\n    about: x\n    probe: ssh\n    host: example.org\n    port: 0\n",
    )
    .unwrap();
    let (code, _, stderr) = run(bin().args(["matrix", "run"]).arg(&bad));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.yaml:7:"), "a located error: {stderr}");
    assert!(!dir.path().join("pmuc-matrix").exists());
}

#[test]
fn an_environment_that_cannot_be_reached_fails_the_matrix_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "about: x\nenvironments:\n  - id: mixed-model\n    about: the model\n    probe: sim\n    model: intel-skylake\n  \
         - id: mixed-lost-pmi\n    about: the model, losing PMIs\n    probe: sim\n    model: intel-skylake\n    \
         faults: [lost-pmi]\n  - id: mixed-no-qemu\n    about: a QEMU that cannot start\n    probe: qemu\n    accel: tcg\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, stdout, stderr) = run(bin()
        .args(["matrix", "run", "--out"])
        .arg(&out)
        .arg(&file)
        .env("PMUC_QEMU", "/nonexistent/qemu"));
    assert_eq!(code, 101, "{stdout}{stderr}");
    let report = report_in(&out);
    let (lossy, model, qemu) = (
        &report.environments[0],
        &report.environments[1],
        &report.environments[2],
    );
    assert_eq!(lossy.status, RunStatus::GateFailed, "{}", lossy.line());
    assert_eq!(model.status, RunStatus::Ok, "{}", model.line());
    assert!(model.report.as_ref().unwrap().summary.pass > 0);
    assert_eq!(qemu.status, RunStatus::Unreachable, "{}", qemu.line());
    assert!(
        qemu.message.as_deref().unwrap_or("").contains("/nonexistent/qemu"),
        "it says why: {:?}",
        qemu.message
    );
    assert!(stdout.contains("unreachable ✗"), "{stdout}");
    let vpmu = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("vPMU"))
        .expect("a vPMU row");
    let cells: Vec<&str> = vpmu.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert!(cells[1].starts_with("unfaithful ("), "{vpmu}");
    assert!(cells[2].starts_with("faithful ("), "{vpmu}");
    assert_eq!(cells[3], "unknown", "{vpmu}");
    let junit = std::fs::read_to_string(out.join("matrix.junit.xml")).unwrap();
    assert!(junit.contains("errors=\"") && junit.contains("unreachable"), "{junit}");
}
