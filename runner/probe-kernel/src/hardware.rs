//! The machine the checks run on: `pmu_kernel_checks::Hardware` over the real
//! instructions.
//!
//! Interrupts are off everywhere except inside [`Hardware::wait_for_pmi`],
//! so a PMI raised by a window stays latched in the LAPIC until a check
//! opens an interrupt window, as in kvm-unit-tests' `pmu.c`. Every call
//! first checks the watchdog.

use core::sync::atomic::Ordering;

use pmu_kernel_checks::hardware::Yield;
use pmu_kernel_checks::window::WindowArgs;
use pmu_kernel_checks::{Fault, Hardware};

use crate::exceptions::{NMIS, PMIS};
use crate::lapic::{self, reg};
use crate::{msr, watchdog};

/// Spins between watchdog checks in a PMI wait.
const SPINS_PER_CHECK: u32 = 256;

pub struct Machine;

impl Hardware for Machine {
    fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4] {
        watchdog::check();
        crate::cpuid::cpuid(leaf, subleaf)
    }

    fn rdmsr(&mut self, msr: u32) -> Result<u64, Fault> {
        watchdog::check();
        msr::read(msr)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), Fault> {
        watchdog::check();
        msr::write(msr, value)
    }

    fn rdpmc(&mut self, index: u32) -> Result<u64, Fault> {
        watchdog::check();
        msr::rdpmc(index)
    }

    fn lvtpc(&mut self) -> u32 {
        lapic::read(reg::LVT_PMC)
    }

    fn set_lvtpc(&mut self, value: u32) {
        lapic::write(reg::LVT_PMC, value)
    }

    fn pmis(&mut self) -> u64 {
        PMIS.load(Ordering::Relaxed)
    }

    fn wait_for_pmi(&mut self, spins: u32) -> u64 {
        watchdog::check();
        let before = PMIS.load(Ordering::Relaxed);
        // STI takes effect after the next instruction (SDM Vol. 2B, STI), so
        // the NOP is where a PMI latched before the wait is taken, even with
        // `spins` = 0. No `nomem`: the handler writes PMIS.
        // SAFETY: enables interrupts; every vector has a handler (crate::idt).
        unsafe { core::arch::asm!("sti", "nop", options(nostack)) };
        let mut spun = 0;
        while spun < spins && PMIS.load(Ordering::Relaxed) == before {
            core::hint::spin_loop();
            spun += 1;
            if spun % SPINS_PER_CHECK == 0 {
                watchdog::check();
            }
        }
        // SAFETY: CLI at CPL0.
        unsafe { core::arch::asm!("cli", options(nostack)) };
        PMIS.load(Ordering::Relaxed)
    }

    fn nmis(&mut self) -> u64 {
        NMIS.load(Ordering::Relaxed)
    }

    fn wait_for_nmi(&mut self, spins: u32) -> u64 {
        watchdog::check();
        let before = NMIS.load(Ordering::Relaxed);
        let mut spun = 0;
        while spun < spins && NMIS.load(Ordering::Relaxed) == before {
            core::hint::spin_loop();
            spun += 1;
            if spun % SPINS_PER_CHECK == 0 {
                watchdog::check();
            }
        }
        NMIS.load(Ordering::Relaxed)
    }

    fn deschedule(&mut self, rounds: u32) -> Yield {
        watchdog::check();
        deschedule(rounds)
    }

    fn run_window(&mut self, args: &WindowArgs) {
        watchdog::check();
        // SAFETY: CPL0 with interrupts off; the checks tried both bracketing
        // values with a caught WRMSR first (pmu_kernel_checks::checks::Context::window).
        unsafe { pmu_kernel_checks::window::run(args) }
    }
}

/// Gives the CPU back to the hypervisor `rounds` times: Xen's
/// `SCHEDOP_yield` where the hypercall page is installed, else an OUT to
/// port 0x80, which KVM hands to the VMM's user space.
fn deschedule(rounds: u32) -> Yield {
    let mut how = Yield::PortExit;
    for _ in 0..rounds {
        if crate::xen::sched_yield() {
            how = Yield::XenSchedYield;
        } else {
            crate::port::outb(0x80, 0);
        }
    }
    how
}

/// The boot's self-test of the paths the NMI and deschedule checks take,
/// through the same [`Machine`] methods, which run here even where no PMU
/// exists: an NMI sent to this CPU through its ICR must be taken once by the
/// NMI handler, and one deschedule must return. Says what it saw in one line.
pub fn self_test(out: &mut impl core::fmt::Write) {
    let mut machine = Machine;
    let before = machine.nmis();
    lapic::send_self_nmi();
    let nmis = machine.wait_for_nmi(pmu_kernel_checks::checks::PMI_WAIT_SPINS) - before;
    let how = machine.deschedule(1);
    let _ = writeln!(
        out,
        "probe-kernel: self-test: {nmis} NMI from the ICR; 1 deschedule by {}",
        how.name()
    );
}

/// IA32_SYSENTER_ESP (SDM Vol. 4, table 2-2; APM Vol. 2, 6.1.1): present on
/// every x86-64 CPU and unused by this kernel, so writing back its own value
/// changes nothing. The traced window brackets itself with it instead of a
/// counter's MSR.
const SYSENTER_ESP: u32 = 0x175;

/// Runs the counted window once for a host that traces the guest's
/// instructions (`pmuc.window-trace=`), and says where it starts: the
/// window's code executes here even where no PMU exists.
pub fn run_window_for_trace(passes: u64, out: &mut impl core::fmt::Write) {
    watchdog::check();
    // A caught read and write-back first, so the window's own WRMSRs cannot fault.
    let value = match msr::read(SYSENTER_ESP).and_then(|v| msr::write(SYSENTER_ESP, v).map(|()| v)) {
        Ok(v) => v,
        Err(fault) => {
            let _ = writeln!(
                out,
                "probe-kernel: window trace refused: IA32_SYSENTER_ESP raised vector {}",
                fault.vector
            );
            return;
        }
    };
    let args = WindowArgs {
        msr: SYSENTER_ESP,
        _pad: 0,
        enable: value,
        disable: value,
        iterations: passes,
    };
    // SAFETY: CPL0 with interrupts off; both bracketing writes were tried above.
    unsafe { pmu_kernel_checks::window::run(&args) };
    let _ = writeln!(
        out,
        "probe-kernel: window traced: {passes} passes from {:#x}",
        pmu_kernel_checks::window::entry()
    );
}
