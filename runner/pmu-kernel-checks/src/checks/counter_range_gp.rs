//! `counter-range-gp`: capability honesty. The first general-purpose counter
//! beyond CPUID's count does not exist, so its event select and counter MSRs
//! raise #GP on RDMSR and WRMSR.
//!
//! Some of those addresses are not tried:
//! - those KVM answers whether or not the counter exists: Intel's P6 PMC0/1
//!   (0xc1, 0xc2) and EVNTSEL0/1 (0x186, 0x187), and AMD's K7 EVNTSEL0-3 and
//!   PERFCTR0-3 (0xc0010000-0xc0010007), which read 0 and take a write of 0
//!   (torvalds/linux@004a0aa5:arch/x86/kvm/x86.c (kvm_set_msr_common,
//!   kvm_get_msr_common));
//! - any that is an advertised counter's own MSR: on AMD without
//!   PerfCtrExtCore, the fifth event select (0xc0010004) is PERFCTR0.
//!
//! Where nothing is left to try, the case is unsupported and says why.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Context, Stop};
use crate::pmu::Counter;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

/// MSRs KVM answers silently when they are not valid counters.
fn answered_by_kvm(msr: u32) -> bool {
    matches!(msr, 0xc1 | 0xc2 | 0x186 | 0x187 | 0xc001_0000..=0xc001_0007)
}

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let beyond = c.pmu.gp;
    let advertised: Vec<u32> = (0..c.pmu.gp)
        .flat_map(|i| [c.pmu.evtsel(i), c.pmu.counter_msr(Counter::Gp(i))])
        .collect();
    let mut msrs = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for msr in [c.pmu.evtsel(beyond), c.pmu.counter_msr(Counter::Gp(beyond))] {
        if advertised.contains(&msr) {
            skipped.push(format!("{msr:#x} (an advertised counter's own MSR)"));
        } else if answered_by_kvm(msr) {
            skipped.push(format!("{msr:#x} (KVM answers it silently)"));
        } else {
            msrs.push(msr);
        }
    }
    if msrs.is_empty() {
        return Err(c.unsupported(
            ReasonCode::ProbeCannotSee,
            format!(
                "counter {beyond}'s MSRs cannot show its absence: {}",
                skipped.join(", ")
            ),
        ));
    }
    let mut answered: Vec<String> = Vec::new();
    let mut first = None;
    for &msr in &msrs {
        if c.hw.rdmsr(msr).is_ok() {
            answered.push(format!("RDMSR {msr:#x}"));
            first.get_or_insert(msr);
        }
        if c.hw.wrmsr(msr, 0).is_ok() {
            answered.push(format!("WRMSR {msr:#x}"));
            first.get_or_insert(msr);
        }
    }
    let record = if answered.is_empty() {
        Record::pass(
            c.id(),
            format!("counter {beyond} (beyond CPUID's {}) raised #GP", c.pmu.gp),
        )
    } else {
        Record::fail(
            c.id(),
            SignatureKind::NoGp,
            Magnitude::new(first.unwrap_or(0), Unit::Msr),
            format!(
                "{} succeeded though CPUID advertises {} counters",
                answered.join(", "),
                c.pmu.gp
            ),
            "a counter CPUID does not advertise answers",
        )
    };
    let record = match skipped.len() {
        0 => record,
        n => record.fact("not_tried", n as u64),
    };
    Ok(record.fact("advertised", u64::from(c.pmu.gp)))
}
