//! Kernel cases between the host and the probe kernel: a [`Case`] becomes
//! the request the kernel's command line carries, and the frames the kernel
//! prints become [`Outcome`]s.
//!
//! Reading a transcript is where a corrupted console must not become a
//! misparsed pass: only a frame whose length and CRC check out is a record,
//! and a case without exactly one record is an `error` that says why (its
//! frame was corrupted, the guest stopped before the end marker, or it never
//! reported the case).

use std::collections::HashMap;

use pmu_kernel_checks::plan::{CaseRequest, Params};
use pmu_kernel_checks::pmu::ArchEvent;
use pmu_kernel_checks::protocol::{self, Frame, FrameError};
use pmu_kernel_checks::record::{Fact, Record};
use serde_json::Value;

use crate::case::{Case, CheckKind, EventRef};
use crate::outcome::{Outcome, Reason, ReasonCode};

/// The request for `case`, as the probe kernel's plan carries it.
pub fn request(case: &Case) -> CaseRequest {
    let CheckKind::Kernel(check) = case.check else {
        unreachable!("only kernel cases become kernel requests: {}", case.id)
    };
    let event = match &case.event {
        EventRef::Named(name) if name == "instructions" => ArchEvent::Instructions,
        _ => ArchEvent::Branches,
    };
    CaseRequest {
        id: case.id.to_string(),
        check,
        params: Params {
            counter: case.kernel.counter,
            int: case.kernel.int,
            event,
            iterations: case.workload.iterations(),
            runs: case.runs,
            expect: case.expect.as_ref().map(|x| x.count),
            above: case.tolerance.above,
            below: case.tolerance.below,
        },
    }
}

/// A record as the host's outcome.
pub fn outcome(record: Record) -> Outcome {
    let mut outcome = match (record.verdict, record.signature) {
        (pmu_kernel_checks::record::Verdict::Fail, Some(signature)) => Outcome::fail(signature, record.summary),
        (pmu_kernel_checks::record::Verdict::Pass, _) => Outcome::pass(record.summary),
        (pmu_kernel_checks::record::Verdict::Unsupported, _) => Outcome::unsupported(
            record
                .reason
                .unwrap_or_else(|| Reason::new(ReasonCode::Guest, "the probe kernel gave no reason")),
        ),
        _ => {
            let reason = record
                .reason
                .unwrap_or_else(|| Reason::new(ReasonCode::Guest, "the probe kernel gave no reason"));
            Outcome::error(reason.code, reason.message)
        }
    };
    for (name, fact) in record.facts {
        let value = match fact {
            Fact::Number(n) => Value::from(n),
            Fact::Flag(b) => Value::from(b),
            Fact::Text(s) => Value::from(s),
        };
        outcome = outcome.fact(&name, value);
    }
    outcome
}

/// The probe kernel's watchdog word for a boot killed at `timeout`: the
/// guest gives up a second before the host would kill it.
pub fn watchdog_word(timeout: std::time::Duration) -> String {
    format!("pmuc.watchdog={}", timeout.as_secs().saturating_sub(1).max(1))
}

/// The guest's CPUID, from the `cpuid` field of the probe kernel's hello.
pub fn hello_cpuid(hello: &[(String, String)]) -> Result<crate::cpu::CpuidDump, String> {
    let cpuid = hello.iter().find(|(k, _)| k == "cpuid").map_or("", |(_, v)| v.as_str());
    let leaves = pmu_kernel_checks::cpuid_leaves::decode(cpuid)
        .ok_or_else(|| format!("the probe kernel's hello has a malformed cpuid field: {cpuid}"))?;
    Ok(crate::cpu::CpuidDump {
        leaves: leaves.into_iter().collect(),
    })
}

/// What a console transcript held.
#[derive(Debug, Default)]
pub struct Transcript {
    pub hello: Option<Vec<(String, String)>>,
    records: HashMap<String, Vec<Record>>,
    pub corrupted: Vec<FrameError>,
    pub end: Option<u64>,
}

