//! The local APIC, in x2APIC mode where CPUID offers it, else xAPIC MMIO.
//!
//! What the checks need from it is the LVT performance-counter entry (xAPIC
//! offset 0x340, x2APIC MSR 0x834; SDM Vol. 3A §11.5.1) on
//! [`PMI_VECTOR`], fixed delivery, unmasked, and an EOI after each PMI. The
//! rest is set so that nothing else interrupts: TPR 0, the timer, LINT0 and
//! the error entry masked, the APIC software-enabled through the spurious
//! vector register.
//!
//! x2APIC registers are MSRs 0x800 + offset / 16 (SDM Vol. 3A §11.12.1.2);
//! xAPIC registers are 32-bit MMIO at the base IA32_APIC_BASE gives, which
//! [`crate::pvh`] maps uncacheable.

use core::sync::atomic::{AtomicU64, Ordering};

use pmu_kernel_checks::hardware::PMI_VECTOR;

use crate::msr;

const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_APIC_BASE bit 11: the APIC is enabled.
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bit 10: x2APIC mode.
const APIC_EXTD: u64 = 1 << 10;
/// CPUID.01H:ECX[21].
const CPUID_X2APIC: u32 = 1 << 21;

/// Register offsets (xAPIC MMIO).
pub mod reg {
    pub const ID: u32 = 0x20;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xb0;
    pub const SVR: u32 = 0xf0;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_PMC: u32 = 0x340;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_ERROR: u32 = 0x370;
}

/// LVT bit 16.
pub const LVT_MASKED: u32 = 1 << 16;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// 0 before [`init`], 1 in x2APIC mode, else the xAPIC MMIO base.
static MODE: AtomicU64 = AtomicU64::new(0);
const X2APIC: u64 = 1;

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    X2apic,
    Xapic { base: u64 },
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::X2apic => "x2apic",
            Mode::Xapic { .. } => "xapic",
        }
    }
}

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        0 => crate::exit::fatal(format_args!("the local APIC was used before it was set up")),
        X2APIC => Mode::X2apic,
        base => Mode::Xapic { base },
    }
}

pub fn read(offset: u32) -> u32 {
    match mode() {
        Mode::X2apic => msr::read_or_die(0x800 + (offset >> 4)) as u32,
        // SAFETY: the xAPIC page is identity-mapped, uncacheable, and these
        // registers are 32-bit aligned.
        Mode::Xapic { base } => unsafe { core::ptr::read_volatile((base + u64::from(offset)) as *const u32) },
    }
}

pub fn write(offset: u32, value: u32) {
    match mode() {
        Mode::X2apic => msr::write_or_die(0x800 + (offset >> 4), u64::from(value)),
        // SAFETY: as for `read`.
        Mode::Xapic { base } => unsafe { core::ptr::write_volatile((base + u64::from(offset)) as *mut u32, value) },
    }
}

/// Ends the interrupt in service. The only LAPIC access an interrupt handler makes.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// Enables the APIC (x2APIC where offered) and programs the LVT.
pub fn init() -> Mode {
    let x2apic = crate::cpuid::cpuid(1, 0)[2] & CPUID_X2APIC != 0;
    let mut base = msr::read_or_die(IA32_APIC_BASE);
    // xAPIC to x2APIC goes through "enabled" (SDM Vol. 3A §11.12.5: EN=0,
    // EXTD=1 is invalid and raises #GP).
    if base & APIC_GLOBAL_ENABLE == 0 {
        base |= APIC_GLOBAL_ENABLE;
        msr::write_or_die(IA32_APIC_BASE, base);
    }
    let mode = if x2apic {
        if base & APIC_EXTD == 0 {
            msr::write_or_die(IA32_APIC_BASE, base | APIC_EXTD);
        }
        MODE.store(X2APIC, Ordering::Relaxed);
        Mode::X2apic
    } else {
        let mmio = base & 0x000f_ffff_ffff_f000;
        if mmio >= 1 << 32 {
            crate::exit::fatal(format_args!(
                "the xAPIC page {mmio:#x} is above the 4 GiB this kernel maps"
            ));
        }
        MODE.store(mmio, Ordering::Relaxed);
        Mode::Xapic { base: mmio }
    };
    write(reg::TPR, 0);
    write(reg::SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(reg::LVT_TIMER, LVT_MASKED);
    write(reg::LVT_LINT0, LVT_MASKED);
    write(reg::LVT_ERROR, LVT_MASKED);
    // Fixed delivery (bits 10:8 = 000), unmasked.
    write(reg::LVT_PMC, u32::from(PMI_VECTOR));
    mode
}

/// ICR delivery mode NMI (bits 10:8 = 100b) with the level bit 14 set, which
/// every mode but INIT de-assert needs (SDM Vol. 3A §11.6.1).
const ICR_NMI: u32 = 0b100 << 8 | 1 << 14;

/// Sends this CPU an NMI through the ICR, addressed by its own APIC ID (the
/// "self" shorthand is valid for fixed delivery only: SDM Vol. 3A Table
/// 11-3). For the boot's self-test of the NMI path.
pub fn send_self_nmi() {
    match mode() {
        Mode::X2apic => {
            // x2APIC: one 64-bit ICR write, the destination in bits 63:32
            // (SDM Vol. 3A §11.12.9); the ID register holds the whole ID.
            let id = msr::read_or_die(0x800 + (reg::ID >> 4));
            msr::write_or_die(0x800 + (reg::ICR_LOW >> 4), id << 32 | u64::from(ICR_NMI));
        }
        Mode::Xapic { .. } => {
            // xAPIC: the ID in bits 31:24; writing the low word sends.
            let id = read(reg::ID) >> 24;
            write(reg::ICR_HIGH, id << 24);
            write(reg::ICR_LOW, ICR_NMI);
        }
    }
}
