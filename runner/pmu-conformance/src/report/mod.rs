//! Reports of a finished run: one typed [`Report`], built once from the
//! [`Record`]s a run left behind, and its renderings: the terminal table,
//! JSON, JUnit XML and KTAP.
//!
//! Nothing is formatted while trials run. The [`Report`] is also what crosses
//! machines: it is versioned ([`SCHEMA`]), serialises to JSON and reads back
//! ([`json::read`]), so a report written in a guest or on a remote machine
//! renders here exactly as a local one does (`pmu-conformance show`).

pub mod json;
pub mod junit;
pub mod ktap;
pub mod table;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::environment::Environment;
use crate::expectation::{Gate, TrialResult};
use crate::fingerprint::Fingerprint;
use crate::harness::Record;
use crate::outcome::{Reason, Signature, Verdict};

/// The report's schema id; a reader refuses any other.
pub const SCHEMA: &str = "pmu-conformance/report/v2";

/// One run in one environment, as README.md's "JSON report" documents it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema: String,
    pub tool: Tool,
    pub environment: EnvironmentReport,
    pub summary: Tally,
    /// When the run started, RFC 3339 in UTC (absent from older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// The host name of the machine that ran the suites (absent from older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Why the run ended before its last case, for a partial report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    pub cases: Vec<CaseReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentReport {
    pub id: String,
    pub about: String,
    /// What executed the cases: `linux perf_event_open`, `reference model: …`.
    pub probe: String,
    /// The host class the gate compared with (the fingerprint's derived id).
    pub host_class: String,
    /// What the gate compared with, as the run's header said it.
    pub expectations: String,
    pub fingerprint: Option<Fingerprint>,
}

/// Counts of verdicts and of trials the gate failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    pub pass: usize,
    pub fail: usize,
    pub unsupported: usize,
    pub error: usize,
    /// Cases whose trial failed: outcomes that differ from the recorded
    /// expectation, that fail with nothing recorded, or that could not be recorded.
    pub gate_failures: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseReport {
    /// `suite/case`.
    pub id: String,
    pub suite: String,
    pub about: String,
    /// `file:line:column` of the case's id.
    pub location: String,
    pub check: String,
    pub event: String,
    /// The event as this environment encodes it, where it was resolved.
    pub encoding: Option<String>,
    pub workload: WorkloadReport,
    pub period: Option<u64>,
    pub runs: u32,
    pub budget: Option<BudgetReport>,
    pub catches: Vec<String>,
    pub verdict: Verdict,
    pub signature: Option<Signature>,
    pub reason: Option<Reason>,
    pub summary: String,
    pub facts: BTreeMap<String, Value>,
    pub figures: BTreeMap<String, Value>,
    pub proves: Option<String>,
    pub diagnosis: Vec<String>,
    pub gate: GateReport,
    /// The case's wall time in microseconds, from its trial's start to its
    /// outcome (0 for one skipped before it ran, and in older reports).
    #[serde(default)]
    pub duration_us: u64,
}

