//! `rdpmc`: RDPMC reads every counter as its MSR holds it, and an index
//! past the counters raises #GP (kvm-unit-tests x86/pmu.c, check_rdpmc and
//! its invalid-index test; SDM Vol. 2B and APM Vol. 3, RDPMC).
//!
//! Each GP counter is written through its MSR with a value whose low 32 bits
//! have bit 31 set, and each fixed counter likewise, masked to its width;
//! RDPMC must return what the MSR then reads (how a legacy write extends is
//! `counter-width`'s business). Where Intel offers full-width writes, each GP
//! counter is read so after a legacy write and after a full-width one. Intel's fast read (ECX bit 31) returns the
//! low 32 bits where the CPU has it and raises #GP where it does not: either
//! conforms, and which one is a fact. The first GP index past CPUID's count,
//! and on Intel the first fixed one, must raise #GP.

use alloc::format;
use alloc::vec::Vec;

use super::{Context, Stop};
use crate::pmu::{Counter, Vendor};
use crate::record::{Magnitude, Record, SignatureKind, Unit};

/// Bits 39:0 of what is written: bit 31 set, so a sign extension shows.
const VALUE: u64 = 0xff_8123_4567;
const FIXED: u32 = 1 << 30;
const FAST: u32 = 1 << 31;

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let pmu = c.pmu;
    let intel = pmu.vendor == Vendor::Intel;
    let mut counters: Vec<(Counter, u32)> = (0..pmu.gp).map(|i| (Counter::Gp(i), u32::from(i))).collect();
    if intel {
        counters.extend((0..pmu.fixed).map(|i| (Counter::Fixed(i), FIXED | u32::from(i))));
    }
    // Each counter through the MSR it is written by; on Intel with
    // full-width writes, each GP counter through its legacy MSR too (which
    // sign-extends bit 31) and through the full-width alias.
    let mut writes: Vec<(Counter, u32, u32)> = Vec::new();
    for &(counter, ecx) in &counters {
        writes.push((counter, ecx, pmu.counter_msr(counter)));
        if let Counter::Gp(i) = counter
            && intel
            && pmu.full_width_writes
        {
            writes.push((counter, ecx, crate::pmu::intel::PMC0 + u32::from(i)));
        }
    }
    let mut fast_reads = None;
    for &(counter, ecx, msr) in &writes {
        let width = pmu.counter_width(counter);
        let mask = if width >= 64 { u64::MAX } else { (1 << width) - 1 };
        c.wrmsr(msr, VALUE & mask)?;
        let held = c.rdmsr(msr)?;
        let read = c.hw.rdpmc(ecx).map_err(|f| {
            Stop::from(Record::fail(
                c.id(),
                SignatureKind::UnexpectedGp,
                Magnitude::new(ecx, Unit::RdpmcIndex),
                format!("RDPMC {ecx:#x} raised vector {}", f.vector),
                "RDPMC of an advertised counter faulted",
            ))
        })?;
        if read != held {
            return Ok(Record::fail(
                c.id(),
                SignatureKind::WrongValue,
                Magnitude::new(read, Unit::Register),
                format!("RDPMC {ecx:#x} read {read:#x}, and MSR {msr:#x} holds {held:#x}"),
                format!("RDPMC {ecx:#x} disagrees with its MSR"),
            ));
        }
        if intel {
            match c.hw.rdpmc(ecx | FAST) {
                Ok(fast) if fast != held & 0xffff_ffff => {
                    return Ok(Record::fail(
                        c.id(),
                        SignatureKind::WrongValue,
                        Magnitude::new(fast, Unit::Register),
                        format!(
                            "the fast RDPMC {:#x} read {fast:#x}, not the low 32 bits of {held:#x}",
                            ecx | FAST
                        ),
                        "a fast RDPMC read the wrong bits",
                    ));
                }
                Ok(_) => fast_reads = Some(true),
                Err(_) => fast_reads = Some(false),
            }
        }
    }
    let mut bad = alloc::vec![u32::from(pmu.gp)];
    if intel {
        bad.push(FIXED | u32::from(pmu.fixed));
    }
    for &ecx in &bad {
        if c.hw.rdpmc(ecx).is_ok() {
            return Ok(Record::fail(
                c.id(),
                SignatureKind::NoGp,
                Magnitude::new(ecx, Unit::RdpmcIndex),
                format!("RDPMC {ecx:#x}, past the counters CPUID advertises, did not raise #GP"),
                format!("RDPMC {ecx:#x} answered"),
            ));
        }
    }
    let fast = match fast_reads {
        Some(true) => "; fast reads give the low 32 bits",
        Some(false) => "; fast reads raise #GP here",
        None => "",
    };
    let record = Record::pass(
        c.id(),
        format!(
            "RDPMC read {} counters as their MSRs hold them, and #GP past them{fast}",
            counters.len()
        ),
    )
    .fact("counters", counters.len() as u64);
    Ok(match fast_reads {
        Some(f) => record.fact("fast_reads", f),
        None => record,
    })
}
