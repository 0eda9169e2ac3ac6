//! `pmi-iff-int`: an overflow raises a PMI if and only if the counter's INT
//! bit is set, and exactly one. The window runs with interrupts off, so the
//! PMI is latched and taken in the interrupt window that follows; a second
//! window then shows whether another arrives.

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop, pmis as plural};
use crate::record::{Record, SignatureKind};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    let before = c.hw.pmis();
    c.window(&[(p.counter, p.int, c.pmu.preset(p.counter, events - 1))], p.iterations)?;
    c.hw.wait_for_pmi(PMI_WAIT_SPINS);
    let pmis = c.hw.wait_for_pmi(PMI_WAIT_SPINS) - before;
    let expected = u64::from(p.int);
    let int = if p.int { "INT set" } else { "INT clear" };
    let record = if pmis < expected {
        Record::fail(
            c.id(),
            SignatureKind::PmiLost,
            format!("{int}: no PMI for the overflow"),
            plural(pmis),
        )
    } else if pmis > expected {
        Record::fail(
            c.id(),
            SignatureKind::PmiExtra,
            format!("{int}: {} for one overflow", plural(pmis)),
            plural(pmis),
        )
    } else {
        Record::pass(c.id(), format!("{int}: {}", plural(pmis)))
    };
    Ok(record.fact("int", p.int).fact("pmis", pmis))
}
