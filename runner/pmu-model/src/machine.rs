//! Runs a program on the PMU, handing operations and PMIs to a driver.
//!
//! Long loops are not stepped one instruction at a time: while no PMI is
//! pending and nothing can strike by chance, whole passes of a block are
//! applied at once, up to the pass in which some counter would wrap or a
//! timer interrupt is due. So a model of ten million loop passes costs about
//! as much as its overflows, which keeps the whole sim matrix fast.

use crate::pmu::{Counter, Pmu};

/// What one pass of a block adds to each counter (see [`Pmu::block_increments`]).
type Increments = Vec<(Counter, u64)>;
use crate::program::{Instr, Op, Program, Step};

/// Whether the guest takes a PMI as soon as it is latched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupts {
    /// Linux user mode: the PMI is an NMI and is taken at once; timer
    /// interrupts come too.
    Taken,
    /// The probe kernel's window: interrupts are off, PMIs stay latched.
    Held,
}

/// What acts on the PMU between instructions.
pub trait Driver {
    /// An operation in the program takes effect.
    fn op(&mut self, pmu: &mut Pmu, op: Op);
    /// The guest took a PMI (only with [`Interrupts::Taken`]).
    fn pmi(&mut self, pmu: &mut Pmu);
}

/// A driver with nothing to do but WRMSRs, which [`Machine::run`] applies itself.
pub struct NoDriver;

impl Driver for NoDriver {
    fn op(&mut self, _: &mut Pmu, _: Op) {}
    fn pmi(&mut self, _: &mut Pmu) {}
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub pmu: Pmu,
    /// User-mode instructions retired, for timer interrupts.
    user_instructions: u64,
}

impl Machine {
    pub fn new(pmu: Pmu) -> Machine {
        Machine {
            pmu,
            user_instructions: 0,
        }
    }

    pub fn run(&mut self, program: &Program, interrupts: Interrupts, driver: &mut dyn Driver) {
        for step in &program.0 {
            match step {
                Step::Op(Op::Wrmsr { msr, value }) => {
                    // The window's bracket was tried before the window ran.
                    let _ = self.pmu.wrmsr(*msr, *value);
                }
                Step::Op(op) => driver.op(&mut self.pmu, *op),
                Step::Run { block, repeat } => self.run_block(block, *repeat, interrupts, driver),
            }
        }
        // The window's code has ended; the kernel runs on and a raised PMI fires.
        self.pmu.fire_pending();
        self.deliver(interrupts, driver);
    }

    fn run_block(&mut self, block: &[Instr], repeat: u64, interrupts: Interrupts, driver: &mut dyn Driver) {
        let user_per_pass = block.iter().filter(|i| !i.kernel).count() as u64;
        let faults_per_pass = block.iter().any(|i| i.page_fault);
        let mut left = repeat;
        // block_increments' answer, kept while the PMU's controls stand still.
        let mut increments: Option<(u64, Option<Increments>)> = None;
        while left > 0 {
            let generation = self.pmu.controls_generation();
            if increments.as_ref().is_none_or(|(g, _)| *g != generation) {
                increments = Some((generation, self.pmu.block_increments(block)));
            }
            let per_pass = increments.as_ref().and_then(|(_, inc)| inc.as_deref());
            if let Some(passes) = self.bulk(
                per_pass,
                block.len() as u64,
                left,
                user_per_pass,
                faults_per_pass,
                interrupts,
            ) {
                left -= passes;
                continue;
            }
            for i in block {
                self.retire(i, interrupts, driver);
            }
            left -= 1;
        }
    }

    /// Applies as many whole passes as are safe to apply at once, if any.
    fn bulk(
        &mut self,
        increments: Option<&[(Counter, u64)]>,
        len: u64,
        left: u64,
        user_per_pass: u64,
        faults: bool,
        interrupts: Interrupts,
    ) -> Option<u64> {
        if faults || (interrupts == Interrupts::Taken && self.pmu.pmi_latched()) {
            return None;
        }
        let increments = increments?;
        let mut passes = left.min(self.pmu.passes_without_event(increments, len));
        if interrupts == Interrupts::Taken && user_per_pass > 0 {
            let every = self.pmu.config.interrupt_every;
            let until_interrupt = every - 1 - self.user_instructions % every;
            passes = passes.min(until_interrupt / user_per_pass);
        }
        if passes == 0 {
            return None;
        }
        self.pmu.apply_passes(increments, passes, len);
        self.user_instructions += passes * user_per_pass;
        Some(passes)
    }

    fn retire(&mut self, i: &Instr, interrupts: Interrupts, driver: &mut dyn Driver) {
        if i.page_fault {
            // The fault is taken first; its return to user mode overcounts.
            self.pmu.return_to_user();
        }
        self.pmu.retire(i);
        if !i.kernel && interrupts == Interrupts::Taken {
            self.user_instructions += 1;
            if self.user_instructions.is_multiple_of(self.pmu.config.interrupt_every) {
                self.pmu.return_to_user();
            }
        }
        self.deliver(interrupts, driver);
    }

    fn deliver(&mut self, interrupts: Interrupts, driver: &mut dyn Driver) {
        if interrupts == Interrupts::Taken {
            while self.pmu.pmi_latched() {
                for _ in 0..self.pmu.take_pmis() {
                    driver.pmi(&mut self.pmu);
                }
            }
        }
    }
}
