//! What a counted window retires, line by line.
//!
//! Every window in the project (the Linux probe's, the probe kernel's) has a
//! [`Listing`]: what runs once before its loop, once per iteration, and once
//! after it, up to and including the instruction that stops the count. Cases'
//! expected counts are computed from listings, the reference model replays
//! them, and tests decode each window's machine code and hold it to its
//! listing.

use core::ops::{Add, Mul};

/// Retired events, per listing part or per window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub instructions: u64,
    pub conditional_branches: u64,
    /// All retired branches, conditional or not.
    pub branches: u64,
    /// Executions of the loop's marker instruction (for breakpoints).
    pub marker_hits: u64,
    pub page_faults: u64,
    /// Instructions that exit to the hypervisor (CPUID, an intercepted WRMSR).
    pub vm_exits: u64,
    /// Conditional branches that lie between two CPUIDs (VMware's hvsim bug).
    pub branches_between_cpuids: u64,
}

impl Counts {
    pub const ZERO: Counts = Counts {
        instructions: 0,
        conditional_branches: 0,
        branches: 0,
        marker_hits: 0,
        page_faults: 0,
        vm_exits: 0,
        branches_between_cpuids: 0,
    };

    /// Each count of `self` and `o` combined by `f`, or `None` where any is.
    pub fn combine(self, o: Counts, f: impl Fn(u64, u64) -> Option<u64>) -> Option<Counts> {
        Some(Counts {
            instructions: f(self.instructions, o.instructions)?,
            conditional_branches: f(self.conditional_branches, o.conditional_branches)?,
            branches: f(self.branches, o.branches)?,
            marker_hits: f(self.marker_hits, o.marker_hits)?,
            page_faults: f(self.page_faults, o.page_faults)?,
            vm_exits: f(self.vm_exits, o.vm_exits)?,
            branches_between_cpuids: f(self.branches_between_cpuids, o.branches_between_cpuids)?,
        })
    }

    /// The largest of the counts.
    pub fn largest(&self) -> u64 {
        [
            self.instructions,
            self.conditional_branches,
            self.branches,
            self.marker_hits,
            self.page_faults,
            self.vm_exits,
            self.branches_between_cpuids,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

impl Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            instructions: self.instructions + o.instructions,
            conditional_branches: self.conditional_branches + o.conditional_branches,
            branches: self.branches + o.branches,
            marker_hits: self.marker_hits + o.marker_hits,
            page_faults: self.page_faults + o.page_faults,
            vm_exits: self.vm_exits + o.vm_exits,
            branches_between_cpuids: self.branches_between_cpuids + o.branches_between_cpuids,
        }
    }
}

impl Mul<u64> for Counts {
    type Output = Counts;
    fn mul(self, n: u64) -> Counts {
        Counts {
            instructions: self.instructions * n,
            conditional_branches: self.conditional_branches * n,
            branches: self.branches * n,
            marker_hits: self.marker_hits * n,
            page_faults: self.page_faults * n,
            vm_exits: self.vm_exits * n,
            branches_between_cpuids: self.branches_between_cpuids * n,
        }
    }
}

/// A window's shape: once before the loop, once per iteration, once after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    pub before: Counts,
    pub body: Counts,
    pub after: Counts,
}

impl Listing {
    /// Everything a window of `iterations` passes retires. Validation bounds
    /// every workload (see [`Listing::checked_total`]), so this cannot overflow.
    pub fn total(&self, iterations: u64) -> Counts {
        self.before + self.body * iterations + self.after
    }

    /// [`Listing::total`], or `None` where a count would overflow 64 bits.
    pub fn checked_total(&self, iterations: u64) -> Option<Counts> {
        let body = self.body.combine(Counts::ZERO, |b, _| b.checked_mul(iterations))?;
        self.before
            .combine(body, u64::checked_add)?
            .combine(self.after, u64::checked_add)
    }
}
