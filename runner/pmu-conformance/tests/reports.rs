//! The JSON report as a user and a remote reader meet it: it documents itself
//! truthfully in README.md, reads back exactly as it was written, refuses
//! what is not a report of this version, and survives a run killed while
//! writing it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use pmu_conformance::report::json::{self, ReadReportError};
use pmu_conformance::report::{self, Report};
use serde_json::Value;

/// A real report: the model of Xen's PMC quirk, where cases pass, fail and
/// are diagnosed, written by the binary.
fn sim_report(dir: &Path) -> (std::path::PathBuf, String) {
    let path = dir.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["--env", "sim:xen-pmc-quirk", "--quiet", "--json"])
        .arg(&path)
        .env_remove("CI")
        .env_remove("INSTA_UPDATE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The field names README.md's "JSON report" block documents: the top-level
/// ones, the nested ones written `{a, b}` or `{a: …, b: …}` beside them, and
/// the case fields under `cases[]`.
fn documented() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<(String, String)>) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let section = &readme[readme.find("## JSON report").expect("README has a JSON report section")..];
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has a text block");
    let (mut top, mut case, mut nested) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        let (names, rest) = match line.trim_start().split_once("  ") {
            Some((names, rest)) => (names.trim(), rest.trim()),
            None => (line.trim(), ""),
        };
        let names: Vec<String> = names.split(", ").map(|n| n.trim_end_matches("[]").to_owned()).collect();
        match indent {
            0 => top.extend(names.iter().cloned()),
            2 => case.extend(names.iter().cloned()),
            _ => continue,
        }
        if let Some(braced) = rest.strip_prefix('{') {
            let mut inner = braced.to_owned();
            while !inner.contains('}') {
                inner.push(' ');
                inner.push_str(lines.next().expect("a closing brace").trim());
            }
            let inner = inner.split('}').next().unwrap();
            let keys: Vec<String> = if inner.contains(':') {
                inner
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .filter_map(|w| w.strip_suffix(':'))
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned)
                    .collect()
            } else {
                inner.split(',').map(|k| k.trim().to_owned()).collect()
            };
            for key in keys {
                nested.insert((names[0].clone(), key));
            }
        }
    }
    (top, case, nested)
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_readme_documents_exactly_the_fields_a_report_has() {
    let dir = tempfile::tempdir().unwrap();
    let (_, text) = sim_report(dir.path());
    let mut report = json::parse("report.json", &text).unwrap();
    // Every optional field present, so each must be documented.
    report.interrupted = Some("SIGINT".into());
    let value = serde_json::to_value(&report).unwrap();
    let (top, case, nested) = documented();
    assert_eq!(top, keys(&value), "README's top-level fields");
    assert_eq!(case, keys(&value["cases"][0]), "README's fields of cases[]");
    for (parent, key) in &nested {
        if parent == "workload" {
            continue; // `{kind, <size parameter>: N}`: the size's key is the workload's own.
        }
        let object = if value.get(parent).is_some() {
            &value[parent]
        } else {
            &value["cases"][0][parent]
        };
        assert!(
            object.get(key).is_some(),
            "README documents {parent}.{key}, which reports lack"
        );
    }
    for parent in ["tool", "environment", "summary"] {
        for key in keys(&value[parent]) {
            assert!(
                nested.contains(&(parent.to_owned(), key.clone())),
                "reports have {parent}.{key}, which README does not document"
            );
        }
    }
    for key in keys(&value["cases"][0]["gate"]) {
        assert!(
            nested.contains(&("gate".to_owned(), key.clone())),
            "gate.{key} is undocumented"
        );
    }
}

#[test]
fn a_report_reads_back_exactly_as_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (path, text) = sim_report(dir.path());
    let report: Report = json::read(&path).unwrap();
    let cases = report.cases.len();
    assert!(cases > 30, "every case the model runs: {cases}");
    assert!(
        report.cases.iter().any(|c| !c.diagnosis.is_empty()),
        "a diagnosed failure crossed"
    );
    let mut again = Vec::new();
    json::write(&report, &mut again).unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        text,
        "written, read and written again, byte for byte"
    );
    let table = report::table::render(&report);
    assert!(table.contains("overflow/rr-xen-probe"), "{table}");
    assert!(
        table.contains(&format!("0 of {cases} trials failed the gate")),
        "{table}"
    );

    let err = json::parse(
        "old.json",
        &text.replace("pmu-conformance/report/v2", "pmu-conformance/report/v0"),
    )
    .unwrap_err();
    assert!(matches!(err, ReadReportError::Schema { .. }), "{err}");
    let extra = text.replacen("\"schema\"", "\"surprise\": 1,\n  \"schema\"", 1);
    let err = json::parse("extra.json", &extra).unwrap_err().to_string();
    assert!(
        err.starts_with("extra.json:2:") && err.contains("unknown field `surprise`"),
        "{err}"
    );
    let err = json::read(&dir.path().join("none.json")).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

/// A child writes half a report over an existing one and dies as a SIGKILL
/// would leave it: no destructor, no rename. The old report must stand.
#[test]
fn a_run_killed_while_writing_leaves_the_previous_report_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, "{\"the\": \"previous report\"}\n").unwrap();
    // SAFETY: the child only writes a file and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let _ = report::write_atomically(&path, |out| {
            out.write_all(b"{\"half of\": ")?;
            out.flush()?;
            // SAFETY: ends the child at once, as a kill would.
            unsafe { libc::_exit(9) }
        });
        unsafe { libc::_exit(0) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(libc::WEXITSTATUS(status), 9, "the child died mid-write");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"the\": \"previous report\"}\n"
    );
}

