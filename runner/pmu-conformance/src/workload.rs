//! Workloads: the fixed programs that run inside a counting window, and exactly
//! what each one retires under each probe.
//!
//! This file is the single source of truth for workload counts. The Linux
//! probe's inline-asm windows (`probe/linux/windows.rs`) and the probe
//! kernel's window (`pmu_kernel_checks::window`) match their [`Listing`]s line
//! for line, and tests decode their machine code to hold them to it; the
//! reference model replays the same listings. Case expectations are formulas
//! over the [`Quantity`] names defined here, so a case never hard-codes a
//! number the workload could contradict.

use std::fmt;

pub use pmu_kernel_checks::listing::{Counts, Listing};

use crate::vocabulary::ProbeKind;

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
    /// `iterations` passes of a loop that runs CPUID twice with a conditional
    /// branch between them (rr's VMware probe shape): each CPUID exits to the
    /// hypervisor in a guest.
    CpuidLoop,
    /// The branch loop with a second conditional branch per pass that is
    /// never taken: all conditional branches (COND) are 2 × iterations, the
    /// taken ones (COND_TAKEN) iterations − 1, so a count of the one where
    /// the other is meant cannot pass for a small miscount (rr #2610).
    UntakenBranchLoop,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 5] = [
        WorkloadKind::BranchLoop,
        WorkloadKind::RrXenProbe,
        WorkloadKind::PageTouch,
        WorkloadKind::CpuidLoop,
        WorkloadKind::UntakenBranchLoop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::BranchLoop => "branch-loop",
            WorkloadKind::RrXenProbe => "rr-xen-probe",
            WorkloadKind::PageTouch => "page-touch",
            WorkloadKind::CpuidLoop => "cpuid-loop",
            WorkloadKind::UntakenBranchLoop => "untaken-branch-loop",
        }
    }

    pub fn from_name(name: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The one size parameter each kind takes in YAML.
    pub fn size_parameter(self) -> &'static str {
        match self {
            WorkloadKind::BranchLoop | WorkloadKind::CpuidLoop | WorkloadKind::UntakenBranchLoop => "iterations",
            WorkloadKind::RrXenProbe => "branches",
            WorkloadKind::PageTouch => "pages",
        }
    }

    /// The smallest size the listing can express: the loops are do-while
    /// loops, and rr's probe spends two branches on its return checks.
    pub fn minimum_size(self) -> u64 {
        match self {
            WorkloadKind::RrXenProbe => 3,
            WorkloadKind::BranchLoop
            | WorkloadKind::PageTouch
            | WorkloadKind::CpuidLoop
            | WorkloadKind::UntakenBranchLoop => 1,
        }
    }

    /// What this kind's window retires under `probe`, counting from the
    /// instruction after the one that starts the count to the one that stops
    /// it; `None` where the probe has no such window.
    pub fn listing(self, probe: ProbeKind) -> Option<Listing> {
        match probe {
            ProbeKind::Linux => Some(self.linux_listing()),
            ProbeKind::Kernel => (self == WorkloadKind::BranchLoop).then_some(pmu_kernel_checks::window::LISTING),
        }
    }

    /// The Linux probe's window, in user mode, from the first instruction
    /// after the arming ioctl returns to the disarming `syscall`.
    fn linux_listing(self) -> Listing {
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
            ..Counts::ZERO
        };
        // mov [rbx + 48], rax; xor r15d, r15d
        let begin = Counts {
            instructions: 2,
            ..Counts::ZERO
        };
        match self {
            WorkloadKind::BranchLoop => Listing {
                before: begin,
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
                before: begin,
                // mov byte ptr [r14], 1; add r14, 4096; then the loop body.
                body: Counts {
                    instructions: 6,
                    page_faults: 1,
                    ..loop_body
                },
                after: disarm,
            },
            WorkloadKind::UntakenBranchLoop => Listing {
                before: begin,
                // inc r15; marker: nop; test r15, r15; jz (never taken); cmp r15, r13; jne
                body: Counts {
                    instructions: 6,
                    conditional_branches: 2,
                    branches: 2,
                    ..loop_body
                },
                after: disarm,
            },
            WorkloadKind::CpuidLoop => Listing {
                before: begin,
                // xor eax, eax; cpuid; test eax, eax; jz (never taken); mov eax, 1;
                // cpuid; then the loop body.
                body: Counts {
                    instructions: 10,
                    conditional_branches: 2,
                    branches: 2,
                    vm_exits: 2,
                    branches_between_cpuids: 1,
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

/// What the branch loop's rdpmc variant adds after its loop, before the
/// disarm: the seqlock, index and offset loads, rdpmc and the seqlock again,
/// 11 instructions and no branch. A count read with rdpmc is taken at the
/// rdpmc, so only its branches matter to the cases; the trace holds all of it.
pub const RDPMC_READ: Counts = Counts {
    instructions: 11,
    ..Counts::ZERO
};

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
            WorkloadKind::BranchLoop
            | WorkloadKind::PageTouch
            | WorkloadKind::CpuidLoop
            | WorkloadKind::UntakenBranchLoop => self.size,
        }
    }

    /// The conditional branches the window takes: every loop's back-edge on
    /// all passes but the last; every other conditional branch in the
    /// windows is a check that is never taken (rr's ioctl checks, the CPUID
    /// loop's `jz`, the untaken loop's guard). What an encoding that counts
    /// COND_TAKEN counts; the trace holds it to the code.
    pub fn taken_conditional_branches(&self) -> u64 {
        self.iterations().saturating_sub(1)
    }

    /// Everything one window retires under `probe`, from its listing.
    pub fn counts(&self, probe: ProbeKind) -> Option<Counts> {
        self.kind.listing(probe).map(|l| l.total(self.iterations()))
    }

    /// [`Workload::counts`], or `None` where a count would overflow 64 bits
    /// (or the probe has no such window): what validation checks first.
    pub fn checked_counts(&self, probe: ProbeKind) -> Option<Counts> {
        self.kind.listing(probe)?.checked_total(self.iterations())
    }

    /// The value of a formula variable under `probe`: a [`Quantity`],
    /// `iterations`, or the kind's size parameter.
    pub fn variable(&self, name: &str, probe: ProbeKind) -> Option<u64> {
        self.size_variable(name).or_else(|| {
            let q = Quantity::from_name(name)?;
            self.counts(probe).map(|c| q.of(&c))
        })
    }

    /// The value of a formula variable when the window retired `counts`
    /// (a traced window's, say), not what its listing says.
    pub fn variable_in(&self, name: &str, counts: &Counts) -> Option<u64> {
        self.size_variable(name)
            .or_else(|| Quantity::from_name(name).map(|q| q.of(counts)))
    }

    /// `iterations` or the kind's size parameter, which no count changes.
    fn size_variable(&self, name: &str) -> Option<u64> {
        if name == self.kind.size_parameter() {
            Some(self.size)
        } else if name == "iterations" {
            Some(self.iterations())
        } else {
            None
        }
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

    /// This quantity in a window's counts.
    pub fn of(self, c: &Counts) -> u64 {
        match self {
            Quantity::Instructions => c.instructions,
            Quantity::ConditionalBranches => c.conditional_branches,
            Quantity::Branches => c.branches,
            Quantity::MarkerHits => c.marker_hits,
            Quantity::PageFaults => c.page_faults,
        }
    }
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
        let counts = rr.counts(ProbeKind::Linux).unwrap();
        assert_eq!((counts.conditional_branches, counts.marker_hits), (500, 498));
        assert_eq!(rr.variable("branches", ProbeKind::Linux), Some(500));
        assert_eq!(rr.counts(ProbeKind::Kernel), None, "the probe kernel has no rr window");
    }

    #[test]
    fn branch_loop_counts_follow_the_listing() {
        let w = Workload {
            kind: WorkloadKind::BranchLoop,
            size: 1000,
        };
        let linux = w.counts(ProbeKind::Linux).unwrap();
        assert_eq!((linux.conditional_branches, linux.instructions), (1000, 4 * 1000 + 7));
        assert_eq!(w.variable("marker_hits", ProbeKind::Linux), Some(1000));
        assert_eq!(w.variable("pages", ProbeKind::Linux), None);
        // Between two WRMSRs, with the stopping one counted.
        assert_eq!(w.variable("instructions", ProbeKind::Kernel), Some(4 * 1000 + 4));
    }

    #[test]
    fn page_touch_faults_once_per_page() {
        let w = Workload {
            kind: WorkloadKind::PageTouch,
            size: 64,
        };
        assert_eq!(w.counts(ProbeKind::Linux).unwrap().page_faults, 64);
        assert_eq!(w.variable("pages", ProbeKind::Linux), Some(64));
    }

    #[test]
    fn the_cpuid_loop_exits_twice_per_pass_around_one_branch() {
        let w = Workload {
            kind: WorkloadKind::CpuidLoop,
            size: 100,
        };
        let c = w.counts(ProbeKind::Linux).unwrap();
        assert_eq!(
            (c.vm_exits, c.conditional_branches, c.branches_between_cpuids),
            (200, 200, 100)
        );
    }
}
