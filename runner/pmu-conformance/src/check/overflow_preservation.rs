//! `overflow-preservation`: after overflows inside the window, the total read
//! afterwards still equals the workload's exact count.
//!
//! This is the check that shows Xen's PMC quirk: in rr's probe shape the
//! counter wraps on the last counted branch, the PMI is handled with the
//! counter reading 0, Xen writes 1 into it, and the total reads one high.
//!
//! The quirk needs its PMI: a run whose overflows were never handled cannot
//! show it, so "no PMI" must never read as "no quirk". Each run must have
//! handled exactly the overflows its period implies over the workload's
//! listed count (at least as many, for an inexact event); a run with fewer
//! fails as `pmi-lost`, beside whatever its count says.

use super::miscount::{self, Miss};
use super::{Deviations, Stop, for_each_run, not_exercised};
use crate::case::Case;
use crate::event_table::ResolvedEvent;
use crate::outcome::{Magnitude, Outcome, Signature, SignatureKind, Unit};
use crate::probe::Probe;

pub fn run(case: &Case, event: &ResolvedEvent, probe: &mut dyn Probe) -> Result<Outcome, Stop> {
    let expected = case
        .expect
        .as_ref()
        .expect("validation requires `expect` for overflow-preservation")
        .count;
    let period = case.period.expect("validation requires a period");
    // The overflows each run must handle: one per period of what the workload retires.
    let listed = event
        .counts
        .and_then(|q| case.workload.counts(case.probe).map(|c| q.of(&c)))
        .unwrap_or(expected);
    let implied = listed / period;
    let mut deviations = Deviations::default();
    let mut misses = Vec::new();
    let mut notifications = 0u64;
    let (mut unhandled, mut runs_short) = (0u64, 0u64);
    for_each_run(case, event, probe, |run| {
        let deviation = run.reading.value as i128 - expected as i128;
        let n = run.notifications.len() as u64;
        notifications += n;
        let handled = run.overflows_handled.unwrap_or(n);
        // More overflows than the period implies is a count past the
        // workload's, which the count itself shows; fewer is this check's to say.
        if handled < implied {
            unhandled += implied - handled;
            runs_short += 1;
        }
        deviations.add(deviation);
        if !case.tolerance.admits(deviation) {
            misses.push(Miss {
                deviation,
                notifications: n,
            });
        }
    })?;
    let runs = u64::from(case.runs);
    if implied == 0 {
        return Err(not_exercised(format!(
            "period {period} never overflows in {listed} events, so no overflow was tested"
        )));
    }
    let short = || {
        let share = if runs_short == runs {
            "in every run".to_owned()
        } else {
            format!("in {runs_short} of {runs} runs")
        };
        let overflows = if unhandled == 1 { "overflow" } else { "overflows" };
        format!("{unhandled} {overflows} never handled {share}")
    };
    let outcome = if misses.is_empty() && unhandled == 0 {
        Outcome::pass(format!("{expected} across {notifications} overflows in {runs} runs")).proves(super::proves(
            case,
            "miscounts",
            runs,
            "runs",
        ))
    } else if misses.is_empty() {
        // Every count is right, but not every run took its overflows: the
        // quirk this check is for could not have shown there.
        let signature = Signature::new(
            SignatureKind::PmiLost,
            Magnitude::new(unhandled, Unit::OverflowsLost),
            short(),
        );
        Outcome::fail(
            signature,
            format!(
                "{expected} in every run, but {} of {} overflows handled",
                runs * implied - unhandled,
                runs * implied
            ),
        )
    } else {
        let vm_exits = case.workload.counts(case.probe).map_or(0, |c| c.vm_exits);
        let signature = miscount::signature(&misses, runs, expected, true, vm_exits);
        let beside = if unhandled > 0 {
            format!("; {}", short())
        } else {
            String::new()
        };
        Outcome::fail(
            signature,
            format!("expected {expected}: {}{beside}", deviations.describe()),
        )
    };
    Ok(outcome
        .fact("expected", expected)
        .fact("period", period)
        .fact("runs", runs)
        .fact("overflows_per_run", implied)
        .figure("deviations", deviations.to_value())
        .figure("notifications", notifications)
        .figure("overflows_unhandled", unhandled))
}
