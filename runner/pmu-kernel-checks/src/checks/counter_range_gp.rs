//! `counter-range-gp`: capability honesty. The first general-purpose counter
//! beyond CPUID's count does not exist, so its event select and counter MSRs
//! raise #GP on RDMSR and WRMSR. KVM makes Intel's legacy PMC0 and PMC1
//! (0xc1, 0xc2) read as 0 even where they do not exist; those two are not
//! tried.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Context, Stop};
use crate::pmu::{Counter, intel};
use crate::record::{Record, SignatureKind};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let beyond = c.pmu.gp;
    let mut msrs = Vec::from([c.pmu.evtsel(beyond)]);
    let counter = c.pmu.counter_msr(Counter::Gp(beyond));
    if !(intel::PMC0..intel::PMC0 + 2).contains(&counter) {
        msrs.push(counter);
    }
    let mut answered: Vec<String> = Vec::new();
    for &msr in &msrs {
        if c.hw.rdmsr(msr).is_ok() {
            answered.push(format!("RDMSR {msr:#x}"));
        }
        if c.hw.wrmsr(msr, 0).is_ok() {
            answered.push(format!("WRMSR {msr:#x}"));
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
            format!(
                "{} succeeded though CPUID advertises {} counters",
                answered.join(", "),
                c.pmu.gp
            ),
            "a counter CPUID does not advertise answers",
        )
    };
    Ok(record.fact("advertised", u64::from(c.pmu.gp)))
}
