//! `counter-width`: a GP counter holds exactly the width CPUID gives it
//! (kvm-unit-tests x86/pmu.c, check_gp_counters_write_width).
//!
//! On Intel, a write through the legacy MSR (0xC1 + i) takes bits 31:0 and
//! sign-extends bit 31 across the width (SDM Vol. 3B, "Full-Width Writes to
//! Performance Counter Registers"); where PERF_CAPABILITIES[13] gives
//! full-width writes, the alias (0x4C1 + i) takes the whole width, and a
//! write of a bit above it raises #GP. On AMD each counter holds 48 bits
//! (APM Vol. 2, 13.2.1): all ones in the width read back.

use alloc::format;

use super::{Context, Stop};
use crate::pmu::{Counter, Vendor, intel};
use crate::record::{Magnitude, Record, SignatureKind, Unit};

/// Bit 31 set, so the sign extension shows.
const LEGACY: u64 = 0x8123_4567;

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let pmu = c.pmu;
    let width = pmu.width;
    let mask = if width >= 64 { u64::MAX } else { (1 << width) - 1 };
    let wrong = |c: &Context<'_>, msr: u32, wrote: u64, read: u64, expected: u64| {
        Record::fail(
            c.id(),
            SignatureKind::WrongValue,
            Magnitude::new(read, Unit::Register),
            format!("MSR {msr:#x} written {wrote:#x} read back {read:#x}, not {expected:#x} ({width}-bit counters)"),
            format!("MSR {msr:#x} holds the wrong bits"),
        )
    };
    for i in 0..pmu.gp {
        if pmu.vendor != Vendor::Intel {
            let msr = pmu.counter_msr(Counter::Gp(i));
            c.wrmsr(msr, mask)?;
            let read = c.rdmsr(msr)?;
            if read != mask {
                return Ok(wrong(c, msr, mask, read, mask));
            }
            continue;
        }
        let legacy = intel::PMC0 + u32::from(i);
        let extended = (LEGACY as u32 as i32 as i64 as u64) & mask;
        c.wrmsr(legacy, LEGACY)?;
        let read = c.rdmsr(legacy)?;
        if read != extended {
            return Ok(wrong(c, legacy, LEGACY, read, extended));
        }
        if !pmu.full_width_writes {
            continue;
        }
        let alias = intel::A_PMC0 + u32::from(i);
        c.wrmsr(alias, mask)?;
        let read = c.rdmsr(alias)?;
        if read != mask {
            return Ok(wrong(c, alias, mask, read, mask));
        }
        if width < 64 && c.hw.wrmsr(alias, 1 << width).is_ok() {
            return Ok(Record::fail(
                c.id(),
                SignatureKind::NoGp,
                Magnitude::new(alias, Unit::Msr),
                format!("a full-width write of bit {width} to MSR {alias:#x}, above the counter's width, was accepted"),
                format!("MSR {alias:#x} took a bit above its width"),
            ));
        }
    }
    let how = match (pmu.vendor, pmu.full_width_writes) {
        (Vendor::Intel, true) => "; legacy writes sign-extend bit 31; full-width writes above it raise #GP",
        (Vendor::Intel, false) => "; legacy writes sign-extend bit 31 (no full-width writes)",
        _ => "",
    };
    Ok(
        Record::pass(c.id(), format!("{} counters hold {width} bits{how}", pmu.gp))
            .fact("width", u64::from(width))
            .fact("full_width_writes", pmu.full_width_writes)
            .fact("counters", u64::from(pmu.gp)),
    )
}
