//! The JUnit XML report (`--junit PATH`), one test suite per YAML suite.
//! Unsupported cases are `<skipped>` with their reason; failures carry the
//! signature, or the gate's diff. As Jenkins and GitLab read it: each case
//! has its `time`; each suite its `timestamp`, `time`, `hostname` and
//! `<properties>`: the environment, its host class, and every fingerprint
//! field (`fingerprint.cpu.vendor`, …). The document is valid against
//! Jenkins' xUnit schema, junit-10.xsd (see [`to_xml`]).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report as JUnit, TestCase, TestCaseStatus, TestSuite};
use serde_json::Value;

use super::{CaseReport, Report};
use crate::outcome::Verdict;

/// A case's JUnit status: passed, skipped with its reason, or a failure (an
/// error for an `error` verdict) with its signature and the gate's words.
pub fn status(c: &CaseReport) -> TestCaseStatus {
    match (c.gate.passed, &c.gate.message) {
        (true, None) => TestCaseStatus::success(),
        (true, Some(reason)) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(reason.as_str());
            s
        }
        (false, message) => {
            let kind = if c.verdict == Verdict::Error {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(c.explanation());
            s.set_description(message.clone().unwrap_or_default());
            s
        }
    }
}

/// `value`'s scalar leaves as `prefix.path` = text, arrays joined with commas.
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                leaves(&format!("{prefix}.{key}"), v, out);
            }
        }
        Value::Array(items) => {
            let text: Vec<String> = items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            out.push((prefix.to_owned(), text.join(",")));
        }
        Value::Null => {}
        Value::String(text) => out.push((prefix.to_owned(), text.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// The properties every suite carries: where it ran, and the fingerprint.
fn properties(report: &Report) -> Vec<Property> {
    let e = &report.environment;
    let mut all = vec![
        ("environment".to_owned(), e.id.clone()),
        ("host_class".to_owned(), e.host_class.clone()),
        ("probe".to_owned(), e.probe.clone()),
        ("tool.version".to_owned(), report.tool.version.clone()),
    ];
    if let Some(fingerprint) = &e.fingerprint
        && let Ok(value) = serde_json::to_value(fingerprint)
    {
        leaves("fingerprint", &value, &mut all);
    }
    all.into_iter()
        .map(|(name, value)| Property::new(name, value))
        .collect()
}

/// A test suite named `name` for `report`'s cases: its `timestamp`,
/// `hostname` and `<properties>`; [`add_case`] adds the cases and their time.
pub fn suite(name: impl Into<String>, report: &Report) -> TestSuite {
    let mut suite = TestSuite::new(name.into());
    if let Some(t) = report.started_at() {
        suite.set_timestamp(t);
    }
    if let Some(host) = &report.hostname {
        suite.extra.insert("hostname".into(), host.as_str().into());
    }
    for p in properties(report) {
        suite.add_property(p);
    }
    suite
}

/// `c` as a test case named `name` of class `classname`, its time added to the suite's.
pub fn add_case(suite: &mut TestSuite, c: &CaseReport, name: &str, classname: String) {
    let mut case = TestCase::new(name.to_owned(), status(c));
    case.set_classname(classname);
    case.set_system_out(format!("{}: {}", c.verdict, c.summary));
    let time = Duration::from_micros(c.duration_us);
    case.set_time(time);
    suite.set_time(suite.time.unwrap_or_default() + time);
    suite.add_test_case(case);
}

/// The document, as Jenkins' xUnit schema (junit-10.xsd) takes it: that
/// schema gives `<testsuites>` only `name`, `time`, `tests`, `failures` and
/// `errors`, and quick-junit always writes `skipped` there too, so the root
/// tag's other attributes are dropped (each suite keeps its own counts and
/// timestamp).
pub fn to_xml(mut junit: JUnit) -> String {
    junit.set_time(junit.test_suites.iter().filter_map(|s| s.time).sum());
    let xml = match junit.to_string() {
        Ok(xml) => xml,
        Err(e) => return format!("<!-- JUnit rendering failed: {e} -->"),
    };
    let Some(start) = xml.find("<testsuites") else {
        return xml;
    };
    let end = start + xml[start..].find('>').unwrap_or(0);
    let root = &xml[start..end];
    let mut kept = String::from("<testsuites");
    let mut rest = &root["<testsuites".len()..];
    while let Some((name, after)) = rest.trim_start().split_once("=\"") {
        let Some((value, tail)) = after.split_once('"') else {
            break;
        };
        if ROOT_ATTRIBUTES.contains(&name) {
            kept.push_str(&format!(" {name}=\"{value}\""));
        }
        rest = tail;
    }
    format!("{}{kept}{}", &xml[..start], &xml[end..])
}

/// What junit-10.xsd allows on `<testsuites>`.
const ROOT_ATTRIBUTES: [&str; 5] = ["name", "time", "tests", "failures", "errors"];

pub fn render(report: &Report) -> String {
    let environment = &report.environment.id;
    let mut junit = JUnit::new(format!("pmu-conformance {environment}"));
    let mut suites: Vec<TestSuite> = Vec::new();
    for c in &report.cases {
        let name = c.id.split_once('/').map_or(c.id.as_str(), |(_, name)| name);
        let i = match suites.iter().position(|s| s.name.as_str() == c.suite) {
            Some(i) => i,
            None => {
                suites.push(suite(c.suite.clone(), report));
                suites.len() - 1
            }
        };
        add_case(&mut suites[i], c, name, format!("{environment}.{}", c.suite));
    }
    junit.add_test_suites(suites);
    to_xml(junit)
}
