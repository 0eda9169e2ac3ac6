//! `overflow-status`: kvm-unit-tests' `check_counter_overflow`. Measure the
//! window's count C, preset the counter to 1 − C, run the window again: the
//! counter wraps at event C − 1 and reads exactly 1 afterwards, and its
//! GLOBAL_STATUS bit is set whether or not INT was.
//!
//! Xen's status shadow leaves the bit clear when INT is clear; its PMC quirk
//! can make the counter read 2 when INT is set.

use alloc::format;

use super::{Context, Stop};
use crate::pmu::Vendor;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    if c.pmu.globals.is_none() {
        return Err(c.unsupported(
            ReasonCode::PmuVersion,
            "no GLOBAL_STATUS: PMU version 1, or AMD without PerfMonV2",
        ));
    }
    let events = c.calibrate(p.counter, p.iterations)?;
    let preset = c.pmu.preset(p.counter, events - 1);
    c.window(&[(p.counter, p.int, preset)], p.iterations)?;
    let value = c.read(p.counter)?;
    let status = c.status()?;
    let bit = c.pmu.bit(p.counter);
    let int = if p.int { "INT set" } else { "INT clear" };
    // AMD guests count VMRUN as a branch, so kvm-unit-tests allows a few more (< 7).
    let ceiling = if c.pmu.vendor == Vendor::Amd { 6 } else { 1 };
    let record = if status & bit == 0 {
        Record::fail(
            c.id(),
            SignatureKind::StatusNotSet,
            Magnitude::new(bit, Unit::StatusBits),
            format!("the overflow left its bit ({bit:#x}) clear with {int}"),
            format!("STATUS {status:#x} after the wrap"),
        )
    } else if value == 0 || value > ceiling {
        let kind = if value > ceiling {
            SignatureKind::Overcount
        } else {
            SignatureKind::Undercount
        };
        Record::fail(
            c.id(),
            kind,
            Magnitude::new(i128::from(value) - 1, Unit::Events),
            format!("the counter read {value} after the wrap, not 1"),
            format!("{int}: read {value}"),
        )
    } else {
        Record::pass(c.id(), format!("{int}: read {value} after the wrap, status bit set"))
    };
    Ok(record.fact("int", p.int).fact("status_bit_set", status & bit != 0))
}
