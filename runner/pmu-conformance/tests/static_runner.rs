//! The static runner `cargo xtask dist` builds is one file that carries
//! everything: copied alone into an empty folder and run from `/`, with no
//! checkout and none of the variables that name images, it prints the
//! fingerprint, runs the linux suites, and boots the probe kernel it carries
//! under QEMU. Needs the dist build and QEMU (`cargo xtask test` makes both).

use std::path::{Path, PathBuf};
use std::process::Command;

fn dist_build() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/x86_64-unknown-linux-musl/release/pmu-conformance");
    assert!(
        path.is_file(),
        "{} is missing: `cargo xtask dist` builds it (cargo xtask test does)",
        path.display()
    );
    path
}

fn alone(binary: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary)
        .args(args)
        .current_dir("/")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_static_runner_alone_runs_the_suites_and_boots_the_kernel_it_carries() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("pmu-conformance");
    std::fs::copy(dist_build(), &binary).unwrap();
    assert!(
        pmu_conformance::guest::static_runner(&binary).is_ok(),
        "statically linked"
    );
    let image = pmu_conformance::executor::qemu::image::appended(&binary).expect("it carries the probe kernel");
    assert_eq!(&image[..4], b"\x7fELF");

    let (code, stdout, stderr) = alone(&binary, &["env"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("derived_id: "), "{stdout}");

    let (code, stdout, stderr) = alone(&binary, &["run", "--quiet", "selfcheck/"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let passed: u32 = stdout
        .split("test result: ok. ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no result line: {stdout}"));
    assert!(passed >= 8, "the self-checks pass: {stdout}");

    let json = dir.path().join("qemu-tcg.json");
    let json_arg = json.display().to_string();
    let (code, stdout, stderr) = alone(&binary, &["run", "--env", "qemu-tcg", "--quiet", "--json", &json_arg]);
    assert_eq!(code, 0, "the embedded image boots: {stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // The host class is the guest's, from the CPUID the booted kernel sent.
    let class = report["environment"]["host_class"].as_str().unwrap();
    assert!(class.starts_with("tcg-"), "{class}");
}
