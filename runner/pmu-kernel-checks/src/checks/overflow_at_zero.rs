//! `overflow-at-zero`: rr's Xen probe at MSR level. Preset a branch counter
//! to −B, B being the window's branches: it wraps on the last back-edge and
//! nothing after that is a branch, so it reads 0 when the PMI is handled and
//! must still read 0 afterwards. Xen's PMI handler writes 1 into any
//! overflowed counter that reads 0: 1 extra event per such PMI.

use alloc::format;

use super::{Context, PMI_WAIT_SPINS, Stop};
use crate::pmu::ArchEvent;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    if p.event != ArchEvent::Branches {
        return Err(Stop::from(Record::error(
            c.id(),
            ReasonCode::Internal,
            "overflow-at-zero counts branches",
        )));
    }
    let branches = c.calibrate(p.counter, p.iterations)?;
    let before = c.hw.pmis();
    c.window(&[(p.counter, true, c.pmu.preset(p.counter, branches))], p.iterations)?;
    let after = c.hw.wait_for_pmi(PMI_WAIT_SPINS);
    let value = c.read(p.counter)?;
    let record = match (after - before, value) {
        (0, _) => Record::fail(
            c.id(),
            SignatureKind::PmiLost,
            Magnitude::new(1, Unit::OverflowsLost),
            "the wrap raised no PMI",
            "no PMI",
        ),
        (_, 0) => Record::pass(c.id(), "wrapped on the last branch; read 0 after its PMI"),
        (_, v) => Record::fail(
            c.id(),
            SignatureKind::Overcount,
            Magnitude::new(v, Unit::EventsPerPmi),
            format!("+{v} per PMI that landed on zero"),
            format!("read {v} after the PMI, not 0"),
        ),
    };
    Ok(record.fact("branches", branches))
}
