//! Recorded expectations: the stable part of each outcome, per environment
//! and host class, as snapshot files under
//! `expected/<environment>/<host class>/<suite>/<case>.snap`.
//!
//! The *host class* is the fingerprint's derived id of the machine the cases
//! execute on: this machine for a linux environment, the guest for a QEMU
//! one (`kvm-intel-rocket-lake-nopmu`), the model for a sim one. What a
//! guest sees depends on the host it runs on, so a set recorded on one host
//! class is never compared with a run on another: a class with nothing
//! recorded runs strict, and the run's header says so.
//!
//! The gate compares a fresh outcome's [`Expectation`] with the recorded one:
//!
//! - equal: ok, even when what is recorded is a known failure;
//! - different: the trial fails and shows a diff;
//! - nothing recorded: strict mode, so the case must pass on its own
//!   (unsupported is skipped, never passed).
//!
//! Only an explicit bless writes here: `--accept` writes snapshots in place,
//! and `INSTA_UPDATE=new` (which `cargo insta test` sets) leaves `.snap.new`
//! files for `cargo insta review`. A plain run, and every CI run, writes
//! nothing. [`location`] says where expectations live; [`store`] reads and
//! writes their files.

pub mod location;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::location::{Location, LocationError};
pub use self::store::{Recorded, Store};
use crate::outcome::{Magnitude, Outcome, ReasonCode, SignatureKind, Verdict};

/// The part of an outcome that must be the same every time in one
/// environment: codes and numbers, never sentences, so rewording a message
/// changes no expectation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ExpectedSignature>,
    /// Why unsupported, or why an error: the reason's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, Value>,
}

/// A failure as expectations hold it: its kind and magnitude, not its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSignature {
    pub kind: SignatureKind,
    pub magnitude: Magnitude,
}

impl From<&Outcome> for Expectation {
    fn from(o: &Outcome) -> Expectation {
        Expectation {
            verdict: o.verdict,
            signature: o.signature.as_ref().map(|s| ExpectedSignature {
                kind: s.kind,
                magnitude: s.magnitude,
            }),
            reason: o.reason.as_ref().map(|r| r.code),
            facts: o.facts.clone(),
        }
    }
}

impl Expectation {
    fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("an expectation always serialises")
    }
}

/// What the store writes, decided once per process (see [`UpdateMode::from_env`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Compare only; write nothing.
    Compare,
    /// Write `.snap.new` files for `cargo insta review` where outcomes differ.
    Pending,
    /// Record every outcome as the expectation (`--accept`).
    Accept,
}

/// `--accept` or `INSTA_UPDATE` asked to record on CI.
#[derive(Debug, thiserror::Error)]
#[error("CI never records expectations: unset CI, or run without --accept / INSTA_UPDATE")]
pub struct RecordingOnCi;

impl UpdateMode {
    /// The mode `--accept` and `INSTA_UPDATE` ask for (`always`/`force`
    /// accept, `new`/`unseen` leave pending snapshots), refused where `CI`
    /// is set to anything but empty, `0` or `false`.
    pub fn from_env(accept: bool) -> Result<UpdateMode, RecordingOnCi> {
        let on_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        let requested = std::env::var("INSTA_UPDATE").unwrap_or_default();
        let mode = match (accept, requested.as_str()) {
            (true, _) | (false, "always" | "force") => UpdateMode::Accept,
            (false, "new" | "unseen") => UpdateMode::Pending,
            _ => UpdateMode::Compare,
        };
        if mode != UpdateMode::Compare && on_ci {
            return Err(RecordingOnCi);
        }
        Ok(mode)
    }
}

/// How an outcome compares with what is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Equal to the recorded expectation (which may record a known failure).
    Matches,
    /// Nothing is recorded for this case here: the outcome stands on its own.
    Unrecorded,
    /// Differs from the recorded expectation.
    Differs { diff: String },
    /// Recorded just now, as this environment's expectation.
    Recorded,
    /// Recording was asked for, and the snapshot could not be written.
    Unwritable { message: String },
}

/// What a trial reports, decided once per case from its outcome and gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrialResult {
    Passed,
    /// Not a pass: the case could not run here, for this reason.
    Skipped(String),
    /// The trial failed, with everything its failure message says.
    Failed(String),
}

impl Gate {
    pub fn name(&self) -> &'static str {
        match self {
            Gate::Matches => "matches",
            Gate::Unrecorded => "unrecorded",
            Gate::Differs { .. } => "differs",
            Gate::Recorded => "recorded",
            Gate::Unwritable { .. } => "unwritable",
        }
    }

    /// What the trial reports for `outcome` under this gate; `bless` is the
    /// command that would record it.
    pub fn trial_result(&self, outcome: &Outcome, bless: &str) -> TrialResult {
        let diagnosis: String = outcome.diagnosis.iter().map(|d| format!("diagnosis: {d}\n")).collect();
        let skipped_or_passed = || match outcome.verdict {
            Verdict::Unsupported => TrialResult::Skipped(
                outcome
                    .reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!("{} ({})", r.message, r.code)),
            ),
            _ => TrialResult::Passed,
        };
        match (self, outcome.verdict) {
            (Gate::Differs { diff }, _) => TrialResult::Failed(format!(
                "the outcome differs from the recorded expectation:\n{diff}\n{diagnosis}\
                 to record this outcome as expected: {bless}"
            )),
            (Gate::Unwritable { message }, _) => TrialResult::Failed(format!(
                "{}: {}\n{diagnosis}the expectation could not be recorded: {message}",
                outcome.verdict,
                outcome.explanation()
            )),
            (Gate::Unrecorded, Verdict::Fail | Verdict::Error) => TrialResult::Failed(format!(
                "{}: {}\n{diagnosis}nothing is recorded for this environment and host class, so the case must \
                 pass; if this is a known failure here, record it: {bless}",
                outcome.verdict,
                outcome.explanation()
            )),
            (Gate::Unrecorded | Gate::Matches | Gate::Recorded, _) => skipped_or_passed(),
        }
    }
}

fn diff(recorded: &str, observed: &str) -> String {
    similar::TextDiff::from_lines(recorded, observed)
        .unified_diff()
        .context_radius(8)
        .header("recorded", "observed")
        .to_string()
}
