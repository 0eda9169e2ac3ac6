//! The JUnit XML report (`--junit PATH`), one test suite per YAML suite.
//! Unsupported cases are `<skipped>` with their reason; failures carry the
//! signature, or the gate's diff.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::expectation::TrialResult;
use crate::harness::Record;
use crate::outcome::Verdict;

pub fn render(records: &[Record], environment: &str) -> String {
    let mut report = Report::new(format!("pmu-conformance {environment}"));
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in records {
        let status = match &r.trial {
            TrialResult::Passed => TestCaseStatus::success(),
            TrialResult::Skipped(reason) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(reason.as_str());
                s
            }
            TrialResult::Failed(message) => {
                let kind = if r.outcome.verdict == Verdict::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(r.outcome.explanation());
                s.set_description(message.as_str());
                s
            }
        };
        let mut case = TestCase::new(r.case.id.name.clone(), status);
        case.set_classname(format!("{environment}.{}", r.case.id.suite));
        case.set_system_out(format!("{}: {}", r.outcome.verdict, r.outcome.summary));
        match suites.iter_mut().find(|s| s.name.as_str() == r.case.id.suite) {
            Some(suite) => {
                suite.add_test_case(case);
            }
            None => {
                let mut suite = TestSuite::new(r.case.id.suite.clone());
                suite.add_test_case(case);
                suites.push(suite);
            }
        }
    }
    report.add_test_suites(suites);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit rendering failed: {e} -->"))
}
