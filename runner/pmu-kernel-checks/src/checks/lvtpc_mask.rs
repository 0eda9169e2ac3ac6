//! `lvtpc-mask`: delivering a PMI sets the LVT performance-counter entry's
//! mask bit on Intel (SDM Vol. 3A 11.5.1), and must not on AMD (KVM commit
//! 49ff3b4aec51). Xen's vLAPIC never sets it.

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop};
use crate::hardware::LVT_MASK;
use crate::pmu::Vendor;
use crate::record::{Magnitude, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    let before = c.hw.pmis();
    c.window(&[(p.counter, true, c.pmu.preset(p.counter, events - 1))], p.iterations)?;
    let pmis = c.hw.wait_for_pmi(PMI_WAIT_SPINS) - before;
    let lvt = c.hw.lvtpc();
    if pmis == 0 {
        return Ok(Record::fail(
            c.id(),
            SignatureKind::PmiLost,
            Magnitude::new(1, Unit::OverflowsLost),
            "no PMI, so no mask to judge",
            "no PMI",
        ));
    }
    let masked = lvt & LVT_MASK != 0;
    let record = match (c.pmu.vendor, masked) {
        (Vendor::Amd, true) => Record::fail(
            c.id(),
            SignatureKind::LvtpcMasked,
            Magnitude::new(lvt, Unit::Register),
            "AMD must not mask the LVT on a PMI",
            format!("LVTPC {lvt:#x}"),
        ),
        (Vendor::Amd, false) => Record::pass(c.id(), format!("unmasked after the PMI, as AMD does (LVTPC {lvt:#x})")),
        (_, false) => Record::fail(
            c.id(),
            SignatureKind::LvtpcNotMasked,
            Magnitude::new(lvt, Unit::Register),
            "the mask bit stayed clear after the PMI",
            format!("LVTPC {lvt:#x}"),
        ),
        (_, true) => Record::pass(c.id(), format!("masked by the PMI (LVTPC {lvt:#x})")),
    };
    Ok(record.fact("masked", masked))
}