/// `{kind, <size parameter>: N}`, as a case writes its workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadReport {
    pub kind: String,
    #[serde(flatten)]
    pub size: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetReport {
    pub catch: f64,
    pub probability: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateReport {
    /// `matches`, `unrecorded`, `differs`, `recorded` or `unwritable`.
    pub status: String,
    /// Whether the case's trial passed (or was skipped, for an unsupported case).
    pub passed: bool,
    /// The unified diff, where the outcome differs from what is recorded.
    pub diff: Option<String>,
    /// Why the trial failed, or why it was skipped.
    pub message: Option<String>,
}

impl Report {
    /// The report of a finished (or interrupted) run.
    pub fn new(
        records: &[Record],
        environment: &Environment,
        probe: &str,
        host_class: &str,
        expectations: &str,
        fingerprint: Option<&Fingerprint>,
    ) -> Report {
        let cases: Vec<CaseReport> = records.iter().map(CaseReport::of).collect();
        Report {
            schema: SCHEMA.to_owned(),
            tool: Tool {
                name: "pmu-conformance".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            environment: EnvironmentReport {
                id: environment.id.to_string(),
                about: environment.about.clone(),
                probe: probe.to_owned(),
                host_class: host_class.to_owned(),
                expectations: expectations.to_owned(),
                fingerprint: fingerprint.cloned(),
            },
            summary: Tally::of(&cases),
            started: None,
            hostname: None,
            interrupted: None,
            cases,
        }
    }

    /// The report with when its run started and on which host.
    pub fn at(mut self, started: std::time::SystemTime, hostname: Option<String>) -> Report {
        let since = started.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.started = chrono::DateTime::from_timestamp(since.as_secs() as i64, since.subsec_nanos())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        self.hostname = hostname;
        self
    }

    /// When the run started, as JUnit's timestamp.
    pub fn started_at(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        self.started
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    }
}

/// This machine's host name, where it has one.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

impl CaseReport {
    fn of(r: &Record) -> CaseReport {
        let c = &r.case;
        let o = &r.outcome;
        let (passed, message) = match &r.trial {
            TrialResult::Passed => (true, None),
            TrialResult::Skipped(reason) => (true, Some(reason.clone())),
            TrialResult::Failed(message) => (false, Some(message.clone())),
        };
        CaseReport {
            id: c.id.to_string(),
            suite: c.id.suite.clone(),
            about: c.about.clone(),
            location: c.location.clone(),
            check: c.check.name().to_owned(),
            event: c.event.to_string(),
            encoding: r.event.as_ref().map(|e| e.encoding.to_string()),
            workload: WorkloadReport {
                kind: c.workload.kind.name().to_owned(),
                size: BTreeMap::from([(c.workload.kind.size_parameter().to_owned(), c.workload.size)]),
            },
            period: c.period,
            runs: c.runs,
            budget: c.budget.map(|b| BudgetReport {
                catch: b.rate,
                probability: b.probability,
            }),
            catches: c.catches.clone(),
            verdict: o.verdict,
            signature: o.signature.clone(),
            reason: o.reason.clone(),
            summary: o.summary.clone(),
            facts: o.facts.clone(),
            figures: o.figures.clone(),
            proves: o.proves.clone(),
            diagnosis: o.diagnosis.clone(),
            gate: GateReport {
                status: r.gate.name().to_owned(),
                passed,
                diff: match &r.gate {
                    Gate::Differs { diff } => Some(diff.clone()),
                    _ => None,
                },
                message,
            },
            duration_us: u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// The signature, or the reason, or what a pass proves, for one cell of a table.
    pub fn explanation(&self) -> String {
        match (&self.signature, &self.reason) {
            (Some(s), _) => s.to_string(),
            (None, Some(r)) => r.message.clone(),
            (None, None) => self.proves.clone().unwrap_or_default(),
        }
    }
}

impl Tally {
    pub fn of(cases: &[CaseReport]) -> Tally {
        let mut t = Tally::default();
        for c in cases {
            match c.verdict {
                Verdict::Pass => t.pass += 1,
                Verdict::Fail => t.fail += 1,
                Verdict::Unsupported => t.unsupported += 1,
                Verdict::Error => t.error += 1,
            }
            if !c.gate.passed {
                t.gate_failures += 1;
            }
        }
        t
    }
}

/// Why a report cannot go where it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("cannot write a report to {}: it is a folder", .0.display())]
    IsAFolder(PathBuf),
    #[error("cannot write a report to {}: the folder {} does not exist", .0.display(), .1.display())]
    NoFolder(PathBuf, PathBuf),
    #[error("cannot write {}: {error}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
}

/// Checks, before any case runs, that a report can be written at `path`:
/// it is not a folder, and the folder it goes in exists.
pub fn check_destination(path: &Path) -> Result<(), DestinationError> {
    if path.is_dir() {
        return Err(DestinationError::IsAFolder(path.to_path_buf()));
    }
    let folder = folder_of(path);
    if !folder.is_dir() {
        return Err(DestinationError::NoFolder(path.to_path_buf(), folder.to_path_buf()));
    }
    Ok(())
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes what `render` writes to `path` through a temporary file in the
/// same folder and a rename, so a run killed while writing leaves the
/// previous report whole.
pub fn write_atomically(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), DestinationError> {
    let failed = |error: io::Error| DestinationError::Write {
        path: path.to_path_buf(),
        error,
    };
    let mut temporary = tempfile::NamedTempFile::new_in(folder_of(path)).map_err(failed)?;
    render(&mut temporary)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(failed)?;
    temporary.persist(path).map(drop).map_err(|e| failed(e.error))
}