impl Transcript {
    pub fn read<'a>(lines: impl IntoIterator<Item = &'a str>) -> Transcript {
        let mut t = Transcript::default();
        for line in lines {
            match protocol::decode(line) {
                None => {}
                Some(Err(e)) => t.corrupted.push(e),
                Some(Ok(Frame::Hello(fields))) => t.hello = Some(fields),
                Some(Ok(Frame::End { cases })) => t.end = Some(cases),
                Some(Ok(Frame::Case(r))) => t.records.entry(r.case.clone()).or_default().push(r),
                // The probe kernel sends no long texts; a Linux guest's report is read elsewhere.
                Some(Ok(Frame::Chunk { .. })) => {}
            }
        }
        t
    }

    fn hello_field(&self, key: &str) -> Option<&str> {
        self.hello
            .as_ref()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The outcome of each of `cases` whose record arrived, by id, each with
    /// `figures` (how the one boot or domain that ran them all went).
    pub fn reported_outcomes(
        &self,
        cases: &[std::sync::Arc<Case>],
        figures: &[(&str, u64)],
    ) -> HashMap<String, Outcome> {
        cases
            .iter()
            .map(|c| c.id.to_string())
            .filter(|id| self.reported(id))
            .map(|id| {
                let outcome = figures
                    .iter()
                    .fold(self.outcome(&id), |o, (name, value)| o.figure(name, *value));
                (id, outcome)
            })
            .collect()
    }

    /// Whether the transcript holds an intact record of case `id`.
    pub fn reported(&self, id: &str) -> bool {
        self.records.contains_key(id)
    }

    /// The outcome of case `id`, or the error that says why there is none.
    pub fn outcome(&self, id: &str) -> Outcome {
        if let Some(why) = self.hello_field("plan_error") {
            return Outcome::error(
                ReasonCode::Internal,
                format!("the probe kernel could not read its plan: {why}"),
            );
        }
        match self.records.get(id).map(Vec::as_slice) {
            Some([record]) => outcome(record.clone()),
            Some(more) => Outcome::error(
                ReasonCode::Guest,
                format!("the probe kernel reported this case {} times", more.len()),
            ),
            None if !self.corrupted.is_empty() => Outcome::error(
                ReasonCode::Guest,
                format!(
                    "no intact record: {} corrupted frame(s) on the console (first: {})",
                    self.corrupted.len(),
                    self.corrupted[0]
                ),
            ),
            None if self.hello.is_none() => {
                Outcome::error(ReasonCode::Guest, "the probe kernel never said hello: it did not boot")
            }
            None if self.end.is_none() => Outcome::error(
                ReasonCode::Guest,
                "the guest stopped before reporting this case (no end marker)",
            ),
            None => Outcome::error(
                ReasonCode::Guest,
                "the probe kernel finished without reporting this case",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use pmu_kernel_checks::record::SignatureKind;

    use super::*;
    use crate::outcome::{Magnitude, Unit, Verdict};

    fn frames() -> Vec<String> {
        vec![
            protocol::hello(&[("vendor", "intel")]),
            "some kernel noise".into(),
            protocol::record(&Record::pass("k/a", "fine").fact("runs", 3u64)),
            protocol::record(&Record::fail(
                "k/b",
                SignatureKind::LvtpcNotMasked,
                Magnitude::new(0x20, Unit::Register),
                "clear",
                "LVTPC 0x20",
            )),
            protocol::end(2),
        ]
    }

    #[test]
    fn intact_records_become_outcomes() {
        let lines = frames();
        let t = Transcript::read(lines.iter().map(String::as_str));
        assert_eq!(t.outcome("k/a").verdict, Verdict::Pass);
        assert_eq!(t.outcome("k/a").facts["runs"], 3);
        let b = t.outcome("k/b");
        assert_eq!(b.signature.map(|s| s.kind), Some(SignatureKind::LvtpcNotMasked));
        assert_eq!(
            t.outcome("k/c").reason,
            Some(Reason::new(
                ReasonCode::Guest,
                "the probe kernel finished without reporting this case"
            ))
        );
    }

    #[test]
    fn corruption_and_truncation_are_errors_never_passes() {
        let mut lines = frames();
        // The second record's frame is damaged and the end marker is cut off.
        lines[3] = lines[3].replace("clear", "clean");
        lines.pop();
        let t = Transcript::read(lines.iter().map(String::as_str));
        let b = t.outcome("k/b");
        assert_eq!(b.verdict, Verdict::Error);
        assert!(b.reason.unwrap().message.contains("corrupted frame"));
        // The intact record still stands.
        assert_eq!(t.outcome("k/a").verdict, Verdict::Pass);

        let t = Transcript::read(lines[..3].iter().map(String::as_str));
        assert!(t.outcome("k/b").reason.unwrap().message.contains("no end marker"));
        let t = Transcript::read(["junk"]);
        assert!(t.outcome("k/a").reason.unwrap().message.contains("did not boot"));
    }
}
