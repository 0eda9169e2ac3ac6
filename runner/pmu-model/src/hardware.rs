//! The model as the probe kernel's checks see a machine: CPUID, MSRs, the
//! LVT entry, PMIs, and the WRMSR-bracketed window, all over [`Pmu`].

use pmu_kernel_checks::hardware::Yield;
use pmu_kernel_checks::window::{LISTING, WindowArgs};
use pmu_kernel_checks::{Fault, Hardware};

use crate::config::{Config, Vendor};
use crate::machine::{Interrupts, Machine, NoDriver};
use crate::pmu::Pmu;
use crate::program::{Op, Program};

pub struct ModelHardware {
    pub machine: Machine,
}

impl ModelHardware {
    pub fn new(config: Config) -> ModelHardware {
        ModelHardware {
            machine: Machine::new(Pmu::new(config)),
        }
    }

    fn config(&self) -> &Config {
        &self.machine.pmu.config
    }
}

/// A 12-byte signature as (EBX, ECX, EDX), or for vendors (EBX, EDX, ECX).
fn words(s: &str) -> [u32; 3] {
    let mut b = [0u8; 12];
    b[..s.len().min(12)].copy_from_slice(&s.as_bytes()[..s.len().min(12)]);
    let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    [w(0), w(4), w(8)]
}

impl Hardware for ModelHardware {
    fn cpuid(&mut self, leaf: u32, _subleaf: u32) -> [u32; 4] {
        let c = self.config();
        let intel = c.vendor == Vendor::Intel;
        match leaf {
            0 => {
                let [b, d, cx] = words(if intel { "GenuineIntel" } else { "AuthenticAMD" });
                [if intel { 0x16 } else { 0x10 }, b, cx, d]
            }
            // HLE (EBX bit 4) and RTM (bit 11).
            7 if c.tsx => [0, 1 << 4 | 1 << 11, 0, 0],
            1 => {
                let hypervisor = if c.hypervisor.is_some() { 1 << 31 } else { 0 };
                let pdcm = if intel && c.full_width_writes { 1 << 15 } else { 0 };
                [c.signature, 0, hypervisor | pdcm, 0]
            }
            0xa if intel => [
                u32::from(c.version) | u32::from(c.gp) << 8 | u32::from(c.width) << 16 | 7 << 24,
                0,
                0,
                u32::from(c.fixed) | u32::from(c.fixed_width) << 5,
            ],
            0x4000_0000 => match c.hypervisor {
                Some(sig) => {
                    let [b, cx, d] = words(sig);
                    [0x4000_0001, b, cx, d]
                }
                None => [0; 4],
            },
            0x8000_0000 => [if intel { 0x8000_0008 } else { 0x8000_0022 }, 0, 0, 0],
            0x8000_0001 if !intel => [c.signature, 0, if c.gp >= 6 { 1 << 23 } else { 0 }, 0],
            0x8000_0022 if !intel => [u32::from(c.perfmon_v2), u32::from(c.gp), 0, 0],
            _ => [0; 4],
        }
    }

    fn rdmsr(&mut self, msr: u32) -> Result<u64, Fault> {
        self.machine.pmu.rdmsr(msr)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), Fault> {
        self.machine.pmu.wrmsr(msr, value)
    }

    fn rdpmc(&mut self, index: u32) -> Result<u64, Fault> {
        self.machine.pmu.rdpmc(index)
    }

    fn lvtpc(&mut self) -> u32 {
        self.machine.pmu.lvtpc()
    }

    fn set_lvtpc(&mut self, value: u32) {
        self.machine.pmu.set_lvtpc(value);
    }

    fn pmis(&mut self) -> u64 {
        self.machine.pmu.delivered
    }

    fn wait_for_pmi(&mut self, _spins: u32) -> u64 {
        self.machine.pmu.take_pmis();
        self.machine.pmu.delivered
    }

    fn nmis(&mut self) -> u64 {
        self.machine.pmu.nmis
    }

    fn wait_for_nmi(&mut self, _spins: u32) -> u64 {
        self.machine.pmu.nmis
    }

    fn deschedule(&mut self, _rounds: u32) -> Yield {
        self.machine.pmu.deschedule();
        Yield::Model
    }

    fn run_window(&mut self, args: &WindowArgs) {
        let mut program = Program::default();
        program
            .op(Op::Wrmsr {
                msr: args.msr,
                value: args.enable,
            })
            .run(LISTING.before, true, 1)
            .run(LISTING.body, true, args.iterations)
            .run(LISTING.after, true, 1)
            .op(Op::Wrmsr {
                msr: args.msr,
                value: args.disable,
            });
        self.machine.run(&program, Interrupts::Held, &mut NoDriver);
    }
}
