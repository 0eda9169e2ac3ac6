//! `overflow-preservation`: after overflows inside the window, the total read
//! afterwards still equals the workload's exact count.
//!
//! This is the check that shows Xen's PMC quirk: in rr's probe shape the
//! counter wraps on the last counted branch, the PMI is handled with the
//! counter reading 0, Xen writes 1 into it, and the total reads one high.

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
        .expect("validation requires `expect` for overflow-preservation")
        .count;
    let period = case.period.expect("validation requires a period");
    let mut deviations = Deviations::default();
    let mut misses = Vec::new();
    let mut notifications = 0u64;
    for_each_run(case, event, probe, |run| {
        let deviation = run.reading.value as i128 - expected as i128;
        let n = run.notifications.len() as u64;
        notifications += n;
        deviations.add(deviation);
        if !case.tolerance.admits(deviation) {
            misses.push(Miss {
                deviation,
                notifications: n,
            });
        }
    })?;
    let runs = u64::from(case.runs);
    let outcome = if misses.is_empty() {
        Outcome::pass(format!("{expected} across {notifications} overflows in {runs} runs")).proves(super::proves(
            case,
            "miscounts",
            runs,
            "runs",
        ))
    } else {
        let vm_exits = case.workload.counts(case.probe).map_or(0, |c| c.vm_exits);
        let signature = miscount::signature(&misses, runs, expected, true, vm_exits);
        Outcome::fail(signature, format!("expected {expected}: {}", deviations.describe()))
    };
    Ok(outcome
        .fact("expected", expected)
        .fact("period", period)
        .fact("runs", runs)
        .figure("deviations", deviations.to_value())
        .figure("notifications", notifications))
}
