//! `pmu-conformance compare` over three machines' reports (the model of a
//! faithful PMU, of Xen and of KVM), and over a matrix report: one row per
//! case, a column per machine, and exactly the rows whose outcomes differ
//! marked, in the terminal, in Markdown and in HTML.

use std::path::{Path, PathBuf};
use std::process::Command;

const MACHINES: [&str; 3] = ["sim:ideal", "sim:xen-intel", "sim:kvm-intel-2022"];

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
    command.env_remove("CI").env_remove("NO_COLOR").env("COLUMNS", "200");
    command
}

/// Each machine's report, written by the binary into `dir`.
fn reports(dir: &Path) -> Vec<PathBuf> {
    MACHINES
        .iter()
        .map(|env| {
            let path = dir.join(format!("{}.json", env.replace(':', "-")));
            let output = bin().args(["--env", env, "-q", "--json"]).arg(&path).output().unwrap();
            assert!(output.status.success(), "{env}: {output:?}");
            path
        })
        .collect()
}

fn compare(args: &[&str], paths: &[PathBuf]) -> String {
    let output = bin().arg("compare").args(args).args(paths).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The cases whose outcomes differ, worked out from the reports themselves.
fn differing(paths: &[PathBuf]) -> Vec<String> {
    let reports: Vec<_> = paths
        .iter()
        .map(|p| pmu_conformance::report::json::read(p).unwrap())
        .collect();
    reports[0]
        .cases
        .iter()
        .filter(|c| {
            reports[1..].iter().any(|r| {
                r.cases
                    .iter()
                    .find(|o| o.id == c.id)
                    .is_none_or(|o| pmu_conformance::compare::cell(o) != pmu_conformance::compare::cell(c))
            })
        })
        .map(|c| c.id.clone())
        .collect()
}

#[test]
fn three_machines_in_one_table_with_what_differs_marked() {
    let dir = tempfile::tempdir().unwrap();
    let paths = reports(dir.path());
    let expected = differing(&paths);
    assert!(
        expected.len() >= 5,
        "Xen's model fails cases the others pass: {expected:?}"
    );
    let table = compare(&["--color", "never"], &paths);
    let header = table.lines().next().unwrap();
    for machine in MACHINES {
        assert!(header.contains(machine), "{header}");
    }
    let marked: Vec<String> = table
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("≠ "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(marked, expected, "{table}");
    assert!(
        table.contains("fail overcount"),
        "the quirk shows as its signature: {table}"
    );
    assert!(
        table
            .trim_end()
            .ends_with(&format!("3 machines, 46 cases: {} differ", expected.len())),
        "{table}"
    );

    // Markdown: a row per case, differing ones bold.
    let markdown = compare(&["--format", "markdown"], &paths);
    assert!(markdown.starts_with("| case | sim:ideal | sim:xen-intel | sim:kvm-intel-2022 |\n|---|"));
    for case in &expected {
        assert!(markdown.contains(&format!("| ≠ **{case}** |")), "{case}: {markdown}");
    }
    // HTML: one page, the differing rows classed so.
    let html = compare(&["--format", "html"], &paths);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<tr class=\"differs\">").count(), expected.len());

    // A folder of the same reports gives the same table, its columns in
    // the files' name order.
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(
        compare(&["--color", "never"], &[dir.path().to_path_buf()]),
        compare(&["--color", "never"], &sorted)
    );
}

#[test]
fn a_matrix_report_is_a_column_per_environment_and_bad_input_is_exit_2() {
    let out = tempfile::tempdir().unwrap();
    let output = bin()
        .args(["matrix", "run", "matrices/sim.yaml", "--env", "sim:xen-fix-", "--out"])
        .arg(out.path())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let table = compare(&["--color", "never"], &[out.path().join("matrix.json")]);
    for fix in [
        "sim:xen-fix-quirk-old-cpus",
        "sim:xen-fix-intercept-reads",
        "sim:xen-fix-hold-pmi",
    ] {
        assert!(table.lines().next().unwrap().contains(fix), "{table}");
    }
    assert!(table.contains("3 machines, "), "{table}");

    let bad = out.path().join("bad.json");
    std::fs::write(&bad, "{\"schema\": \"something/else\"}").unwrap();
    let output = bin().arg("compare").arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.json"));
    let output = bin().arg("compare").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "no report at all is a usage error");
}
