//! `pmi-follows-lvtpc`: after a PMI has been acknowledged through the
//! status-clear MSR, but before the LVT entry is rewritten, a second
//! overflow raises a PMI if and only if the entry reads unmasked.
//!
//! Bare Intel masks the entry on delivery, so no PMI; AMD leaves it
//! unmasked, so one. Xen keeps two LVTs: the guest's, which its vLAPIC never
//! masks, and the physical one, which the CPU masks when it gives Xen the PMI
//! and which Xen rewrites only when the guest writes its own
//! (xen:apic.c:1326-1330, vpmu.c:87-103). There the entry reads unmasked and
//! yet the second overflow raises nothing: a guest that trusts what it reads
//! (and rewrites the LVT only when it finds it masked) loses every PMI after
//! its first.

use alloc::format;

use super::{Context, Stop, pmi_count_failure, pmis};
use crate::hardware::{LVT_MASK, PMI_VECTOR};
use crate::record::{Magnitude, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    let preset = c.pmu.preset(p.counter, events - 1);
    let first = c.overflow_pmis(p.counter, preset)?;
    if first != 1 {
        return Ok(pmi_count_failure(
            c,
            first,
            1,
            Unit::PmisPerOverflow,
            format!("{} for the first overflow", pmis(first)),
            "first overflow",
        ));
    }
    // Acknowledged, and the LVT entry left as the PMI left it.
    c.clear_status()?;
    let lvt = c.hw.lvtpc();
    let masked = lvt & LVT_MASK != 0;
    let second = c.overflow_pmis(p.counter, preset)?;
    c.hw.set_lvtpc(u32::from(PMI_VECTOR));
    let expected = u64::from(!masked);
    let record = if second == expected {
        let said = if masked { "masked: no PMI" } else { "unmasked: 1 PMI" };
        Record::pass(
            c.id(),
            format!("the second overflow followed the LVT entry (LVTPC {lvt:#x}, {said})"),
        )
    } else if !masked && second == 0 {
        Record::fail(
            c.id(),
            SignatureKind::PmiBlocked,
            Magnitude::new(1, Unit::OverflowsLost),
            format!(
                "no PMI for an acknowledged overflow though the LVT entry reads unmasked (LVTPC {lvt:#x}): \
                 an LVT the guest cannot see held it back"
            ),
            "second overflow",
        )
    } else {
        Record::fail(
            c.id(),
            SignatureKind::PmiExtra,
            Magnitude::new(second, Unit::PmisPerOverflow),
            format!("{} for the second overflow with LVTPC {lvt:#x}", pmis(second)),
            "second overflow",
        )
    };
    Ok(record.fact("masked", masked).fact("second_overflow_pmis", second))
}
