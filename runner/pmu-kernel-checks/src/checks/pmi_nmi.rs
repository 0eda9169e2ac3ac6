//! `pmi-nmi`: with the LVT performance-counter entry in NMI delivery mode,
//! as Linux and rr program it ([`LVT_NMI`]), an overflow raises exactly one
//! NMI and nothing on the PMI vector. NMIs are not held back by a cleared
//! IF, so it arrives during or just after the window. Delivery masks the
//! entry on Intel (SDM Vol. 3A 11.5.1, whatever the delivery mode) and must
//! not on AMD. Xen handles NMI mode apart from fixed mode
//! (xen:vpmu.c:318-320) and sets no mask bit in either.

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop, lvt_mask_verdict, pmi_count_failure, pmis};
use crate::hardware::{LVT_MASK, LVT_NMI, PMI_VECTOR};
use crate::record::{Magnitude, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let events = c.calibrate(p.counter, p.iterations)?;
    c.hw.set_lvtpc(LVT_NMI);
    let (pmis_before, nmis_before) = (c.hw.pmis(), c.hw.nmis());
    c.window(&[(p.counter, true, c.pmu.preset(p.counter, events - 1))], p.iterations)?;
    let nmis = c.hw.wait_for_nmi(PMI_WAIT_SPINS) - nmis_before;
    let lvt = c.hw.lvtpc();
    // Anything latched on the PMI vector is taken here (and counted).
    c.hw.set_lvtpc(u32::from(PMI_VECTOR) | LVT_MASK);
    let fixed = c.hw.wait_for_pmi(0) - pmis_before;
    if nmis != 1 {
        return Ok(pmi_count_failure(
            c,
            nmis,
            1,
            Unit::PmisPerOverflow,
            format!("{nmis} NMIs for one overflow with the LVT entry in NMI mode (LVTPC {lvt:#x})"),
            "NMI-mode PMI",
        ));
    }
    if fixed != 0 {
        return Ok(Record::fail(
            c.id(),
            SignatureKind::PmiExtra,
            Magnitude::new(fixed, Unit::PmisPerOverflow),
            format!(
                "{} on vector {PMI_VECTOR} besides the NMI, though the LVT entry asked for an NMI",
                pmis(fixed)
            ),
            "fixed-mode PMI in NMI mode",
        ));
    }
    Ok(lvt_mask_verdict(
        c,
        lvt,
        "1 NMI, and delivery masked the LVT entry",
        "1 NMI, the LVT entry left unmasked",
    ))
}
