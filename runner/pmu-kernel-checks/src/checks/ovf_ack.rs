//! `ovf-ack`: two counters overflow (INT clear); writing one's bit to the
//! status-clear MSR (Intel IA32_PERF_GLOBAL_OVF_CTRL, AMD GlobalStatusClr)
//! clears exactly that bit, and the other stays set until it is written too.

use alloc::format;

use super::{Context, Stop};
use crate::pmu::{ArchEvent, Counter};
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let Some(g) = c.pmu.globals else {
        return Err(c.unsupported(
            ReasonCode::PmuVersion,
            "no global status: PMU version 1, or AMD without PerfMonV2",
        ));
    };
    if c.pmu.gp < 2 || p.event != ArchEvent::Branches {
        return Err(c.unsupported(
            ReasonCode::TooFewCounters,
            "needs two general-purpose counters counting branches",
        ));
    }
    let (a, b) = (Counter::Gp(0), Counter::Gp(1));
    let events = c.calibrate(a, p.iterations)?;
    let preset = c.pmu.preset(a, events - 1);
    c.window(&[(a, false, preset), (b, false, preset)], p.iterations)?;
    let (bit_a, bit_b) = (c.pmu.bit(a), c.pmu.bit(b));
    let status = c.status()?;
    if status & (bit_a | bit_b) != bit_a | bit_b {
        return Ok(Record::fail(
            c.id(),
            SignatureKind::StatusNotSet,
            Magnitude::new((bit_a | bit_b) & !status, Unit::StatusBits),
            format!("STATUS {status:#x} after two overflows"),
            "overflow bits missing",
        ));
    }
    c.wrmsr(g.status_clear, bit_a)?;
    let after_a = c.status()?;
    c.wrmsr(g.status_clear, bit_b)?;
    let after_b = c.status()?;
    let record = if after_a & bit_a != 0 {
        Record::fail(
            c.id(),
            SignatureKind::StatusNotCleared,
            Magnitude::new(bit_a, Unit::StatusBits),
            format!("bit {bit_a:#x} still set after its acknowledgement"),
            format!("STATUS {after_a:#x}"),
        )
    } else if after_a & bit_b == 0 {
        Record::fail(
            c.id(),
            SignatureKind::StatusOvercleared,
            Magnitude::new(bit_b, Unit::StatusBits),
            format!("acknowledging {bit_a:#x} also cleared {bit_b:#x}"),
            format!("STATUS {after_a:#x}"),
        )
    } else if after_b & (bit_a | bit_b) != 0 {
        Record::fail(
            c.id(),
            SignatureKind::StatusNotCleared,
            Magnitude::new(after_b & (bit_a | bit_b), Unit::StatusBits),
            "a bit stayed set after its acknowledgement",
            format!("STATUS {after_b:#x}"),
        )
    } else {
        Record::pass(c.id(), format!("{status:#x} → {after_a:#x} → {after_b:#x}"))
    };
    Ok(record.fact("acknowledged_first", bit_a))
}