/// The JUnit file has what Jenkins' and GitLab's readers show: a `time` on
/// every case, and on every suite its `timestamp`, `time`, `hostname` and
/// `<properties>` with the fingerprint; counts that agree with the report.
#[test]
fn the_junit_file_carries_times_the_host_and_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (json, _) = sim_report(dir.path());
    let xml_path = dir.path().join("report.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["--env", "sim:xen-pmc-quirk", "--quiet", "--junit"])
        .arg(&xml_path)
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let report = json::read(&json).unwrap();
    let attribute = |element: &str, name: &str| -> Option<String> {
        let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(element[start..].split('"').next()?.to_owned())
    };
    let opening = |tag: &str| -> Vec<String> {
        xml.split(&format!("<{tag} "))
            .skip(1)
            .map(|rest| rest.split('>').next().unwrap_or_default().to_owned())
            .collect()
    };
    let cases = opening("testcase");
    assert_eq!(cases.len(), report.cases.len());
    for case in &cases {
        let time: f64 = attribute(case, "time").expect("a time").parse().expect("seconds");
        assert!(time >= 0.0, "{case}");
    }
    let suites = opening("testsuite");
    assert!(suites.len() >= 5, "{xml}");
    for suite in &suites {
        let stamp = attribute(suite, "timestamp").expect("a timestamp");
        assert!(chrono::DateTime::parse_from_rfc3339(&stamp).is_ok(), "{stamp}");
        assert!(attribute(suite, "time").is_some(), "{suite}");
        assert_eq!(attribute(suite, "hostname"), report.hostname, "{suite}");
    }
    assert!(report.hostname.as_deref().is_some_and(|h| !h.is_empty()));
    assert_eq!(xml.matches("<properties>").count(), suites.len());
    for property in [
        "environment",
        "host_class",
        "fingerprint.cpu.vendor",
        "fingerprint.pmu.architectural.version",
    ] {
        assert!(
            xml.contains(&format!("<property name=\"{property}\" value=\"")),
            "no {property}: {xml}"
        );
    }
    let top = opening("testsuites");
    assert_eq!(attribute(&top[0], "tests"), Some(report.cases.len().to_string()));
    assert!(attribute(&top[0], "time").is_some());
}

/// The two schemas every JUnit file must satisfy: Jenkins' xUnit schema
/// (junit-10.xsd, which `cargo xtask junit-schema` fetches from pytest's
/// source distribution; `cargo xtask test` does) and ours, which also
/// requires what the runner promises (`time`, `timestamp`, `hostname`).
fn junit_schemas() -> [PathBuf; 2] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let jenkins = root.join("../../target/junit-schema/junit-10.xsd");
    assert!(
        jenkins.is_file(),
        "{} is missing: run `cargo xtask junit-schema` (`cargo xtask test` does)",
        jenkins.display()
    );
    [jenkins, root.join("tests/junit/junit.xsd")]
}

/// xmllint (Debian's libxml2-utils; `cargo xtask test` installs it) checks
/// `xml` against `schema`; returns what it said on failure.
fn validate(xml: &Path, schema: &Path) -> Result<(), String> {
    let output = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(schema)
        .arg(xml)
        .output()
        .map_err(|e| format!("xmllint: {e} (install Debian's libxml2-utils; `cargo xtask test` does)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            schema.display(),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn validate_junit(xml: &Path) -> Result<(), String> {
    junit_schemas().iter().try_for_each(|schema| validate(xml, schema))
}

/// Every JUnit file the runner writes (a run's, with passes, failures,
/// errors and skips; a matrix's) is valid against Jenkins' own schema and
/// ours, and each schema refuses what it should.
#[test]
fn the_junit_files_are_valid_against_the_schema_ci_readers_use() {
    let dir = tempfile::tempdir().unwrap();
    let nothing_recorded = dir.path().join("expected");
    std::fs::create_dir(&nothing_recorded).unwrap();
    let run_xml = dir.path().join("run.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["--env", "sim:xen-intel", "--quiet", "--expected"])
        .arg(&nothing_recorded)
        .arg("--junit")
        .arg(&run_xml)
        .env_remove("CI")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(101),
        "Xen's model fails with nothing recorded"
    );
    let text = std::fs::read_to_string(&run_xml).unwrap();
    assert!(text.contains("<failure") && text.contains("<skipped"), "{text}");
    validate_junit(&run_xml).unwrap_or_else(|e| panic!("{e}"));

    let out = dir.path().join("matrix");
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["matrix", "run", "matrices/sim.yaml", "--env", "sim:xen-fix-", "--out"])
        .arg(&out)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    validate_junit(&out.join("matrix.junit.xml")).unwrap_or_else(|e| panic!("{e}"));

    let broken = dir.path().join("broken.xml");
    std::fs::write(
        &broken,
        "<testsuites><testsuite tests=\"1\"><testcase/></testsuite></testsuites>",
    )
    .unwrap();
    for schema in junit_schemas() {
        let refused = validate(&broken, &schema).expect_err("a suite and a case without names");
        assert!(refused.contains("'name' is required"), "{refused}");
    }
    // What quick-junit writes on the root and Jenkins' schema refuses.
    let skipped_on_root = dir.path().join("skipped-on-root.xml");
    std::fs::write(
        &skipped_on_root,
        "<testsuites skipped=\"1\"><testsuite name=\"s\" tests=\"1\" failures=\"0\" errors=\"0\">\
         <testcase name=\"c\"><skipped/></testcase></testsuite></testsuites>",
    )
    .unwrap();
    let [jenkins, _] = junit_schemas();
    let refused = validate(&skipped_on_root, &jenkins).expect_err("skipped on <testsuites>");
    assert!(refused.contains("'skipped' is not allowed"), "{refused}");
}
