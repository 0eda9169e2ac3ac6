//! `all-counters`: every counter at once (kvm-unit-tests x86/pmu.c,
//! check_counters_many). Each GP counter and fixed counter 0 count the
//! window's instructions, all in the same window, and each must match the
//! listing as `exact-count` does; fixed counters 1 and 2 (core and
//! reference cycles) must count at all. One window drives them all, so this
//! needs global controls.

use alloc::format;
use alloc::vec::Vec;

use super::exact_count::{Tolerance, tolerance};
use super::{Context, Stop, signed};
use crate::pmu::Counter;
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    c.require_instructions("all-counters counts instructions, the one event every counter has")?;
    if c.pmu.globals.is_none() {
        return Err(c.unsupported(
            ReasonCode::PmuVersion,
            "without global controls (PMU version 2, or PerfMonV2), one window drives one counter",
        ));
    }
    let mut counters: Vec<Counter> = (0..c.pmu.gp).map(Counter::Gp).collect();
    counters.extend((0..c.pmu.fixed).map(Counter::Fixed));
    let programmed: Vec<(Counter, bool, u64)> = counters.iter().map(|&k| (k, false, 0)).collect();
    c.window_all(&programmed, p.iterations)?;
    let expected = c.listed(p.iterations);
    let Tolerance { above, below, erratum } = tolerance(c, p.event, p.above, p.below);
    let mut exact = 0u64;
    for &counter in &counters {
        let counted = c.read(counter)?;
        let name = crate::plan::counter_name(counter);
        if let Counter::Fixed(i) = counter
            && i > 0
        {
            // Core and reference cycles: not exact, but never nothing.
            if counted == 0 {
                return Ok(Record::fail(
                    c.id(),
                    SignatureKind::Undercount,
                    Magnitude::new(0, Unit::PercentCounted),
                    format!("{name} counted nothing while every counter ran"),
                    format!("{name} counted 0"),
                ));
            }
            continue;
        }
        let d = i128::from(counted) - i128::from(expected);
        if d < -i128::from(below) || d > i128::from(above) {
            let kind = if d > 0 {
                SignatureKind::Overcount
            } else {
                SignatureKind::Undercount
            };
            return Ok(Record::fail(
                c.id(),
                kind,
                super::exact_count::miss(d, expected, p.event),
                format!(
                    "{name} counted {counted}, {} from the listing's {expected}, with every counter running",
                    signed(d)
                ),
                format!("{name}: {}", signed(d)),
            ));
        }
        exact += 1;
    }
    let relaxed = erratum.map_or(alloc::string::String::new(), |e| {
        format!(", at least by erratum {}", e.id)
    });
    Ok(Record::pass(
        c.id(),
        format!(
            "{} counters at once: {exact} counted the {expected} instructions{relaxed}, the cycle counters counted",
            counters.len()
        ),
    )
    .fact("counters", counters.len() as u64)
    .fact("expected", expected))
}
