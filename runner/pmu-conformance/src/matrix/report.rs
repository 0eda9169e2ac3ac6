//! The matrix report: each environment's typed [`Report`] and how its run
//! ended, in one versioned document ([`SCHEMA`]) that serialises to JSON
//! and reads back, and its JUnit rendering, a test suite per environment.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use super::Planned;
use super::child::ChildRun;
use crate::report::{Report, Tally, Tool};
use crate::supervised::End as ChildEnd;

/// The matrix report's schema id; a reader refuses any other.
pub const SCHEMA: &str = "pmu-conformance/matrix/v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixReport {
    pub schema: String,
    pub tool: Tool,
    /// The matrix file, as given.
    pub file: String,
    /// How many environments ran at once.
    pub jobs: usize,
    /// From the first child's start to the last one's end.
    pub wall_ms: u64,
    /// The environments' own times, added up: over `wall_ms`, the speed-up.
    pub sum_ms: u64,
    /// Where each environment's output, report and consoles are.
    pub artifacts: String,
    pub environments: Vec<EnvironmentRun>,
}

/// How one environment's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Every case as expected (the child exited 0).
    Ok,
    /// Some case not as expected (101).
    GateFailed,
    /// The environment could not be reached: no QEMU, a guest that does not
    /// boot, a remote that does not answer (1).
    Unreachable,
    /// The child refused its input (2).
    BadInput,
    /// Its deadline passed and it was killed.
    Deadline,
    /// It was interrupted (SIGINT, SIGTERM), or never started because the matrix was.
    Interrupted,
    /// It ended any other way: a signal, an unknown status, a failed start.
    Crashed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::GateFailed => "gate failed",
            RunStatus::Unreachable => "unreachable",
            RunStatus::BadInput => "bad input",
            RunStatus::Deadline => "past its deadline",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Crashed => "crashed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRun {
    pub id: String,
    /// Its kind, as matrices write `probe:`.
    pub kind: String,
    pub about: String,
    pub status: RunStatus,
    /// The child's exit status, where it exited.
    pub exit_code: Option<i32>,
    pub wall_ms: u64,
    pub deadline_s: u64,
    /// The cases it selects, as `suite/case`.
    pub cases: Vec<String>,
    /// Its artifacts folder.
    pub artifacts: String,
    /// Why it ended as it did, where it did not end with a report.
    pub message: Option<String>,
    /// Its own report, where it wrote one.
    pub report: Option<Report>,
}

impl EnvironmentRun {
    /// A run that ended (in any way), from its artifacts folder.
    pub fn of(p: &Planned, dir: &Path, done: ChildRun) -> EnvironmentRun {
        let report_path = dir.join("report.json");
        let report = report_path
            .is_file()
            .then(|| crate::report::json::read(&report_path))
            .transpose();
        let (report, report_error) = match report {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let status = match done.end {
            ChildEnd::Exited(0) => RunStatus::Ok,
            ChildEnd::Exited(101) => RunStatus::GateFailed,
            ChildEnd::Exited(1) => RunStatus::Unreachable,
            ChildEnd::Exited(2) => RunStatus::BadInput,
            ChildEnd::Exited(130 | 143) => RunStatus::Interrupted,
            ChildEnd::Deadline => RunStatus::Deadline,
            ChildEnd::Exited(_) | ChildEnd::Signal(_) => RunStatus::Crashed,
        };
        // A child that exited 0 without a report is not a pass.
        let status = if status == RunStatus::Ok && report.is_none() {
            RunStatus::Crashed
        } else {
            status
        };
        let last_words = done
            .stderr_tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::trim)
            .map(str::to_owned);
        let message = match (status, done.end) {
            (RunStatus::Ok | RunStatus::GateFailed, _) => report_error,
            (RunStatus::Deadline, _) => Some(format!(
                "killed at its deadline of {} s{}",
                p.deadline.as_secs(),
                last_words.map_or(String::new(), |w| format!("; it last said: {w}"))
            )),
            (_, ChildEnd::Signal(s)) => Some(format!("ended by signal {s}")),
            _ => Some(
                stderr_message(&done.stderr_tail)
                    .or(report_error)
                    .unwrap_or_else(|| "it gave no reason".to_owned()),
            ),
        };
        EnvironmentRun {
            id: p.environment.id.to_string(),
            kind: p.environment.target.kind().to_owned(),
            about: p.environment.about.clone(),
            status,
            exit_code: match done.end {
                ChildEnd::Exited(code) => Some(code),
                _ => None,
            },
            wall_ms: done.wall.as_millis() as u64,
            deadline_s: p.deadline.as_secs(),
            cases: p.cases.clone(),
            artifacts: dir.display().to_string(),
            message,
            report,
        }
    }

