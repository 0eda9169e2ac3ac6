//! `exact-count`: an architectural event over the WRMSR-bracketed loop counts
//! exactly what the window's listing says, every run (kvm-unit-tests' exact
//! Intel check). The host sends the expected count and any tolerance.
//!
//! On AMD the count is exact only up to [`AMD_ABOVE`] over and [`AMD_BELOW`]
//! under, added to the case's own tolerance: kvm-unit-tests checks only
//! ranges there, because in a guest each VMRUN retires as a branch
//! (kvm-unit-tests 89126fa4), so every host interrupt that lands in the
//! window adds one, and AMD does not document whether the bracketing WRMSRs
//! count. The allowance is a fact of the record, so reports show it.
//!
//! On the parts a published erratum makes overcount ([`crate::errata`]),
//! the check relaxes to "at least the listing", and names the erratum.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Context, Stop, signed};
use crate::pmu::Vendor;
use crate::record::{Fact, Magnitude, ReasonCode, Record, SignatureKind, Unit};
use crate::window::LISTING;

/// Events an AMD count may exceed the listing by: a 1000-pass window lasts
/// microseconds, so a host interrupt or two at most, with room to spare.
pub const AMD_ABOVE: u64 = 16;
/// Events an AMD count may fall short by: the stopping WRMSR, if uncounted.
pub const AMD_BELOW: u64 = 1;

/// How far an exact count may stray here: the case's own tolerance, AMD's
/// allowance on top, or "at least" where a published erratum overcounts.
pub(super) struct Tolerance {
    pub above: u64,
    pub below: u64,
    pub erratum: Option<&'static crate::errata::Erratum>,
}

pub(super) fn tolerance(c: &Context<'_>, event: crate::pmu::ArchEvent, above: u64, below: u64) -> Tolerance {
    let (family, model) = crate::errata::family_model(c.pmu.signature);
    let erratum = crate::errata::affecting(c.pmu.vendor == Vendor::Intel, family, model, event);
    let (above, below) = match (c.pmu.vendor == Vendor::Amd, erratum) {
        (true, _) => (above + AMD_ABOVE, below + AMD_BELOW),
        // An erratum that overcounts relaxes the check to "at least", as kvm-unit-tests does.
        (false, Some(_)) => (u64::MAX, below),
        (false, None) => (above, below),
    };
    Tolerance { above, below, erratum }
}

/// The magnitude of one window's miss `d` from `expected` events: a dead
/// counter, the stopping WRMSR (which exits) gone uncounted, or plain events.
pub(super) fn miss(d: i128, expected: u64, event: crate::pmu::ArchEvent) -> Magnitude {
    let exits = i128::from(LISTING.after.vm_exits);
    match d {
        d if expected > 0 && d == -i128::from(expected) => Magnitude::new(0, Unit::PercentCounted),
        d if event == crate::pmu::ArchEvent::Instructions && d == -exits => Magnitude::new(-1, Unit::EventsPerVmExit),
        d => Magnitude::new(d, Unit::EventsPerRun),
    }
}

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let Some(expected) = p.expect else {
        return Err(Stop::from(Record::error(
            c.id(),
            ReasonCode::Internal,
            "the host sent no expected count",
        )));
    };
    let mut deviations: BTreeMap<i128, u64> = BTreeMap::new();
    for _ in 0..p.runs {
        c.window(&[(p.counter, false, 0)], p.iterations)?;
        let counted = c.read(p.counter)?;
        *deviations
            .entry(i128::from(counted) - i128::from(expected))
            .or_default() += 1;
        c.quiesce()?;
    }
    let amd = c.pmu.vendor == Vendor::Amd;
    let Tolerance { above, below, erratum } = tolerance(c, p.event, p.above, p.below);
    let admits = |d: i128| -i128::from(below) <= d && d <= i128::from(above);
    let described: Vec<String> = deviations.iter().map(|(d, n)| format!("{} ×{n}", signed(*d))).collect();
    let described = described.join(", ");
    let misses: Vec<(i128, u64)> = deviations
        .iter()
        .filter(|(d, _)| !admits(**d))
        .map(|(d, n)| (*d, *n))
        .collect();
    let record = if misses.is_empty() {
        let relaxed = erratum.map_or(String::new(), |e| format!("; at least, by erratum {}", e.id));
        Record::pass(
            c.id(),
            format!("{expected} in all {} runs ({described}{relaxed})", p.runs),
        )
    } else {
        let over: u64 = misses.iter().filter(|(d, _)| *d > 0).map(|(_, n)| n).sum();
        let under: u64 = misses.iter().filter(|(d, _)| *d < 0).map(|(_, n)| n).sum();
        let kind = if over >= under {
            SignatureKind::Overcount
        } else {
            SignatureKind::Undercount
        };
        let runs: u64 = misses.iter().map(|(_, n)| n).sum();
        let share = if runs == u64::from(p.runs) {
            String::from("in every run")
        } else {
            format!("in {runs} of {} runs", p.runs)
        };
        // The stopping WRMSR exits to the hypervisor; one that goes uncounted is named so.
        let exits = i128::from(LISTING.after.vm_exits);
        let instructions = p.event == crate::pmu::ArchEvent::Instructions;
        let (magnitude, detail) = match misses.as_slice() {
            [(d, _)] if *d == -i128::from(expected) => (miss(*d, expected, p.event), format!("counted 0 {share}")),
            [(d, _)] if instructions && *d == -exits => (
                miss(*d, expected, p.event),
                format!("-1 per VM exit ({exits} in the window) {share}"),
            ),
            [(d, _)] => (miss(*d, expected, p.event), format!("{} {share}", signed(*d))),
            _ => (
                Magnitude::worst(misses.iter().map(|(d, _)| *d)),
                format!("{}…{} {share}", signed(misses[0].0), signed(misses[misses.len() - 1].0)),
            ),
        };
        Record::fail(
            c.id(),
            kind,
            magnitude,
            detail,
            format!("expected {expected}: {described}"),
        )
    };
    let record = record.fact("expected", expected).fact("runs", u64::from(p.runs));
    let record = match erratum {
        Some(e) => record.fact("erratum", Fact::Text(format!("{} ({})", e.id, e.source))),
        None => record,
    };
    Ok(if amd {
        record.fact("amd_allowance", Fact::Text(format!("+{AMD_ABOVE}/-{AMD_BELOW}")))
    } else {
        record
    })
}
