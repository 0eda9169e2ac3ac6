//! `pmi-rearm`: after a PMI, a second overflow before the handler has
//! acknowledged the status and unmasked the LVT entry raises no PMI on Intel
//! (the entry is masked) and one on AMD (it is not); after acknowledgement
//! and unmask, a new overflow raises exactly one new PMI.

use alloc::format;

use super::{Context, Stop, pmi_count_failure, pmis};
use crate::hardware::PMI_VECTOR;
use crate::pmu::Vendor;
use crate::record::{Record, Unit};

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
    // No acknowledgement, no unmask.
    let second = c.overflow_pmis(p.counter, preset)?;
    let expected_second = u64::from(c.pmu.vendor == Vendor::Amd);
    if second != expected_second {
        return Ok(pmi_count_failure(
            c,
            second,
            expected_second,
            Unit::PmisBeforeRearm,
            format!("{} for an overflow before acknowledgement and unmask", pmis(second)),
            "second overflow",
        ));
    }
    c.clear_status()?;
    c.hw.set_lvtpc(u32::from(PMI_VECTOR));
    let third = c.overflow_pmis(p.counter, preset)?;
    let record = if third == 1 {
        Record::pass(
            c.id(),
            format!("1, {second}, 1 PMIs: masked until acknowledged, then re-armed"),
        )
    } else {
        pmi_count_failure(
            c,
            third,
            1,
            Unit::PmisPerOverflow,
            format!("{} for an overflow after acknowledgement and unmask", pmis(third)),
            "third overflow",
        )
    };
    Ok(record.fact("second_overflow_pmis", second))
}