    /// An environment whose runner never started, with why.
    pub fn not_started(p: &Planned, status: RunStatus, why: &str) -> EnvironmentRun {
        EnvironmentRun {
            id: p.environment.id.to_string(),
            kind: p.environment.target.kind().to_owned(),
            about: p.environment.about.clone(),
            status,
            exit_code: None,
            wall_ms: 0,
            deadline_s: p.deadline.as_secs(),
            cases: p.cases.clone(),
            artifacts: String::new(),
            message: Some(why.to_owned()),
            report: None,
        }
    }

    /// Its verdict counts, where it reported.
    pub fn tally(&self) -> Option<Tally> {
        self.report.as_ref().map(|r| r.summary)
    }

    /// One line: id, status, counts, time, and why.
    pub fn line(&self) -> String {
        let counts = self.tally().map_or(String::new(), |t| {
            format!(
                ": {} pass, {} fail, {} unsupported, {} error; {} off expectation",
                t.pass, t.fail, t.unsupported, t.error, t.gate_failures
            )
        });
        let why = self.message.as_ref().map_or(String::new(), |m| format!(" — {m}"));
        format!(
            "{} {}{counts} ({:.1} s){why}",
            self.id,
            self.status.name(),
            self.wall_ms as f64 / 1000.0
        )
    }
}

/// The error line a runner prints last (`error: …`), else its last line.
fn stderr_message(tail: &str) -> Option<String> {
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rposition(|l| l.starts_with("error"))
        .map(|i| lines[i..].join("\n"))
        .or_else(|| lines.last().map(|l| (*l).to_owned()))
}

impl MatrixReport {
    pub fn new(
        file: &Path,
        jobs: usize,
        wall: Duration,
        environments: Vec<EnvironmentRun>,
        out: &Path,
    ) -> MatrixReport {
        MatrixReport {
            schema: SCHEMA.to_owned(),
            tool: Tool {
                name: "pmu-conformance".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            file: file.display().to_string(),
            jobs,
            wall_ms: wall.as_millis() as u64,
            sum_ms: environments.iter().map(|e| e.wall_ms).sum(),
            artifacts: out.display().to_string(),
            environments,
        }
    }

    /// `3 of 4 environments as expected in 5.2 s (their own times add up to 9.8 s: 1.9× with -j 2)`.
    pub fn summary_line(&self) -> String {
        let ok = self
            .environments
            .iter()
            .filter(|e| e.status == super::RunStatus::Ok)
            .count();
        let slowest = self.environments.iter().map(|e| e.wall_ms).max().unwrap_or(0);
        format!(
            "matrix: {ok} of {} environments as expected, in {:.1} s with -j {} (their own times add up to {:.1} s, \
             the slowest took {:.1} s)",
            self.environments.len(),
            self.wall_ms as f64 / 1000.0,
            self.jobs,
            self.sum_ms as f64 / 1000.0,
            slowest as f64 / 1000.0
        )
    }
}

/// Writes `report` as pretty JSON with a final newline.
pub fn write_json(report: &MatrixReport, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    out.write_all(b"\n")
}

/// Reads a matrix report back, refusing any other schema; `shown` names it in errors.
pub fn parse(shown: &str, text: &str) -> Result<MatrixReport, String> {
    #[derive(Deserialize)]
    struct Versioned {
        schema: String,
    }
    let versioned: Versioned =
        serde_json::from_str(text).map_err(|e| format!("{shown}: not a pmu-conformance matrix report: {e}"))?;
    if versioned.schema != SCHEMA {
        return Err(format!(
            "{shown}: its schema is `{}`; this pmu-conformance reads `{SCHEMA}`",
            versioned.schema
        ));
    }
    serde_json::from_str(text).map_err(|e| format!("{shown}:{}:{}: {e}", e.line(), e.column()))
}

/// JUnit: one test suite per environment (with its report's timestamp,
/// host, fingerprint and times, as a run's suites have), one test case per
/// case it selects. An environment that left no report has each of its cases as
/// an error carrying why.
pub fn render_junit(report: &MatrixReport) -> String {
    use crate::report::junit;
    let mut junit = JUnit::new(format!("pmu-conformance matrix {}", report.file));
    for e in &report.environments {
        let suite = match &e.report {
            Some(r) => {
                let mut suite = junit::suite(e.id.clone(), r);
                for c in &r.cases {
                    junit::add_case(&mut suite, c, &c.id, e.id.clone());
                }
                suite
            }
            None => {
                let mut suite = TestSuite::new(e.id.clone());
                let why = format!("{}: {}", e.status.name(), e.message.clone().unwrap_or_default());
                for id in &e.cases {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(why.as_str());
                    let mut case = TestCase::new(id.clone(), s);
                    case.set_classname(e.id.clone());
                    suite.add_test_case(case);
                }
                suite
            }
        };
        junit.add_test_suite(suite);
    }
    junit::to_xml(junit)
}
