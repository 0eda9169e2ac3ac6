//! The executor of an environment whose cases ran elsewhere, all at once: a
//! Linux guest's runner, or a remote machine's. It holds the typed report
//! that came back, under that machine's fingerprint, and hands each case's
//! outcome to the harness, which gates it here against
//! `expected/<environment>/<that machine's host class>/`.

use std::collections::HashMap;

use crate::case::Case;
use crate::event_table::ResolvedEvent;
use crate::executor::{Executor, StartError};
use crate::fingerprint::Fingerprint;
use crate::outcome::{Outcome, Reason, ReasonCode, Verdict};
use crate::report::{CaseReport, Report};

pub struct ReportedExecutor {
    outcomes: HashMap<String, Outcome>,
    fingerprint: Fingerprint,
    description: String,
}

impl ReportedExecutor {
    /// Every case as the runner elsewhere (`who`: "the Linux guest", "the
    /// remote") reported it.
    pub fn new(report: Report, who: &str, description: String) -> Result<ReportedExecutor, StartError> {
        let fingerprint = report
            .environment
            .fingerprint
            .clone()
            .ok_or_else(|| StartError::Unavailable(format!("{who}'s report carries no fingerprint")))?;
        let outcomes = report.cases.iter().map(|c| (c.id.clone(), outcome(c))).collect();
        Ok(ReportedExecutor {
            outcomes,
            fingerprint,
            description,
        })
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

impl Executor for ReportedExecutor {
    fn describe(&self) -> String {
        self.description.clone()
    }

    /// A case the other machine could not run is unsupported here, for its reason.
    fn preflight(&self, case: &Case) -> Result<Option<ResolvedEvent>, Reason> {
        match self.outcomes.get(&case.id.to_string()) {
            Some(o) if o.verdict == Verdict::Unsupported => Err(o
                .reason
                .clone()
                .unwrap_or_else(|| Reason::new(ReasonCode::Guest, "the machine that ran it gave no reason"))),
            _ => Ok(None),
        }
    }

    fn run(&self, case: &Case, _event: Option<&ResolvedEvent>) -> Outcome {
        self.outcomes.get(&case.id.to_string()).cloned().unwrap_or_else(|| {
            Outcome::error(
                ReasonCode::Guest,
                "the report that came back has no outcome for this case",
            )
        })
    }
}

/// A case as the other machine reported it.
fn outcome(c: &CaseReport) -> Outcome {
    Outcome {
        verdict: c.verdict,
        signature: c.signature.clone(),
        reason: c.reason.clone(),
        summary: c.summary.clone(),
        facts: c.facts.clone(),
        figures: c.figures.clone(),
        proves: c.proves.clone(),
        diagnosis: Vec::new(),
    }
}
