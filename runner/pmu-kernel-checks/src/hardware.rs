//! What a kernel check may do to the machine, and nothing more.
//!
//! The probe kernel implements this over the real instructions (with #GP
//! caught, never fatal); the reference model implements it over its state.
//! Interrupts are off except inside [`Hardware::wait_for_pmi`], so a PMI
//! raised by a window is latched in the LAPIC until a check opens an
//! interrupt window, as in kvm-unit-tests.

/// The vector the PMI is delivered on (fixed delivery mode), as kvm-unit-tests uses.
pub const PMI_VECTOR: u8 = 32;

/// LVT bit 16: the entry is masked (SDM Vol. 3A 11.5.1).
pub const LVT_MASK: u32 = 1 << 16;

/// LVT delivery mode NMI, bits 10:8 = 100b (SDM Vol. 3A 11.5.1): the vector
/// field is ignored. Linux and rr program the LVT performance-counter entry
/// this way (`apic_write(APIC_LVTPC, APIC_DM_NMI)`, arch/x86/events/core.c).
pub const LVT_NMI: u32 = 0b100 << 8;

/// How a check gave the CPU back to the hypervisor ([`Hardware::deschedule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Yield {
    /// Xen's `SCHEDOP_yield` hypercall (xen/include/public/sched.h): the
    /// scheduler may run another vCPU, and Xen's vPMU saves and reloads the
    /// guest's state around it (vpmu.c `vpmu_save`, `vpmu_load`).
    XenSchedYield,
    /// An OUT to port 0x80, which no hypervisor handles in its kernel: KVM
    /// returns to the VMM's user space (QEMU) for it, and the vCPU thread
    /// leaves and re-enters the guest. On bare metal it is a POST code write.
    PortExit,
    /// The reference model's context switch.
    Model,
}

impl Yield {
    pub fn name(self) -> &'static str {
        match self {
            Yield::XenSchedYield => "Xen SCHEDOP_yield",
            Yield::PortExit => "OUT to port 0x80 (an exit to the VMM's user space)",
            Yield::Model => "the model's context switch",
        }
    }
}

/// An exception an instruction raised instead of completing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// 13 for #GP, 6 for #UD.
    pub vector: u8,
}

impl Fault {
    pub const GP: Fault = Fault { vector: 13 };
}

pub trait Hardware {
    /// CPUID, as this guest sees it.
    fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4];

    /// RDMSR, with a #GP caught and returned.
    fn rdmsr(&mut self, msr: u32) -> Result<u64, Fault>;

    /// WRMSR, with a #GP caught and returned.
    fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), Fault>;

    /// RDPMC with ECX = `index` (Intel: bit 30 selects the fixed counters,
    /// bit 31 asks for a fast 32-bit read), with a #GP or #UD caught and
    /// returned.
    fn rdpmc(&mut self, index: u32) -> Result<u64, Fault>;

    /// The LVT performance-counter entry (xAPIC offset 0x340, x2APIC MSR 0x834).
    fn lvtpc(&mut self) -> u32;

    fn set_lvtpc(&mut self, value: u32);

    /// PMIs taken on [`PMI_VECTOR`] since boot. The handler only counts and
    /// signals EOI; it leaves the LVT, the counters and GLOBAL_STATUS alone,
    /// so a check sees the PMU exactly as the PMI left it.
    fn pmis(&mut self) -> u64;

    /// Opens an interrupt window: enables interrupts, waits up to `spins`
    /// PAUSE iterations or until a PMI is taken, disables them again.
    /// Returns [`Hardware::pmis`].
    fn wait_for_pmi(&mut self, spins: u32) -> u64;

    /// Runs the counted window ([`crate::window`]) with interrupts disabled.
    fn run_window(&mut self, args: &crate::window::WindowArgs);

    /// NMIs taken since boot, a PMI in NMI delivery mode among them. The
    /// handler only counts (an NMI needs no EOI) and leaves the LVT alone.
    fn nmis(&mut self) -> u64;

    /// Spins up to `spins` PAUSE iterations, interrupts still off (an NMI
    /// needs no interrupt window), or until an NMI is taken. Returns
    /// [`Hardware::nmis`].
    fn wait_for_nmi(&mut self, spins: u32) -> u64;

    /// Gives the CPU back to the hypervisor `rounds` times, interrupts still
    /// off, so that it can switch this vCPU out and back in; says how.
    fn deschedule(&mut self, rounds: u32) -> Yield;
}
