//! Xen under QEMU for real: `matrices/xen.yaml` boots Debian's Xen under TCG
//! with the probe kernel as its PVH dom0, with the vPMU off and on, and with
//! Debian's Linux as its PV dom0 creating the probe kernel as a PVH domU
//! through `xl`; each environment is gated against what is recorded. Each
//! must run every kernel case in one boot (or one domain), report the Xen
//! build it booted, and end by itself (a halted Xen would be a deadline
//! error). `matrices/xen-linux-domu.yaml` nests a Linux PVH domU carrying
//! the runner in that dom0, and its linux cases are gated the same way. The xl environments, here not in a dom0, are unsupported with
//! the reason. Needs QEMU, the probe kernel, the static runner, and Debian's
//! Xen and dom0 (`cargo xtask test` sets them up; `cargo xtask xen` fetches
//! Xen and the dom0).

use std::path::{Path, PathBuf};
use std::process::Command;

use pmu_conformance::matrix::report::{RunStatus, parse};

/// Each test boots Xen under TCG, which takes both of these machines'
/// cores: one at a time, so neither starves the other's guests.
static ONE_XEN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_probe_kernel_runs_every_kernel_case_as_xens_dom0_in_one_boot() {
    let _one = ONE_XEN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = tempfile::tempdir().unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .current_dir(root())
        .args(["matrix", "run", "matrices/xen.yaml", "-j", "2", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stdout}{stderr}");
    let path = out.path().join("matrix.json");
    let report = parse(&path.display().to_string(), &std::fs::read_to_string(&path).unwrap()).unwrap();
    let ids: Vec<&str> = report.environments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "xen-hvm",
            "xen-pvh",
            "xen-tcg-dom0",
            "xen-tcg-dom0-vpmu",
            "xen-tcg-domu"
        ]
    );
    let env = |id: &str| report.environments.iter().find(|e| e.id == id).unwrap();
    for e in [env("xen-hvm"), env("xen-pvh")] {
        assert_eq!(e.status, RunStatus::Ok, "{}", e.line());
        let r = e.report.as_ref().expect("each environment reports");
        assert!(r.cases.len() >= 20, "{}: {} cases", e.id, r.cases.len());
        for c in &r.cases {
            let reason = c.reason.as_ref().expect("a reason");
            assert_eq!(reason.code.name(), "host-cannot-run-guest", "{}: {}", e.id, c.id);
            assert!(reason.message.contains("not a Xen dom0"), "{}", reason.message);
        }
    }
    check_domu(env("xen-tcg-domu"));
    for (e, vpmu) in [env("xen-tcg-dom0"), env("xen-tcg-dom0-vpmu")]
        .into_iter()
        .zip(["off", "1"])
    {
        assert_eq!(e.status, RunStatus::Ok, "{}", e.line());
        let r = e.report.as_ref().expect("each environment reports");
        assert_eq!(r.summary.gate_failures, 0, "{}", e.id);
        let fingerprint = r.environment.fingerprint.as_ref().expect("a fingerprint");
        let xen = fingerprint.xen.as_ref().expect("the fingerprint says which Xen booted");
        assert!(xen.version.starts_with("4."), "{}: {}", e.id, xen.version);
        assert_eq!(xen.vpmu, vpmu, "{}", e.id);
        assert!(xen.command_line.contains("dom0=pvh"), "{}", xen.command_line);
        assert_eq!(fingerprint.hypervisor.as_ref().map(|h| h.name.as_str()), Some("xen"));
        // Every kernel case reported from the one boot of the plan, each
        // with its reason (TCG has no counters).
        assert!(r.cases.len() >= 20, "{}: {} cases", e.id, r.cases.len());
        for c in &r.cases {
            assert!(c.reason.is_some(), "{}: {}", e.id, c.id);
            assert_eq!(
                c.figures.get("cases_in_boot").and_then(|v| v.as_u64()),
                Some(r.cases.len() as u64),
                "{}: {} came from the plan's one boot",
                e.id,
                c.id
            );
        }
        // One boot: the hello (the guest's CPUID) and the plan together.
        let consoles: Vec<String> = std::fs::read_dir(Path::new(&e.artifacts).join("consoles"))
            .unwrap()
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .collect();
        assert_eq!(consoles.len(), 1, "{}", e.id);
        for console in &consoles {
            assert!(console.contains("ended Exited, exit Guest(0)"), "{console}");
            assert!(console.contains("(XEN) Xen version"), "{console}");
            assert!(
                !console.contains("(d0) @pmuc1"),
                "records come whole, through console_io: {console}"
            );
            // The boot's self-test: an NMI through the vLAPIC's ICR, and a
            // yield to Xen's scheduler, each as dom0.
            assert!(
                console.contains("probe-kernel: self-test: 1 NMI from the ICR")
                    && console.contains("1 deschedule by Xen SCHEDOP_yield"),
                "{console}"
            );
        }
        assert!(
            consoles.iter().any(|c| c.contains("# the plan module held: pmuc=")),
            "the plan's module is kept with its console"
        );
    }
    let vpmu = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("vPMU"))
        .expect("a vPMU row");
    assert_eq!(vpmu.matches("none seen").count(), 5, "{vpmu}");
}

