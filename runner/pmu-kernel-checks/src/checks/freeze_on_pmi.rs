//! `freeze-on-pmi`: with IA32_DEBUGCTL.FREEZE_PERFMON_ON_PMI set, a PMI
//! freezes the counters: versions 2 and 3 clear GLOBAL_CTRL's enable bits,
//! version 4 and later set GLOBAL_STATUS.CTR_Frz instead (SDM 20.2.4). The
//! counter overflows halfway through the window, so a frozen counter ends
//! far below a running one. KVM's and Xen's vPMUs reject the DEBUGCTL bit
//! with #GP; then the case is unsupported.

use alloc::format;

use super::{Context, Stop};
use crate::pmu::{Vendor, intel};
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    if c.pmu.vendor != Vendor::Intel {
        return Err(c.unsupported(ReasonCode::OtherVendor, "freeze on PMI is Intel's, from PMU version 2"));
    }
    if c.pmu.globals.is_none() {
        return Err(c.unsupported(ReasonCode::PmuVersion, "freeze on PMI is Intel's, from PMU version 2"));
    }
    let events = c.calibrate(p.counter, p.iterations)?;
    let debugctl = c.hw.rdmsr(intel::DEBUGCTL).unwrap_or(0);
    if c.hw
        .wrmsr(intel::DEBUGCTL, debugctl | intel::DEBUGCTL_FREEZE_PERFMON_ON_PMI)
        .is_err()
    {
        return Err(c.unsupported(
            ReasonCode::ControlRefused,
            "IA32_DEBUGCTL rejects FREEZE_PERFMON_ON_PMI (#GP)",
        ));
    }
    let half = events / 2;
    let result = c.window(&[(p.counter, true, c.pmu.preset(p.counter, half))], p.iterations);
    let counted = c.read(p.counter);
    let status = c.status();
    let _ = c.hw.wrmsr(intel::DEBUGCTL, debugctl);
    result?;
    let (counted, status) = (counted?, status?);
    // Events after the wrap: a frozen counter stops within the skid.
    let after_wrap = counted;
    let frozen = after_wrap < events / 4;
    let ctr_frz = status & intel::STATUS_CTR_FRZ != 0;
    if c.pmu.version >= 4 && ctr_frz {
        c.acknowledge(intel::STATUS_CTR_FRZ)?;
    }
    let record = if !frozen {
        Record::fail(
            c.id(),
            SignatureKind::NotFrozen,
            Magnitude::new(after_wrap, Unit::Events),
            format!("counted {after_wrap} events after the PMI of a window of {events}"),
            "kept counting after the PMI",
        )
    } else if c.pmu.version >= 4 && !ctr_frz {
        Record::fail(
            c.id(),
            SignatureKind::NotFrozen,
            Magnitude::new(status, Unit::StatusBits),
            "counters stopped but CTR_Frz is clear",
            format!("STATUS {status:#x}"),
        )
    } else {
        Record::pass(c.id(), format!("frozen {after_wrap} events after the PMI"))
    };
    Ok(record.fact("version_4_semantics", c.pmu.version >= 4))
}
