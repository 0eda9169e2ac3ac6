//! `pmi-deschedule`: an overflow's status bit, its counter's value and its
//! PMI survive the vCPU being switched out between the overflow and the
//! guest taking the PMI.
//!
//! Each run overflows the counter with INT set inside the window
//! (interrupts off, so the PMI waits at the LAPIC), gives the CPU back to
//! the hypervisor [`YIELDS`] times ([`Hardware::deschedule`]), and only then
//! reads GLOBAL_STATUS and the counter and opens the interrupt window.
//! Xen does not save the hardware GLOBAL_STATUS across an HVM context switch
//! and masks the physical LVTPC while it saves the vPMU
//! (xen:vpmu_intel.c:270-271, vpmu.c:372): the suspected mechanism of Xen
//! guests' lost PMIs. Where the PMI reached the hypervisor before the switch,
//! its vLAPIC keeps it; the loss needs the switch to land between the
//! overflow and the hypervisor's own PMI, which a guest cannot place, so the
//! case repeats the pattern `runs` times.
//!
//! [`Hardware::deschedule`]: crate::hardware::Hardware::deschedule

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop, pmi_count_failure, pmis};
use crate::hardware::PMI_VECTOR;
use crate::record::{Magnitude, Record, SignatureKind, Unit};

/// Yields between each overflow and its PMI.
pub const YIELDS: u32 = 8;

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    // After the window the counter has wrapped and reads exactly 1.
    let preset = c.pmu.preset(p.counter, events - 1);
    let bit = c.pmu.bit(p.counter);
    let mut how = None;
    for run in 1..=p.runs {
        let at = format!("run {run} of {}", p.runs);
        let before = c.hw.pmis();
        c.window(&[(p.counter, true, preset)], p.iterations)?;
        how = Some(c.hw.deschedule(YIELDS));
        let status = c.status()?;
        let value = c.read(p.counter)?;
        let taken = c.hw.wait_for_pmi(PMI_WAIT_SPINS) - before;
        if c.pmu.globals.is_some() && status & bit == 0 {
            return Ok(Record::fail(
                c.id(),
                SignatureKind::StatusNotSet,
                Magnitude::new(status, Unit::StatusBits),
                format!(
                    "{at}: after the vCPU was switched out, GLOBAL_STATUS {status:#x} lacks the overflow's bit {bit:#x}"
                ),
                "status lost across a deschedule",
            ));
        }
        if value != 1 {
            // 0 is one event short; anything else is that many over (a
            // counter Xen's quirk wrote 1 into at 0 reads 2).
            let (kind, by) = if value == 0 {
                (SignatureKind::Undercount, 1)
            } else {
                (SignatureKind::Overcount, value - 1)
            };
            return Ok(Record::fail(
                c.id(),
                kind,
                Magnitude::new(by, Unit::Events),
                format!("{at}: the counter read {value} after the overflow and the switch, not 1"),
                "count changed across a deschedule",
            ));
        }
        if taken != 1 {
            return Ok(pmi_count_failure(
                c,
                taken,
                1,
                Unit::PmisPerOverflow,
                format!("{at}: {} for an overflow the vCPU was switched out after", pmis(taken)),
                "PMI across a deschedule",
            ));
        }
        c.clear_status()?;
        c.hw.set_lvtpc(u32::from(PMI_VECTOR));
    }
    let how = how.map_or("no yield", |y| y.name());
    Ok(Record::pass(
        c.id(),
        format!(
            "{} overflows, each followed by {YIELDS} yields ({how}): every status bit, count and PMI survived",
            p.runs
        ),
    )
    .fact("yields_per_overflow", u64::from(YIELDS))
    .fact("overflows", u64::from(p.runs)))
}
