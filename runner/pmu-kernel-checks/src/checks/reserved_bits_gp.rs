//! `reserved-bits-gp`: writes of reserved bits raise #GP: a GLOBAL_CTRL or
//! OVF_CTRL bit for a counter CPUID does not advertise, and bit 63 of an
//! event select. A write that is accepted is undone and reported.
//!
//! On AMD a write may instead be ignored: KVM drops reserved bits there
//! rather than raise #GP ("AMD ignores writes to reserved bits and read-only
//! PMU MSRs, whereas Intel generates #GP": torvalds/linux@004a0aa5
//! arch/x86/kvm/pmu.c, kvm_pmu_set_msr). Such a write conforms if the bits
//! read back clear; on Intel only #GP does.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Context, Stop};
use crate::pmu::Counter;
use crate::record::{Magnitude, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let pmu = c.pmu;
    let mut writes: Vec<(u32, u64)> = Vec::new();
    writes.push((pmu.evtsel(0), 1 << 63));
    if let Some(g) = pmu.globals {
        if pmu.gp < 32 {
            writes.push((g.ctrl, pmu.bit(Counter::Gp(pmu.gp))));
            writes.push((g.status_clear, pmu.bit(Counter::Gp(pmu.gp))));
        }
        if pmu.vendor == crate::pmu::Vendor::Intel && pmu.fixed < 8 {
            writes.push((g.ctrl, pmu.bit(Counter::Fixed(pmu.fixed))));
        }
    }
    let amd = pmu.vendor == crate::pmu::Vendor::Amd;
    let mut accepted: Vec<String> = Vec::new();
    let mut ignored = 0u64;
    for &(msr, value) in &writes {
        let old = c.rdmsr(msr).unwrap_or(0);
        if c.hw.wrmsr(msr, value).is_ok() {
            let kept = c.hw.rdmsr(msr).map_or(value, |now| now & value);
            if amd && kept == 0 {
                ignored += 1;
            } else {
                accepted.push(format!("WRMSR {msr:#x} = {value:#x}"));
            }
            let _ = c.hw.wrmsr(msr, old);
        }
    }
    let tried = writes.len() as u64;
    let record = if accepted.is_empty() && ignored > 0 {
        Record::pass(
            c.id(),
            format!(
                "{} of {tried} reserved-bit writes raised #GP, {ignored} were ignored (AMD under KVM drops them)",
                tried - ignored
            ),
        )
        .fact("ignored", ignored)
    } else if accepted.is_empty() {
        Record::pass(c.id(), format!("all {tried} reserved-bit writes raised #GP"))
    } else {
        Record::fail(
            c.id(),
            SignatureKind::NoGp,
            Magnitude::new(accepted.len(), Unit::Accesses),
            format!("{} accepted", accepted.join(", ")),
            format!("{} of {tried} accepted", accepted.len()),
        )
    };
    Ok(record.fact("writes", tried))
}
