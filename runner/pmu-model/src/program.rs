//! Programs: what the modelled CPU retires, instruction by instruction, and
//! where the drivers' operations (syscalls, WRMSRs) fall between them.
//!
//! A program is built from a window's [`Listing`]: the same listing the real
//! window is checked against, so the model and the machine code agree on
//! every count by construction.

use pmu_kernel_checks::listing::Counts;

/// One retired instruction, and the events it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Instr {
    /// Retires at CPL0 (counted by OS, not USR, event selects).
    pub kernel: bool,
    pub cond_branch: bool,
    /// Any branch, conditional or not.
    pub branch: bool,
    /// Exits to the hypervisor (CPUID, an intercepted WRMSR).
    pub vm_exit: bool,
    /// A conditional branch between two CPUIDs.
    pub between_cpuids: bool,
    /// Takes a page fault before it retires (its iret adds a user instruction and branch).
    pub page_fault: bool,
}

impl Instr {
    pub const USER: Instr = Instr {
        kernel: false,
        cond_branch: false,
        branch: false,
        vm_exit: false,
        between_cpuids: false,
        page_fault: false,
    };
    pub const KERNEL: Instr = Instr {
        kernel: true,
        ..Instr::USER
    };
}

/// An operation a driver performs at a point in the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The arming ioctl (ENABLE, or REFRESH) takes effect.
    Arm,
    /// PERF_EVENT_IOC_RESET takes effect.
    Reset,
    /// PERF_EVENT_IOC_PERIOD takes effect.
    Period,
    /// The disarming ioctl (DISABLE) takes effect.
    Disarm,
    /// A WRMSR takes effect (the probe kernel's bracket).
    Wrmsr { msr: u32, value: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `block`, retired `repeat` times.
    Run {
        block: Vec<Instr>,
        repeat: u64,
    },
    Op(Op),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program(pub Vec<Step>);

impl Program {
    pub fn run(&mut self, counts: Counts, kernel: bool, repeat: u64) -> &mut Program {
        if repeat > 0 && counts.instructions > 0 {
            self.0.push(Step::Run {
                block: block(counts, kernel),
                repeat,
            });
        }
        self
    }

    pub fn op(&mut self, op: Op) -> &mut Program {
        self.0.push(Step::Op(op));
        self
    }

    /// `n` kernel-mode instructions: a syscall's entry or exit.
    pub fn kernel(&mut self, n: u32) -> &mut Program {
        self.run(
            Counts {
                instructions: u64::from(n),
                ..Counts::ZERO
            },
            true,
            1,
        )
    }

    /// Everything the program retires in user mode, for tests against listings.
    pub fn user_totals(&self) -> Counts {
        self.user_segments().into_iter().fold(Counts::ZERO, |a, b| a + b)
    }

    /// What the program retires in user mode between kernel-mode stretches
    /// (a syscall's entry), one entry per stretch: what a trace of the real
    /// window sees between its syscalls.
    pub fn user_segments(&self) -> Vec<Counts> {
        let mut segments = Vec::new();
        let mut current: Option<Counts> = None;
        for step in &self.0 {
            let Step::Run { block, repeat } = step else { continue };
            if block.iter().all(|i| i.kernel) {
                segments.extend(current.take());
                continue;
            }
            for i in block.iter().filter(|i| !i.kernel) {
                current = Some(current.unwrap_or(Counts::ZERO) + i.counts() * *repeat);
            }
        }
        segments.extend(current);
        segments
    }
}

impl Instr {
    /// This instruction as counts (marker hits are not modelled).
    pub fn counts(&self) -> Counts {
        Counts {
            instructions: 1,
            conditional_branches: u64::from(self.cond_branch),
            branches: u64::from(self.branch),
            page_faults: u64::from(self.page_fault),
            vm_exits: u64::from(self.vm_exit),
            branches_between_cpuids: u64::from(self.between_cpuids),
            marker_hits: 0,
        }
    }
}

/// Lays out a listing part as instructions: faulting ones first, then plain
/// ones, exiting ones, and branches last (loops end in their back-edge; the
/// kernel window's tail ends in its stopping WRMSR).
pub fn block(c: Counts, kernel: bool) -> Vec<Instr> {
    let base = if kernel { Instr::KERNEL } else { Instr::USER };
    let mut out = Vec::with_capacity(c.instructions as usize);
    let mut push = |n: u64, i: Instr| out.extend(std::iter::repeat_n(i, n as usize));
    let branches = c.branches.max(c.conditional_branches);
    let special = c.page_faults + c.vm_exits + branches;
    push(
        c.page_faults,
        Instr {
            page_fault: true,
            ..base
        },
    );
    push(c.instructions.saturating_sub(special), base);
    push(c.vm_exits, Instr { vm_exit: true, ..base });
    push(branches - c.conditional_branches, Instr { branch: true, ..base });
    push(
        c.branches_between_cpuids,
        Instr {
            branch: true,
            cond_branch: true,
            between_cpuids: true,
            ..base
        },
    );
    push(
        c.conditional_branches - c.branches_between_cpuids,
        Instr {
            branch: true,
            cond_branch: true,
            ..base
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_every_count_of_their_listing_part() {
        let c = Counts {
            instructions: 10,
            conditional_branches: 2,
            branches: 2,
            vm_exits: 2,
            branches_between_cpuids: 1,
            marker_hits: 1,
            ..Counts::ZERO
        };
        let mut p = Program::default();
        p.run(c, false, 3);
        assert_eq!(
            p.user_totals(),
            Counts {
                marker_hits: 0,
                ..c * 3
            }
        );
        let b = block(c, false);
        assert!(b.last().unwrap().cond_branch, "the back-edge comes last");
    }
}
