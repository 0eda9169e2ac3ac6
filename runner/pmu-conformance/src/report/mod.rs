//! Reports of a finished run: a terminal table, JSON, and JUnit XML.
//!
//! Reporters only read the [`Record`]s a run left behind; nothing is
//! formatted while trials run.

pub mod json;
pub mod junit;
pub mod table;

use crate::harness::Record;
use crate::outcome::Verdict;

/// Counts of verdicts and of trials the gate failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub pass: usize,
    pub fail: usize,
    pub unsupported: usize,
    pub error: usize,
    /// Cases whose trial failed: outcomes that differ from the recorded
    /// expectation, or that fail with nothing recorded.
    pub gate_failures: usize,
}

impl Tally {
    pub fn of(records: &[Record]) -> Tally {
        let mut t = Tally::default();
        for r in records {
            match r.outcome.verdict {
                Verdict::Pass => t.pass += 1,
                Verdict::Fail => t.fail += 1,
                Verdict::Unsupported => t.unsupported += 1,
                Verdict::Error => t.error += 1,
            }
            if gate_failed(r) {
                t.gate_failures += 1;
            }
        }
        t
    }
}

/// Whether this record's trial failed.
pub fn gate_failed(r: &Record) -> bool {
    r.gate.trial_result(&r.outcome, "").is_err()
}