/// The linux cases in a Linux PVH domU that carries the runner, created by
/// the Linux dom0's runner under Xen under QEMU (about 90 s): every case
/// reported from inside the domU, gated against what is recorded, with the
/// domU's console kept in the dom0's.
#[test]
fn the_linux_cases_run_in_a_linux_pvh_domu_carrying_the_runner() {
    let _one = ONE_XEN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = tempfile::tempdir().unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .current_dir(root())
        .args(["matrix", "run", "matrices/xen-linux-domu.yaml", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let path = out.path().join("matrix.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let report = parse(&path.display().to_string(), &text).unwrap();
    let e = report
        .environments
        .iter()
        .find(|e| e.id == "xen-tcg-domu-linux")
        .expect("the nested environment ran");
    // Its line says why it could not start, and its console how the boot went.
    let console = std::fs::read_dir(Path::new(&e.artifacts).join("consoles"))
        .map(|d| {
            d.map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
                .collect::<String>()
        })
        .unwrap_or_default();
    let tail: String = console
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(e.status, RunStatus::Ok, "{}\n{tail}", e.line());
    assert_eq!(result.status.code(), Some(0), "{stdout}{stderr}\n{tail}");
    let r = e.report.as_ref().expect("it reports");
    assert_eq!(r.summary.gate_failures, 0);
    let fingerprint = r.environment.fingerprint.as_ref().expect("the domU's fingerprint");
    assert_eq!(fingerprint.hypervisor.as_ref().map(|h| h.name.as_str()), Some("xen"));
    // The self-checks need no PMU: each passed inside the Xen guest.
    let passed = r
        .cases
        .iter()
        .filter(|c| c.verdict == pmu_conformance::outcome::Verdict::Pass)
        .count();
    assert!(passed >= 8, "{passed} passed: {stdout}");
    let console = std::fs::read_dir(Path::new(&e.artifacts).join("consoles"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect::<String>();
    for seen in [
        "domU| pmu-conformance init: running run --label linux-guest",
        "report frames)",
    ] {
        assert!(console.contains(seen), "{seen}: {console}");
    }
}

/// The Linux dom0 ran every kernel case in one PVH domU, the one that said
/// hello, from records it read out of `xl dmesg`, and QEMU ended when the
/// dom0 powered off.
fn check_domu(e: &pmu_conformance::matrix::report::EnvironmentRun) {
    assert_eq!(e.status, RunStatus::Ok, "{}", e.line());
    let r = e.report.as_ref().expect("the dom0 reports");
    assert_eq!(r.summary.gate_failures, 0, "{}", e.id);
    let fingerprint = r.environment.fingerprint.as_ref().expect("a fingerprint");
    let xen = fingerprint.xen.as_ref().expect("the fingerprint says which Xen ran");
    assert!(xen.version.starts_with("4."), "{}", xen.version);
    assert_eq!(xen.vpmu, "off");
    assert!(xen.command_line.contains("dom0_mem=512M"), "{}", xen.command_line);
    assert!(r.cases.len() >= 20, "{} cases", r.cases.len());
    for c in &r.cases {
        assert!(c.reason.is_some(), "{}", c.id);
    }
    let consoles: Vec<String> = std::fs::read_dir(Path::new(&e.artifacts).join("consoles"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert_eq!(consoles.len(), 1, "one boot of Xen and its dom0");
    let console = &consoles[0];
    // One domain (d1) says hello and runs every case: the host's report
    // keeps no figures of an unsupported case, so the end record on the
    // console says how many it ran; no second domain is created.
    let ended = format!("kind=end cases={}", r.cases.len());
    assert!(
        console.lines().any(|l| l.contains(&ended) && l.contains("(d1) @pmuc1")),
        "the first domain runs every case: {console}"
    );
    assert!(
        !console.contains("(d2) "),
        "one domain for the hello and the plan: {console}"
    );
    for seen in [
        "pmu-conformance init: running run --matrices /domu.yaml --env xen-pvh",
        // The self-test as a PVH domU: its NMI and its SCHEDOP_yield.
        "probe-kernel: self-test: 1 NMI from the ICR",
        "1 deschedule by Xen SCHEDOP_yield",
        "Entering ACPI S5 state",
    ] {
        assert!(console.contains(seen), "{seen}: {console}");
    }
}
