//! `exact-count`: an architectural event over the WRMSR-bracketed loop counts
//! exactly what the window's listing says, every run (kvm-unit-tests' exact
//! Intel check). The host sends the expected count and any tolerance.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Context, Stop, signed};
use crate::record::{Record, SignatureKind};
use crate::window::LISTING;

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    let Some(expected) = p.expect else {
        return Err(Stop::from(Record::error(c.id(), "the host sent no expected count")));
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
    let admits = |d: i128| -i128::from(p.below) <= d && d <= i128::from(p.above);
    let described: Vec<String> = deviations.iter().map(|(d, n)| format!("{} ×{n}", signed(*d))).collect();
    let described = described.join(", ");
    let misses: Vec<(i128, u64)> = deviations
        .iter()
        .filter(|(d, _)| !admits(**d))
        .map(|(d, n)| (*d, *n))
        .collect();
    let record = if misses.is_empty() {
        Record::pass(c.id(), format!("{expected} in all {} runs ({described})", p.runs))
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
        let magnitude = match misses.as_slice() {
            [(d, _)] if *d == -i128::from(expected) => format!("counted 0 {share}"),
            [(d, _)] if instructions && *d == -exits => format!("-1 per VM exit ({exits} in the window) {share}"),
            [(d, _)] => format!("{} {share}", signed(*d)),
            _ => format!("{}…{} {share}", signed(misses[0].0), signed(misses[misses.len() - 1].0)),
        };
        Record::fail(c.id(), kind, magnitude, format!("expected {expected}: {described}"))
    };
    Ok(record.fact("expected", expected).fact("runs", u64::from(p.runs)))
}
