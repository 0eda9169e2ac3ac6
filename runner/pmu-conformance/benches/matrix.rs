//! A matrix's wall time against its environments' own, and a Linux guest's
//! boot, measured through the runner as a user runs it.
//!
//! - The TCG matrix (`matrices/kvm.yaml --env tcg-`: the probe kernel on
//!   microvm and q35, and the Linux guest) and `matrices/qemu.yaml`, each
//!   with `-j 2`: the wall time, the slowest environment's time and the sum
//!   of all of theirs, from the matrix report. Target: the wall time at
//!   most 1.2 times the slowest environment's.
//! - The Linux guest under TCG, from its kept console (each line timed from
//!   QEMU's start): the first verdict (a cold start) and the last. Target:
//!   the last verdict at most 3 s after QEMU starts.
//! - The static runner's size (`cargo xtask dist`).
//!
//! Needs QEMU, the probe kernel, the static runner and the guest kernel
//! (`cargo xtask test` sets them all up); says what is missing otherwise.
//! Run with `cargo bench --bench matrix` or `cargo xtask bench`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pmu_conformance::matrix::report::{MatrixReport, parse};

const SAMPLES: usize = 3;
const WALL_OVER_SLOWEST: f64 = 1.2;
const GUEST_LAST_VERDICT: Duration = Duration::from_secs(3);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn matrix(file: &str, pattern: Option<&str>, out: &Path) -> Result<MatrixReport, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    command
        .current_dir(root())
        .args(["matrix", "run", file, "-j", "2", "--out"])
        .arg(out);
    if let Some(p) = pattern {
        command.args(["--env", p]);
    }
    let output = command.output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "{file}: exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let path = out.join("matrix.json");
    parse(
        &path.display().to_string(),
        &std::fs::read_to_string(&path).map_err(|e| e.to_string())?,
    )
}

/// `[  1234 ms] text` lines of a kept console: (ms, text).
fn timed_lines(console: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(console)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (ms, text) = l.strip_prefix('[')?.split_once(" ms] ")?;
            Some((ms.trim().parse().ok()?, text.to_owned()))
        })
        .collect()
}

/// A libtest verdict line: `test <case> ... ok` (or ignored, FAILED).
fn is_verdict(text: &str) -> bool {
    text.starts_with("test ") && text.contains(" ... ")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs one sample of the TCG
    // matrix as a smoke check (tests/matrix.rs holds it to its expectations).
    let measuring = std::env::args().any(|a| a == "--bench");
    let samples = if measuring { SAMPLES } else { 1 };
    let dist = root().join("target/x86_64-unknown-linux-musl/release/pmu-conformance");
    match std::fs::metadata(&dist) {
        Ok(m) => println!("static runner: {:.2} MB ({})", m.len() as f64 / 1e6, dist.display()),
        Err(_) => println!("static runner: not built (`cargo xtask dist`)"),
    }
    let matrices: &[(&str, Option<&str>)] = if measuring {
        &[("matrices/kvm.yaml", Some("tcg-")), ("matrices/qemu.yaml", None)]
    } else {
        &[("matrices/kvm.yaml", Some("tcg-"))]
    };
    for &(file, pattern) in matrices {
        let label = format!("{file}{}", pattern.map_or(String::new(), |p| format!(" --env {p}")));
        let mut ratios = Vec::new();
        let mut walls = Vec::new();
        let mut sums = Vec::new();
        let mut last: Option<MatrixReport> = None;
        let mut guest: Vec<(f64, f64)> = Vec::new();
        for _ in 0..samples {
            let out = tempfile::tempdir().unwrap();
            let report = match matrix(file, pattern, out.path()) {
                Ok(r) => r,
                Err(why) => {
                    println!("{label}: failed: {why}");
                    return;
                }
            };
            let slowest = report.environments.iter().map(|e| e.wall_ms).max().unwrap_or(1).max(1);
            ratios.push(report.wall_ms as f64 / slowest as f64);
            walls.push(report.wall_ms as f64 / 1e3);
            sums.push(report.sum_ms as f64 / 1e3);
            for e in report.environments.iter().filter(|e| e.kind == "qemu-linux") {
                let consoles = Path::new(&e.artifacts).join("consoles");
                for console in std::fs::read_dir(&consoles).into_iter().flatten().flatten() {
                    let lines = timed_lines(&console.path());
                    let verdicts: Vec<u64> = lines.iter().filter(|(_, t)| is_verdict(t)).map(|(ms, _)| *ms).collect();
                    if let (Some(first), Some(last)) = (verdicts.first(), verdicts.last()) {
                        guest.push((*first as f64 / 1e3, *last as f64 / 1e3));
                    }
                }
            }
            last = Some(report);
        }
        let ratio = median(ratios);
        println!(
            "{label}, -j 2 (median of {samples}): wall {:.2} s, environments' own times add up to {:.2} s \
             (speed-up {:.2}×); wall / slowest environment {ratio:.2} (target ≤ {WALL_OVER_SLOWEST}: {})",
            median(walls.clone()),
            median(sums.clone()),
            median(sums) / median(walls),
            if ratio <= WALL_OVER_SLOWEST { "met" } else { "MISSED" }
        );
        if let Some(report) = last {
            for e in &report.environments {
                println!("  {:<26} {:>6.2} s  {}", e.id, e.wall_ms as f64 / 1e3, e.status.name());
            }
        }
        if !guest.is_empty() {
            let first = median(guest.iter().map(|g| g.0).collect());
            let last = median(guest.iter().map(|g| g.1).collect());
            println!(
                "  Linux guest under TCG, from QEMU's start: first verdict (cold start) {first:.2} s, last verdict \
                 {last:.2} s (target ≤ {} s: {})",
                GUEST_LAST_VERDICT.as_secs(),
                if last <= GUEST_LAST_VERDICT.as_secs_f64() {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
    }
}
