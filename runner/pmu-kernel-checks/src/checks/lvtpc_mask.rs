//! `lvtpc-mask`: delivering a PMI sets the LVT performance-counter entry's
//! mask bit on Intel (SDM Vol. 3A 11.5.1), and must not on AMD (KVM commit
//! 49ff3b4aec51). Xen's vLAPIC never sets it.

use super::{Context, Stop};
use crate::record::{Magnitude, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    let pmis = c.overflow_pmis(p.counter, c.pmu.preset(p.counter, events - 1))?;
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
    Ok(super::lvt_mask_verdict(
        c,
        lvt,
        "masked by the PMI",
        "unmasked after the PMI, as AMD does",
    ))
}
