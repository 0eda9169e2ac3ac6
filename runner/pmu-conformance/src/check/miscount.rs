//! Naming a wrong count: overcount or undercount, and by how much.
//!
//! Both count checks end here when runs miss their expected count. The
//! magnitude is the most specific reading that fits every miss, so the same
//! fault sizes the same way every time: `+1 events-per-pmi` for Xen's quirk
//! on rr's probe, `0 percent-counted` for a dead counter, `-1
//! events-per-vm-exit` for an uncounted emulated instruction, `-1
//! events-per-run` for an intermittent loss. The detail says the same in
//! words, with how many runs missed.

use crate::check::signed;
use crate::outcome::{Magnitude, Signature, SignatureKind, Unit};

/// One run that missed: its deviation from the expected count, and how many
/// overflow notifications it had (for per-PMI magnitudes).
#[derive(Clone, Copy, Debug)]
pub struct Miss {
    pub deviation: i128,
    pub notifications: u64,
}

/// `vm_exits` is how many instructions in one window exit to the
/// hypervisor: a loss of exactly one each is named so.
pub fn signature(misses: &[Miss], runs: u64, expected: u64, per_pmi: bool, vm_exits: u64) -> Signature {
    let over = misses.iter().filter(|m| m.deviation > 0).count();
    let under = misses.len() - over;
    let kind = if over >= under {
        SignatureKind::Overcount
    } else {
        SignatureKind::Undercount
    };
    let share = if misses.len() as u64 == runs {
        "in every run".to_owned()
    } else {
        format!("in {} of {runs} runs", misses.len())
    };

    let deviations = || misses.iter().map(|m| m.deviation);
    let (magnitude, detail) = if expected > 0 && deviations().all(|d| d == -(expected as i128)) {
        (Magnitude::new(0, Unit::PercentCounted), format!("counted 0 {share}"))
    } else if let Some(c) = per_pmi.then(|| per_notification(misses)).flatten() {
        (
            Magnitude::new(c, Unit::EventsPerPmi),
            format!("{} per PMI {share}", signed(c)),
        )
    } else if vm_exits > 0 && deviations().all(|d| d == -i128::from(vm_exits)) {
        (
            Magnitude::new(-1, Unit::EventsPerVmExit),
            format!("-1 per VM exit ({vm_exits} in the window) {share}"),
        )
    } else if let Some(d) = same(deviations()) {
        (Magnitude::new(d, Unit::EventsPerRun), format!("{} {share}", signed(d)))
    } else {
        let lo = deviations().min().unwrap_or(0);
        let hi = deviations().max().unwrap_or(0);
        // Overcounts no larger than the run's PMIs fit a per-PMI fault that
        // strikes only some PMIs (Xen's quirk, on PMIs that land on zero).
        let bounded = per_pmi
            && misses
                .iter()
                .all(|m| m.deviation > 0 && m.deviation <= i128::from(m.notifications));
        let range = format!("{}…{} {share}", signed(lo), signed(hi));
        if bounded {
            (
                Magnitude::new(1, Unit::EventsPerPmiAtMost),
                format!("{range}, at most +1 per PMI"),
            )
        } else {
            (Magnitude::worst(deviations()), range)
        }
    };
    Signature::new(kind, magnitude, detail)
}

/// The one value every item has, if they all agree.
fn same(mut values: impl Iterator<Item = i128>) -> Option<i128> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

/// The constant c with deviation = c × notifications in every miss, if there is one.
fn per_notification(misses: &[Miss]) -> Option<i128> {
    if misses.iter().any(|m| m.notifications == 0) {
        return None;
    }
    let first = misses.first()?;
    if first.deviation % first.notifications as i128 != 0 {
        return None;
    }
    let c = first.deviation / first.notifications as i128;
    (c != 0 && misses.iter().all(|m| m.deviation == c * m.notifications as i128)).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss(deviation: i128, notifications: u64) -> Miss {
        Miss {
            deviation,
            notifications,
        }
    }

    #[test]
    fn xen_quirk_on_rrs_probe_reads_plus_one_per_pmi() {
        let s = signature(&[miss(1, 1), miss(1, 1)], 2, 500, true, 0);
        assert_eq!(
            (s.kind, s.detail.as_str()),
            (SignatureKind::Overcount, "+1 per PMI in every run")
        );
        assert_eq!(s.magnitude, Magnitude::new(1, Unit::EventsPerPmi));
    }

    #[test]
    fn varying_deviations_proportional_to_pmis_read_per_pmi() {
        let s = signature(&[miss(3, 3), miss(5, 5)], 10, 10_000, true, 0);
        assert_eq!(s.detail, "+1 per PMI in 2 of 10 runs");
    }

    #[test]
    fn dead_counters_and_intermittent_losses_are_named_plainly() {
        let s = signature(&[miss(-500, 0), miss(-500, 0)], 2, 500, false, 0);
        assert_eq!(
            (s.kind, s.detail.as_str()),
            (SignatureKind::Undercount, "counted 0 in every run")
        );
        assert_eq!(s.magnitude, Magnitude::new(0, Unit::PercentCounted));
        let s = signature(&[miss(-1, 0)], 100, 500, false, 0);
        assert_eq!(
            (s.kind, s.detail.as_str()),
            (SignatureKind::Undercount, "-1 in 1 of 100 runs")
        );
        let s = signature(&[miss(2, 0), miss(7, 0), miss(-1, 0)], 3, 500, false, 0);
        // Xen does not count instructions that exit to it.
        let s1 = signature(&[miss(8, 100), miss(20, 100)], 2, 100_000, true, 0);
        assert_eq!(s1.detail, "+8…+20 in every run, at most +1 per PMI");
        assert_eq!(s1.magnitude, Magnitude::new(1, Unit::EventsPerPmiAtMost));
        let s2 = signature(&[miss(-2000, 0)], 1, 10_007, false, 2000);
        assert_eq!(s2.detail, "-1 per VM exit (2000 in the window) in every run");
        assert_eq!(s2.magnitude, Magnitude::new(-1, Unit::EventsPerVmExit));
        assert_eq!(
            (s.kind, s.detail.as_str()),
            (SignatureKind::Overcount, "-1…+7 in every run")
        );
        assert_eq!(s.magnitude, Magnitude::new(7, Unit::EventsPerRun));
    }
}
