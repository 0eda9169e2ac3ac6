//! `ovf-ctrl-reads-zero`: IA32_PERF_GLOBAL_OVF_CTRL acknowledges by writes;
//! read back, after an overflow and its acknowledgement, it gives 0.

use alloc::format;

use super::{Context, Stop};
use crate::pmu::Vendor;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let Some(g) = c.pmu.globals.filter(|_| c.pmu.vendor == Vendor::Intel) else {
        let code = match c.pmu.vendor {
            Vendor::Intel => ReasonCode::PmuVersion,
            _ => ReasonCode::OtherVendor,
        };
        return Err(c.unsupported(code, "IA32_PERF_GLOBAL_OVF_CTRL is Intel's, from PMU version 2"));
    };
    let events = c.calibrate(p.counter, p.iterations)?;
    c.window(&[(p.counter, false, c.pmu.preset(p.counter, events - 1))], p.iterations)?;
    c.clear_status()?;
    let read = c.rdmsr(g.status_clear)?;
    Ok(if read == 0 {
        Record::pass(c.id(), "read 0 after an acknowledgement")
    } else {
        Record::fail(
            c.id(),
            SignatureKind::OvfCtrlNotZero,
            Magnitude::new(read, Unit::Register),
            format!("read {read:#x}"),
            format!("OVF_CTRL {read:#x}"),
        )
    })
}
