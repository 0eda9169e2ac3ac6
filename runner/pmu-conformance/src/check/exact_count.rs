//! `exact-count`: every run counts exactly what the workload retired.
//!
//! No overflow is armed, so nothing but the workload can move the counter.
//! The outcome reports the distribution of deviations over all runs; a case
//! on an inexact event passes when every deviation is within its stated
//! tolerance. On a part whose published erratum overcounts the event, the
//! check relaxes to "at least the expected count" and names the erratum.

use super::miscount::{self, Miss};
use super::{Deviations, Stop, for_each_run};
use crate::case::Case;
use crate::event_table::ResolvedEvent;
use crate::outcome::Outcome;
use crate::probe::Probe;

pub fn run(case: &Case, event: &ResolvedEvent, probe: &mut dyn Probe) -> Result<Outcome, Stop> {
    let expected = case
        .expect
        .as_ref()
        .expect("validation requires `expect` for exact-count")
        .count;
    // On a part whose erratum overcounts the event, "at least" is all a
    // correct system guarantees (kvm-unit-tests relaxes the same way).
    let tolerance = match event.erratum {
        Some(_) => crate::case::Tolerance {
            above: u64::MAX,
            ..case.tolerance.clone()
        },
        None => case.tolerance.clone(),
    };
    let mut deviations = Deviations::default();
    let mut misses = Vec::new();
    for_each_run(case, event, probe, |run| {
        let deviation = run.reading.value as i128 - expected as i128;
        deviations.add(deviation);
        if !tolerance.admits(deviation) {
            misses.push(Miss {
                deviation,
                notifications: 0,
            });
        }
    })?;
    let runs = u64::from(case.runs);
    let outcome = if misses.is_empty() {
        let summary = match (deviations.0.keys().all(|d| *d == 0), event.erratum) {
            (true, _) => format!("{expected} in all {runs} runs"),
            (false, Some(e)) => format!(
                "at least {expected} in all {runs} runs ({}), as erratum {} allows",
                deviations.describe(),
                e.id
            ),
            (false, None) => format!(
                "{expected} within tolerance in all {runs} runs ({})",
                deviations.describe()
            ),
        };
        Outcome::pass(summary).proves(super::proves(case, "miscounts", runs, "runs"))
    } else {
        let vm_exits = case.workload.counts(case.probe).map_or(0, |c| c.vm_exits);
        let signature = miscount::signature(&misses, runs, expected, false, vm_exits);
        let summary = format!("expected {expected}: {}", deviations.describe());
        let mut outcome = Outcome::fail(signature, summary);
        outcome
            .diagnosis
            .extend(cond_taken_diagnosis(case, event, expected, &misses, runs));
        outcome.diagnosis.extend(traced_diagnosis(case, event, expected, probe));
        outcome
    };
    let outcome = match event.erratum {
        Some(e) => outcome.fact("erratum", format!("{} ({})", e.id, e.source)),
        None => outcome,
    };
    Ok(outcome
        .fact("expected", expected)
        .fact("runs", runs)
        .figure("deviations", deviations.to_value()))
}

/// What the window retires when single-stepped here, set against the
/// expectation: the same, and the PMU (or its virtualisation) miscounted;
/// different, and the harness is wrong.
fn traced_diagnosis(case: &Case, event: &ResolvedEvent, expected: u64, probe: &mut dyn Probe) -> Option<String> {
    let expect = case.expect.as_ref()?;
    let traced = match probe.traced_counts(&case.workload, case.read_with)? {
        Ok(counts) => counts,
        Err(why) => {
            return Some(format!(
                "the window could not be traced here to check the expectation: {why}"
            ));
        }
    };
    let traced = match expect
        .formula
        .evaluate(&|name| case.workload.variable_in(name, &traced))
    {
        Ok(value) => value,
        Err(why) => return Some(format!("the traced counts do not evaluate `{}`: {why}", expect.formula)),
    };
    Some(if traced == expected {
        format!(
            "the window, single-stepped here, retires exactly {traced} ({}): the workload is as listed, \
             so the {} count is the PMU's doing, not the harness's",
            expect.formula, event.name
        )
    } else {
        format!(
            "the window, single-stepped here, retires {traced} ({}), not the {expected} the listing says: \
             the harness's listing is wrong, so this failure says nothing about the PMU",
            expect.formula
        )
    })
}

/// Every run counted exactly the window's *taken* conditional branches: the
/// encoding counts COND_TAKEN. On Ice Lake and later, 0x5101c4 means
/// COND_TAKEN (0x5111c4 is all conditional branches); a guest whose named
/// CPU model is older than its host programs the older encoding, and KVM
/// passes the raw event to the host unchanged (rr #2610). Said only where
/// taken and all differ by two or more, so that it never passes for a
/// one-event miscount.
fn cond_taken_diagnosis(
    case: &Case,
    event: &ResolvedEvent,
    expected: u64,
    misses: &[Miss],
    runs: u64,
) -> Option<String> {
    if event.counts != Some(crate::workload::Quantity::ConditionalBranches) {
        return None;
    }
    let taken = case.workload.taken_conditional_branches();
    let every_run = misses.len() as u64 == runs;
    let only_taken = misses.iter().all(|m| m.deviation == taken as i128 - expected as i128);
    (every_run && only_taken && expected >= taken + 2).then(|| {
        format!(
            "every run counted exactly the {taken} taken conditional branches of the {expected}: `{}` counts \
             COND_TAKEN here, as 0x5101c4 does on Ice Lake and later. In a guest, that is a guest CPU model \
             older than the host's (the suite programs the model's encoding, and KVM passes it to the host \
             unchanged; rr #2610), not a vPMU undercount: give the guest the host's CPU model",
            event.name
        )
    })
}
