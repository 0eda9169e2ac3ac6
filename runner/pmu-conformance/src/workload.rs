//! Workloads: the fixed programs that run inside a counting window, and exactly
//! what each one retires.
//!
//! This file is the single source of truth for workload counts. The Linux
//! probe's inline-asm windows (`probe/linux/windows.rs`) match the [`Listing`]
//! of each kind line for line, and a test there decodes their machine code to
//! hold them to it. Case expectations are formulas over the [`Quantity`] names
//! defined here, so a case never hard-codes a number the workload could
//! contradict.

use std::fmt;
use std::ops::{Add, Mul};

/// The kinds of workload a case can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// `iterations` passes of a loop whose only conditional branch is its
    /// back-edge, with a marker instruction in the body for breakpoints.
    BranchLoop,
    /// rr's Xen PMI probe (`rr-debugger/rr:src/PerfCounters.cc`): RESET and
    /// IOC_PERIOD inside the window, each followed by a return check, then a
    /// loop, for exactly `branches` user-mode conditional branches.
    RrXenProbe,
    /// One write to each of `pages` fresh, never-touched anonymous pages.
    PageTouch,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::BranchLoop,
        WorkloadKind::RrXenProbe,
        WorkloadKind::PageTouch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::BranchLoop => "branch-loop",
            WorkloadKind::RrXenProbe => "rr-xen-probe",
            WorkloadKind::PageTouch => "page-touch",
        }
    }

    pub fn from_name(name: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The one size parameter each kind takes in YAML.
    pub fn size_parameter(self) -> &'static str {
        match self {
            WorkloadKind::BranchLoop => "iterations",
            WorkloadKind::RrXenProbe => "branches",
            WorkloadKind::PageTouch => "pages",
        }
    }

    /// The smallest size the listing can express: the loops are do-while
    /// loops, and rr's probe spends two branches on its return checks.
    pub fn minimum_size(self) -> u64 {
        match self {
            WorkloadKind::RrXenProbe => 3,
            WorkloadKind::BranchLoop | WorkloadKind::PageTouch => 1,
        }
    }

    /// What the Linux probe's window retires in user mode, from the first
    /// instruction after the arming ioctl returns to the disarming `syscall`.
    pub fn listing(self) -> Listing {
        // The disarm sequence: mov eax, SYS_ioctl; mov rdi, fd; mov esi, DISABLE;
        // xor edx, edx; syscall.
        let disarm = Counts {
            instructions: 5,
            ..Counts::ZERO
        };
        let loop_body = Counts {
            // inc r15; marker: nop; cmp r15, r13; jne
            instructions: 4,
            conditional_branches: 1,
            branches: 1,
            marker_hits: 1,
            page_faults: 0,
        };
        match self {
            WorkloadKind::BranchLoop => Listing {
                // mov r14, rax; xor r15d, r15d
                before: Counts {
                    instructions: 2,
                    ..Counts::ZERO
                },
                body: loop_body,
                after: disarm,
            },
            WorkloadKind::RrXenProbe => Listing {
                // The count restarts when RESET returns: test rax, rax; jnz fail;
                // the five-instruction IOC_PERIOD call; test rax, rax; jnz fail;
                // xor r15d, r15d.
                before: Counts {
                    instructions: 10,
                    conditional_branches: 2,
                    branches: 2,
                    ..Counts::ZERO
                },
                body: loop_body,
                after: disarm,
            },
            WorkloadKind::PageTouch => Listing {
                // mov r14, rax; xor r15d, r15d
                before: Counts {
                    instructions: 2,
                    ..Counts::ZERO
                },
                // mov byte ptr [rbx], 1; add rbx, 4096; then the loop body.
                body: Counts {
                    instructions: 6,
                    page_faults: 1,
                    ..loop_body
                },
                after: disarm,
            },
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A workload with its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// The value of the kind's [`WorkloadKind::size_parameter`].
    pub size: u64,
}

impl Workload {
    /// How many times the loop body runs.
    pub fn iterations(&self) -> u64 {
        match self.kind {
            WorkloadKind::RrXenProbe => self.size - 2,
            WorkloadKind::BranchLoop | WorkloadKind::PageTouch => self.size,
        }
    }

    /// Everything one window retires, derived from the listing.
    pub fn counts(&self) -> Counts {
        let listing = self.kind.listing();
        listing.before + listing.body * self.iterations() + listing.after
    }

    /// The value of a formula variable: a [`Quantity`], `iterations`, or the
    /// kind's size parameter.
    pub fn variable(&self, name: &str) -> Option<u64> {
        if name == self.kind.size_parameter() {
            return Some(self.size);
        }
        if name == "iterations" {
            return Some(self.iterations());
        }
        Quantity::from_name(name).map(|q| self.counts().get(q))
    }

    /// Every variable a formula over this workload may use.
    pub fn variable_names(&self) -> Vec<&'static str> {
        let mut names = vec![self.kind.size_parameter(), "iterations"];
        names.extend(Quantity::ALL.iter().map(|q| q.name()));
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", self.kind, self.size, self.kind.size_parameter())
    }
}

