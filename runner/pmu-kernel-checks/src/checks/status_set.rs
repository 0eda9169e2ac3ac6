//! `status-set`: the status-set MSR (Intel IA32_PERF_GLOBAL_STATUS_SET from
//! version 4, AMD GlobalStatusSet) sets the bits it is given, so a VMM can
//! restore a guest's status; the status-clear MSR then clears them.

use alloc::format;

use super::{Context, Stop};
use crate::pmu::Counter;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let Some(g) = c.pmu.globals else {
        return Err(c.unsupported(
            ReasonCode::PmuVersion,
            "no global status: PMU version 1, or AMD without PerfMonV2",
        ));
    };
    let Some(set) = g.status_set else {
        return Err(c.unsupported(
            ReasonCode::PmuVersion,
            format!(
                "STATUS_SET exists from PMU version 4; CPUID.0AH says version {}",
                c.pmu.version
            ),
        ));
    };
    let bit = c.pmu.bit(Counter::Gp(0));
    c.wrmsr(set, bit)?;
    let after_set = c.status()?;
    c.wrmsr(g.status_clear, bit)?;
    let after_clear = c.status()?;
    Ok(if after_set & bit == 0 {
        Record::fail(
            c.id(),
            SignatureKind::StatusSetIgnored,
            Magnitude::new(bit, Unit::StatusBits),
            format!("bit {bit:#x} not set"),
            format!("STATUS {after_set:#x}"),
        )
    } else if after_clear & bit != 0 {
        Record::fail(
            c.id(),
            SignatureKind::StatusNotCleared,
            Magnitude::new(bit, Unit::StatusBits),
            format!("bit {bit:#x} still set"),
            format!("STATUS {after_clear:#x}"),
        )
    } else {
        Record::pass(c.id(), format!("set {bit:#x}, then cleared it"))
    })
}
