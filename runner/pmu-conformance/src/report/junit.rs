//! The JUnit XML report (`--junit PATH`), one test suite per YAML suite.
//! Unsupported cases are `<skipped>` with their reason; failures carry the
//! signature, or the gate's diff.

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

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

pub fn render(report: &Report) -> String {
    let environment = &report.environment.id;
    let mut junit = JUnit::new(format!("pmu-conformance {environment}"));
    let mut suites: Vec<TestSuite> = Vec::new();
    for c in &report.cases {
        let status = status(c);
        let name = c.id.split_once('/').map_or(c.id.as_str(), |(_, name)| name);
        let mut case = TestCase::new(name.to_owned(), status);
        case.set_classname(format!("{environment}.{}", c.suite));
        case.set_system_out(format!("{}: {}", c.verdict, c.summary));
        match suites.iter_mut().find(|s| s.name.as_str() == c.suite) {
            Some(suite) => {
                suite.add_test_case(case);
            }
            None => {
                let mut suite = TestSuite::new(c.suite.clone());
                suite.add_test_case(case);
                suites.push(suite);
            }
        }
    }
    junit.add_test_suites(suites);
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit rendering failed: {e} -->"))
}