/// Things a window retires that an event can count exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantity {
    Instructions,
    ConditionalBranches,
    Branches,
    MarkerHits,
    PageFaults,
}

impl Quantity {
    pub const ALL: [Quantity; 5] = [
        Quantity::Instructions,
        Quantity::ConditionalBranches,
        Quantity::Branches,
        Quantity::MarkerHits,
        Quantity::PageFaults,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quantity::Instructions => "instructions",
            Quantity::ConditionalBranches => "conditional_branches",
            Quantity::Branches => "branches",
            Quantity::MarkerHits => "marker_hits",
            Quantity::PageFaults => "page_faults",
        }
    }

    pub fn from_name(name: &str) -> Option<Quantity> {
        Quantity::ALL.into_iter().find(|q| q.name() == name)
    }
}

/// Retired user-mode events, per line of a listing or per window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub instructions: u64,
    pub conditional_branches: u64,
    /// All retired branches, conditional or not.
    pub branches: u64,
    pub marker_hits: u64,
    pub page_faults: u64,
}

impl Counts {
    pub const ZERO: Counts = Counts {
        instructions: 0,
        conditional_branches: 0,
        branches: 0,
        marker_hits: 0,
        page_faults: 0,
    };

    pub fn get(&self, quantity: Quantity) -> u64 {
        match quantity {
            Quantity::Instructions => self.instructions,
            Quantity::ConditionalBranches => self.conditional_branches,
            Quantity::Branches => self.branches,
            Quantity::MarkerHits => self.marker_hits,
            Quantity::PageFaults => self.page_faults,
        }
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
        }
    }
}

/// A window's shape: what runs once before the loop, once per iteration, and
/// once after it, up to and including the disarming `syscall`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    pub before: Counts,
    pub body: Counts,
    pub after: Counts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rr_probe_retires_exactly_its_branch_count() {
        // rr's check: 500 user conditional branches, of which 498 are loop back-edges.
        let rr = Workload {
            kind: WorkloadKind::RrXenProbe,
            size: 500,
        };
        assert_eq!(rr.iterations(), 498);
        assert_eq!(rr.counts().conditional_branches, 500);
        assert_eq!(rr.counts().marker_hits, 498);
        assert_eq!(rr.variable("branches"), Some(500));
    }

    #[test]
    fn branch_loop_counts_follow_the_listing() {
        let w = Workload {
            kind: WorkloadKind::BranchLoop,
            size: 1000,
        };
        assert_eq!(w.counts().conditional_branches, 1000);
        assert_eq!(w.counts().instructions, 4 * 1000 + 7);
        assert_eq!(w.variable("marker_hits"), Some(1000));
        assert_eq!(w.variable("pages"), None);
    }

    #[test]
    fn page_touch_faults_once_per_page() {
        let w = Workload {
            kind: WorkloadKind::PageTouch,
            size: 64,
        };
        assert_eq!(w.counts().page_faults, 64);
        assert_eq!(w.variable("pages"), Some(64));
    }
}
