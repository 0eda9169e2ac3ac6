//! `pmi-iff-int`: an overflow raises a PMI if and only if the counter's INT
//! bit is set, and exactly one. The window runs with interrupts off, so the
//! PMI is latched and taken in the interrupt window that follows; a second
//! window then shows whether another arrives.
//!
//! With INT clear the case is a negative control, and "no PMI" proves
//! nothing where PMIs never arrive at all. So it first runs its positive
//! control in the same boot, an overflow with INT set, and counts only if
//! that one raises a PMI; otherwise it is an error that says it was not
//! exercised.

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop, pmis as plural};
use crate::pmu::Counter;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

/// The PMIs one overflow of `counter`, with INT as given, raises.
fn overflow(c: &mut Context<'_>, counter: Counter, int: bool, events: u64) -> Result<u64, Stop> {
    let before = c.hw.pmis();
    c.window(
        &[(counter, int, c.pmu.preset(counter, events - 1))],
        c.case.params.iterations,
    )?;
    c.hw.wait_for_pmi(PMI_WAIT_SPINS);
    Ok(c.hw.wait_for_pmi(PMI_WAIT_SPINS) - before)
}

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    let control = if p.int {
        None
    } else {
        let pmis = overflow(c, p.counter, true, events)?;
        if pmis == 0 {
            return Ok(Record::error(
                c.id(),
                ReasonCode::NotExercised,
                "not exercised: the positive control, the same overflow with INT set, raised no PMI either, \
                 so no PMI without INT proves nothing here",
            ));
        }
        c.quiesce()?;
        Some(pmis)
    };
    let pmis = overflow(c, p.counter, p.int, events)?;
    let expected = u64::from(p.int);
    let int = if p.int { "INT set" } else { "INT clear" };
    let record = if pmis < expected {
        Record::fail(
            c.id(),
            SignatureKind::PmiLost,
            Magnitude::new(1, Unit::OverflowsLost),
            format!("{int}: no PMI for the overflow"),
            plural(pmis),
        )
    } else if pmis > expected {
        Record::fail(
            c.id(),
            SignatureKind::PmiExtra,
            Magnitude::new(pmis, Unit::PmisPerOverflow),
            format!("{int}: {} for one overflow", plural(pmis)),
            plural(pmis),
        )
    } else {
        match control {
            Some(_) => Record::pass(c.id(), format!("{int}: {}; with INT set, a PMI", plural(pmis))),
            None => Record::pass(c.id(), format!("{int}: {}", plural(pmis))),
        }
    };
    let record = record.fact("int", p.int).fact("pmis", pmis);
    Ok(match control {
        Some(control) => record.fact("control_pmis", control),
        None => record,
    })
}
