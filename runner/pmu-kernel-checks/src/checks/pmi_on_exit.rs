//! `pmi-on-exit`: an overflow on an instruction the hypervisor emulates
//! raises exactly one PMI.
//!
//! The counter counts instructions and is preset to wrap on the window's
//! last one, the stopping WRMSR. Under a hypervisor that intercepts that
//! write (KVM's perf-based vPMU intercepts GLOBAL_CTRL), the instruction is
//! emulated and counted in software, and that overflow's PMI is raised from
//! the VM exit. KVM before torvalds/linux@73554b29bd70 injected it twice
//! when the exit also ran the PMI's irq_work, with the LVT entry unmasked.
//!
//! That the wrap landed on the WRMSR is evidence the check requires: the
//! counter reads 0 right after the window (1 under Xen, whose PMI handler
//! writes 1 into a counter that reads 0; `overflow-at-zero` judges that).
//! Otherwise the case was not exercised, an error.

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop, pmis as plural};
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    c.require_instructions("pmi-on-exit counts instructions, so that the window's last event is its stopping WRMSR")?;
    let events = c.calibrate(p.counter, p.iterations)?;
    let before = c.hw.pmis();
    c.window(&[(p.counter, true, c.pmu.preset(p.counter, events))], p.iterations)?;
    let after = c.read(p.counter)?;
    c.hw.wait_for_pmi(PMI_WAIT_SPINS);
    let pmis = c.hw.wait_for_pmi(PMI_WAIT_SPINS) - before;
    let on_the_wrmsr = after == 0 || (after == 1 && c.pmu.hypervisor == "xen");
    if !on_the_wrmsr {
        return Ok(Record::error(
            c.id(),
            ReasonCode::NotExercised,
            format!(
                "not exercised: the counter read {after} after a window preset to wrap after {events} \
                 instructions, so the wrap did not land on the stopping WRMSR"
            ),
        )
        .fact("pmis", pmis));
    }
    let record = match pmis {
        1 => Record::pass(c.id(), "1 PMI for an overflow on the stopping WRMSR"),
        0 => Record::fail(
            c.id(),
            SignatureKind::PmiLost,
            Magnitude::new(1, Unit::OverflowsLost),
            "no PMI for an overflow on the stopping WRMSR",
            plural(pmis),
        ),
        n => Record::fail(
            c.id(),
            SignatureKind::PmiExtra,
            Magnitude::new(n, Unit::PmisPerOverflow),
            format!("{} for one overflow on the stopping WRMSR", plural(n)),
            plural(n),
        ),
    };
    Ok(record.fact("pmis", pmis))
}
