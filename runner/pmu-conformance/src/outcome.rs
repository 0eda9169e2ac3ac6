//! What a check concludes about one case: a verdict, and the evidence.
//!
//! An [`Outcome`] splits its evidence in two. `facts` are the figures that
//! must come out the same every time in one environment (the expected count,
//! the number of runs, a failure's magnitude); they go into recorded
//! expectations. `figures` are everything else that was measured (deviation
//! distributions, skid percentiles); they go into reports, never into
//! expectations, so timing noise can never fail the gate.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

pub use pmu_kernel_checks::record::{Magnitude, Reason, ReasonCode, Signature, SignatureKind, Unit, Verdict};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Why a case is unsupported, or what went wrong for an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
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

    pub fn unsupported(reason: Reason) -> Outcome {
        Outcome {
            reason: Some(reason),
            ..Outcome::new(Verdict::Unsupported, "not run here")
        }
    }

    pub fn error(code: ReasonCode, message: impl Into<String>) -> Outcome {
        Outcome {
            reason: Some(Reason::new(code, message)),
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

    pub fn proves(mut self, statement: Option<String>) -> Outcome {
        self.proves = statement;
        self
    }

    /// The signature, or the reason, for one cell of a table.
    pub fn explanation(&self) -> String {
        match (&self.signature, &self.reason) {
            (Some(s), _) => s.to_string(),
            (None, Some(r)) => r.message.clone(),
            (None, None) => self.proves.clone().unwrap_or_default(),
        }
    }
}
