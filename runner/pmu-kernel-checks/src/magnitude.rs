//! How large a failure is: a number with a unit.
//!
//! A signature's [`Magnitude`] is what recorded expectations hold and what
//! known-bug diagnoses match: `+1 events-per-pmi` is Xen's quirk, `-1
//! events-per-vm-exit` an uncounted emulated instruction, `0
//! percent-counted` a dead counter. The signature's detail says the same in
//! words, with whatever else was seen.

use core::fmt;

crate::stable_names::stable_names! {
    /// What a magnitude's number counts.
    Unit {
        /// A run's count minus its expected count (the largest, where runs differ).
        EventsPerRun => "events-per-run",
        /// Events gained or lost per overflow interrupt the run took.
        EventsPerPmi => "events-per-pmi",
        /// Runs that overcount by no more than this many events per overflow
        /// interrupt, though not by the same in each: a per-PMI fault that
        /// strikes only some PMIs (Xen's quirk, on the PMIs that land on zero).
        EventsPerPmiAtMost => "events-per-pmi-at-most",
        /// Events gained or lost per VM-exiting instruction in the window.
        EventsPerVmExit => "events-per-vm-exit",
        /// The share of the expected count that was counted, in percent.
        PercentCounted => "percent-counted",
        /// Events a counter counted where it should have counted none, or read
        /// where it should read none (after a freeze, after its wrap).
        Events => "events",
        /// Overflows (boundaries) that were never handled or never notified.
        OverflowsLost => "overflows-lost",
        /// Notifications or PMIs beyond one per overflow, over the case.
        ExtraNotifications => "extra-notifications",
        /// Notifications later than the threshold breached.
        LateNotifications => "late-notifications",
        /// Budgets that ran out without their POLL_HUP.
        MissingHups => "missing-hups",
        /// PMIs taken for one overflow.
        PmisPerOverflow => "pmis-per-overflow",
        /// PMIs taken before the status was acknowledged and the LVT unmasked.
        PmisBeforeRearm => "pmis-before-rearm",
        /// The address of the MSR whose access misbehaved (the first, of several).
        Msr => "msr",
        /// How many accesses misbehaved.
        Accesses => "accesses",
        /// The GLOBAL_STATUS bits in question, as a mask.
        StatusBits => "status-bits",
        /// A register's value as read (LVTPC, OVF_CTRL).
        Register => "register",
        /// An exception vector.
        Vector => "vector",
        /// The RDPMC index (ECX) that misbehaved.
        RdpmcIndex => "rdpmc-index",
    }
}

/// A failure's size: `amount` of `unit`. Deviations are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Magnitude {
    pub amount: i64,
    pub unit: Unit,
}

impl Magnitude {
    pub fn new(amount: impl TryInto<i64>, unit: Unit) -> Magnitude {
        Magnitude {
            amount: amount.try_into().unwrap_or(i64::MAX),
            unit,
        }
    }
}

impl Magnitude {
    /// The deviation furthest from zero among `deviations`, per run: how a
    /// spread of wrong counts is sized.
    pub fn worst(deviations: impl Iterator<Item = i128>) -> Magnitude {
        Magnitude::new(
            deviations.max_by_key(|d| d.unsigned_abs()).unwrap_or(0),
            Unit::EventsPerRun,
        )
    }
}

impl fmt::Display for Magnitude {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            Unit::EventsPerRun | Unit::EventsPerPmi | Unit::EventsPerPmiAtMost | Unit::EventsPerVmExit => {
                write!(f, "{:+} {}", self.amount, self.unit)
            }
            Unit::Msr | Unit::StatusBits | Unit::Register | Unit::RdpmcIndex => {
                write!(f, "{:#x} {}", self.amount, self.unit)
            }
            _ => write!(f, "{} {}", self.amount, self.unit),
        }
    }
}
