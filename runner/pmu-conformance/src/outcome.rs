//! What a check concludes about one case: a verdict, and the evidence.
//!
//! An [`Outcome`] splits its evidence in two. `facts` are the figures that
//! must come out the same every time in one environment (the expected count,
//! the number of runs, a failure's magnitude); they go into recorded
//! expectations. `figures` are everything else that was measured (deviation
//! distributions, skid percentiles); they go into reports, never into
//! expectations, so timing noise can never fail the gate.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// The PMU misbehaved; the outcome carries a [`Signature`].
    Fail,
    /// The case cannot run here; the outcome carries the reason. Never a pass.
    Unsupported,
    /// The harness could not reach a verdict; the outcome carries the message.
    /// Never a pass, and never blamed on the PMU.
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unsupported => "unsupported",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Short, stable names for the ways a PMU fails a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureKind {
    /// More events than the workload retired.
    Overcount,
    /// Fewer events than the workload retired.
    Undercount,
    /// A period boundary was crossed and no notification came.
    PmiLost,
    /// A notification came for no boundary, or twice for one.
    PmiExtra,
    /// A notification came after more events than the skid budget allows.
    PmiLate,
    /// A REFRESH budget ran out without the POLL_HUP notification that says so.
    HupMissing,
    /// An overflow did not set its GLOBAL_STATUS bit.
    StatusNotSet,
    /// Acknowledging an overflow did not clear its GLOBAL_STATUS bit.
    StatusNotCleared,
    /// The LVT performance-counter entry was not masked after a PMI (Intel).
    LvtpcNotMasked,
}

impl SignatureKind {
    pub const ALL: [SignatureKind; 9] = [
        SignatureKind::Overcount,
        SignatureKind::Undercount,
        SignatureKind::PmiLost,
        SignatureKind::PmiExtra,
        SignatureKind::PmiLate,
        SignatureKind::HupMissing,
        SignatureKind::StatusNotSet,
        SignatureKind::StatusNotCleared,
        SignatureKind::LvtpcNotMasked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SignatureKind::Overcount => "overcount",
            SignatureKind::Undercount => "undercount",
            SignatureKind::PmiLost => "pmi-lost",
            SignatureKind::PmiExtra => "pmi-extra",
            SignatureKind::PmiLate => "pmi-late",
            SignatureKind::HupMissing => "hup-missing",
            SignatureKind::StatusNotSet => "status-not-set",
            SignatureKind::StatusNotCleared => "status-not-cleared",
            SignatureKind::LvtpcNotMasked => "lvtpc-not-masked",
        }
    }

    pub fn from_name(name: &str) -> Option<SignatureKind> {
        SignatureKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a case failed: the kind, and its size in words a developer can act on
/// (`+1 per PMI`, `3 of 1000 boundaries`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub kind: SignatureKind,
    pub magnitude: String,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.magnitude)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Why a case is unsupported, or what went wrong for an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The key figure, in one line, for the terminal table.
    pub summary: String,
    /// Figures that are exactly reproducible in one environment.
    pub facts: BTreeMap<String, Value>,
    /// Everything else measured.
    pub figures: BTreeMap<String, Value>,
    /// What a pass proves statistically, e.g. "0 lost in 100000 ⇒ loss rate < 3.0e-5 at 95 %".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proves: Option<String>,
    /// Known bugs whose signature this outcome matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnosis: Vec<String>,
}

impl Outcome {
    fn new(verdict: Verdict, summary: impl Into<String>) -> Outcome {
        Outcome {
            verdict,
            signature: None,
            reason: None,
            summary: summary.into(),
            facts: BTreeMap::new(),
            figures: BTreeMap::new(),
            proves: None,
            diagnosis: Vec::new(),
        }
    }

    pub fn pass(summary: impl Into<String>) -> Outcome {
        Outcome::new(Verdict::Pass, summary)
    }

    pub fn fail(signature: Signature, summary: impl Into<String>) -> Outcome {
        Outcome {
            signature: Some(signature),
            ..Outcome::new(Verdict::Fail, summary)
        }
    }

    pub fn unsupported(reason: impl Into<String>) -> Outcome {
        Outcome {
            reason: Some(reason.into()),
            ..Outcome::new(Verdict::Unsupported, "not run here")
        }
    }

    pub fn error(message: impl Into<String>) -> Outcome {
        Outcome {
            reason: Some(message.into()),
            ..Outcome::new(Verdict::Error, "no verdict")
        }
    }

    pub fn fact(mut self, name: &str, value: impl Into<Value>) -> Outcome {
        self.facts.insert(name.to_owned(), value.into());
        self
    }

    pub fn figure(mut self, name: &str, value: impl Into<Value>) -> Outcome {
        self.figures.insert(name.to_owned(), value.into());
        self
    }

    pub fn proves(mut self, statement: impl Into<String>) -> Outcome {
        self.proves = Some(statement.into());
        self
    }

    /// The signature, or the reason, for one cell of a table.
    pub fn explanation(&self) -> String {
        match (&self.signature, &self.reason) {
            (Some(s), _) => s.to_string(),
            (None, Some(r)) => r.clone(),
            (None, None) => self.proves.clone().unwrap_or_default(),
        }
    }
}
