//! The Linux probe's windows as programs for the reference model.
//!
//! Each is laid out from the same listing the real window is held to, with
//! the perf operations (arm, reset, period, disarm) where the window's
//! ioctls make them, and a syscall's kernel-mode entry before each, during
//! which a pending PMI can fire, as on real hardware.

use pmu_kernel_checks::listing::Counts;
use pmu_model::program::{Op, Program};

use crate::vocabulary::ProbeKind;
use crate::workload::{Workload, WorkloadKind};

/// rr's probe splits its listing's `before` at the IOC_PERIOD syscall:
/// test, jnz, four instructions and the syscall; then test, jnz, xor.
const RR_BEFORE_PERIOD: Counts = Counts {
    instructions: 7,
    conditional_branches: 1,
    branches: 1,
    ..Counts::ZERO
};
const RR_AFTER_PERIOD: Counts = Counts {
    instructions: 3,
    conditional_branches: 1,
    branches: 1,
    ..Counts::ZERO
};
/// Before RESET: keeping the arm's result, and the RESET call.
const RR_BEFORE_RESET: Counts = Counts {
    instructions: 6,
    ..Counts::ZERO
};

/// The window for `workload`; `syscall` is a syscall's kernel-mode entry, in instructions.
pub fn linux_window(workload: &Workload, syscall: u32) -> Program {
    let listing = workload
        .kind
        .listing(ProbeKind::Linux)
        .expect("every workload has a linux window");
    let mut p = Program::default();
    p.op(Op::Arm).kernel(syscall);
    match workload.kind {
        WorkloadKind::RrXenProbe => {
            p.run(RR_BEFORE_RESET, false, 1).kernel(syscall).op(Op::Reset);
            p.run(RR_BEFORE_PERIOD, false, 1).kernel(syscall).op(Op::Period);
            p.run(RR_AFTER_PERIOD, false, 1);
        }
        _ => {
            p.run(listing.before, false, 1);
        }
    }
    p.run(listing.body, false, workload.iterations())
        .run(listing.after, false, 1)
        .kernel(syscall)
        .op(Op::Disarm);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rr_probes_split_listing_adds_up() {
        let listing = WorkloadKind::RrXenProbe.listing(ProbeKind::Linux).unwrap();
        assert_eq!(RR_BEFORE_PERIOD + RR_AFTER_PERIOD, listing.before);
    }

    #[test]
    fn programs_retire_what_the_listing_says() {
        for kind in WorkloadKind::ALL {
            let w = Workload { kind, size: 50 };
            let mut expected = w.counts(ProbeKind::Linux).unwrap();
            expected.marker_hits = 0;
            if kind == WorkloadKind::RrXenProbe {
                // What runs before RESET is counted, then reset away.
                expected.instructions += RR_BEFORE_RESET.instructions;
            }
            assert_eq!(linux_window(&w, 10).user_totals(), expected, "{kind}");
        }
    }
}
