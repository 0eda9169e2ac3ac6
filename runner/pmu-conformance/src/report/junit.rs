//! The JUnit XML report (`--junit PATH`), one test suite per YAML suite.
//! Unsupported cases are `<skipped>` with their reason; failures carry the
//! signature, or the gate's diff. As Jenkins and GitLab read it: each case
//! has its `time`; each suite its `timestamp`, `time`, `hostname` and
//! `<properties>`: the environment, its host class, and every fingerprint
//! field (`fingerprint.cpu.vendor`, …).

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

pub fn render(report: &Report) -> String {
    let environment = &report.environment.id;
    let mut junit = JUnit::new(format!("pmu-conformance {environment}"));
    let started = report.started_at();
    let mut suites: Vec<TestSuite> = Vec::new();
    for c in &report.cases {
        let status = status(c);
        let name = c.id.split_once('/').map_or(c.id.as_str(), |(_, name)| name);
        let mut case = TestCase::new(name.to_owned(), status);
        case.set_classname(format!("{environment}.{}", c.suite));
        case.set_system_out(format!("{}: {}", c.verdict, c.summary));
        case.set_time(Duration::from_micros(c.duration_us));
        let suite = match suites.iter().position(|s| s.name.as_str() == c.suite) {
            Some(i) => &mut suites[i],
            None => {
                let mut suite = TestSuite::new(c.suite.clone());
                if let Some(t) = started {
                    suite.set_timestamp(t);
                }
                if let Some(host) = &report.hostname {
                    suite.extra.insert("hostname".into(), host.as_str().into());
                }
                for p in properties(report) {
                    suite.add_property(p);
                }
                suites.push(suite);
                suites.last_mut().expect("just pushed")
            }
        };
        let time = suite.time.unwrap_or_default() + Duration::from_micros(c.duration_us);
        suite.set_time(time);
        suite.add_test_case(case);
    }
    let total: u64 = report.cases.iter().map(|c| c.duration_us).sum();
    junit.set_time(Duration::from_micros(total));
    if let Some(t) = started {
        junit.set_timestamp(t);
    }
    junit.add_test_suites(suites);
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit rendering failed: {e} -->"))
}
