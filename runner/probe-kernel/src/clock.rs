//! The TSC and its rate: what the watchdog measures time with.
//!
//! The watchdog must work with interrupts off, so it compares the TSC with a
//! deadline rather than waiting for a timer interrupt. That needs the TSC's
//! rate, which no single source gives everywhere. In order of trust:
//!
//! 1. the hypervisor's own word: Xen's time leaf (base + 3, subleaf 0, ECX =
//!    TSC kHz; `xen/arch/x86/cpuid.c`), the VMware/KVM timing leaf
//!    0x40000010 (EAX = TSC kHz), or KVM's pvclock (`tsc_to_system_mul` and
//!    `tsc_shift`, Linux `Documentation/virt/kvm/x86/msr.rst`);
//! 2. CPUID.15H, crystal clock × TSC/crystal ratio (SDM Vol. 3B §19.7.3),
//!    where all three numbers are enumerated;
//! 3. 10 ms of PIT channel 2 (gated through port 0x61, as Linux's
//!    `pit_calibrate_tsc`), where a PIT answers (QEMU pc and microvm, bare
//!    metal; not Xen PVH);
//! 4. CPUID.16H's base frequency in MHz (close to the TSC on Intel);
//! 5. otherwise 3 GHz, said so in the banner: a deadline off by a factor of
//!    two still ends a hung guest.

use core::arch::x86_64::_rdtsc;

use crate::cpuid::cpuid;
use crate::hypervisor::Hypervisor;
use crate::port::{inb, outb};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// TSC ticks per second.
    pub hz: u64,
    /// Where `hz` came from, for the banner.
    pub source: &'static str,
}

pub fn now() -> u64 {
    // SAFETY: RDTSC is available at CPL0 (CR4.TSD only restricts CPL3).
    unsafe { _rdtsc() }
}

pub fn calibrate(hv: &Hypervisor) -> Clock {
    let sources: [(&'static str, &dyn Fn() -> Option<u64>); 6] = [
        ("the Xen time leaf", &|| xen_leaf(hv)),
        ("the hypervisor timing leaf", &|| timing_leaf(hv)),
        ("kvmclock", &|| kvmclock(hv)),
        ("CPUID.15H", &cpuid_15h),
        ("the PIT", &pit),
        ("CPUID.16H", &cpuid_16h),
    ];
    for (source, hz) in sources {
        if let Some(hz) = hz().filter(|&hz| hz >= 1_000_000) {
            return Clock { hz, source };
        }
    }
    Clock {
        hz: 3_000_000_000,
        source: "nowhere (assumed)",
    }
}

fn xen_leaf(hv: &Hypervisor) -> Option<u64> {
    let base = hv.xen_leaf?;
    if cpuid(base, 0)[0] < base + 3 {
        return None;
    }
    Some(u64::from(cpuid(base + 3, 0)[2]) * 1000)
}

fn timing_leaf(hv: &Hypervisor) -> Option<u64> {
    let (base, max) = hv.first?;
    (base == 0x4000_0000 && max >= 0x4000_0010).then(|| u64::from(cpuid(0x4000_0010, 0)[0]) * 1000)
}

/// The pvclock page KVM fills when MSR_KVM_SYSTEM_TIME_NEW points at it
/// (`struct pvclock_vcpu_time_info`, 32 bytes, must not cross a page).
#[repr(C, align(64))]
struct PvclockTime {
    version: u32,
    pad0: u32,
    tsc_timestamp: u64,
    system_time: u64,
    tsc_to_system_mul: u32,
    tsc_shift: i8,
    flags: u8,
    pad: [u8; 2],
}

static mut PVCLOCK: PvclockTime = PvclockTime {
    version: 0,
    pad0: 0,
    tsc_timestamp: 0,
    system_time: 0,
    tsc_to_system_mul: 0,
    tsc_shift: 0,
    flags: 0,
    pad: [0; 2],
};

const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
/// KVM_FEATURE_CLOCKSOURCE2, in EAX of KVM's base + 1.
const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;

fn kvmclock(hv: &Hypervisor) -> Option<u64> {
    let base = hv.kvm_leaf?;
    if cpuid(base + 1, 0)[0] & KVM_FEATURE_CLOCKSOURCE2 == 0 {
        return None;
    }
    let page = &raw mut PVCLOCK;
    // Bit 0 enables the updates; KVM writes the structure before the guest
    // runs again.
    crate::msr::write(MSR_KVM_SYSTEM_TIME_NEW, page as u64 | 1).ok()?;
    let mut reading = None;
    for _ in 0..1000 {
        // SAFETY: KVM writes the structure; reads are volatile, and a read is
        // only used when the version was even and unchanged around it.
        let (before, mul, shift, after) = unsafe {
            let before = core::ptr::read_volatile(&raw const (*page).version);
            let mul = core::ptr::read_volatile(&raw const (*page).tsc_to_system_mul);
            let shift = core::ptr::read_volatile(&raw const (*page).tsc_shift);
            let after = core::ptr::read_volatile(&raw const (*page).version);
            (before, mul, shift, after)
        };
        if before == after && before % 2 == 0 && mul != 0 {
            reading = Some((mul, shift));
            break;
        }
        core::hint::spin_loop();
    }
    // Stop KVM writing into our memory from now on.
    let _ = crate::msr::write(MSR_KVM_SYSTEM_TIME_NEW, 0);
    let (mul, shift) = reading?;
    // ns = ((ticks << shift) * mul) >> 32, shifting right for a negative
    // shift, so Hz = 10^9 * 2^32 / (mul * 2^shift).
    let numerator = 1_000_000_000u128 << 32;
    let hz = if shift >= 0 {
        numerator / (u128::from(mul) << shift)
    } else {
        (numerator << -shift) / u128::from(mul)
    };
    u64::try_from(hz).ok()
}

fn cpuid_15h() -> Option<u64> {
    if cpuid(0, 0)[0] < 0x15 {
        return None;
    }
    let [denominator, numerator, crystal_hz, _] = cpuid(0x15, 0);
    (denominator != 0 && numerator != 0 && crystal_hz != 0)
        .then(|| u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator))
}

fn cpuid_16h() -> Option<u64> {
    if cpuid(0, 0)[0] < 0x16 {
        return None;
    }
    Some(u64::from(cpuid(0x16, 0)[0] & 0xffff) * 1_000_000)
}

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// Port 0x61: bit 0 gates channel 2, bit 1 drives the speaker, bit 5 reads
/// channel 2's output.
const PORT_B: u16 = 0x61;
const CALIBRATION_MS: u64 = 10;

fn pit() -> Option<u64> {
    let saved = inb(PORT_B);
    outb(PORT_B, (saved & !0x02) | 0x01);
    // Channel 2, low then high byte, mode 0 (output rises at terminal count), binary.
    outb(PIT_COMMAND, 0xb0);
    let count = PIT_HZ * CALIBRATION_MS / 1000;
    outb(PIT_CHANNEL2, count as u8);
    outb(PIT_CHANNEL2, (count >> 8) as u8);
    let start = now();
    let mut polls = 0u32;
    // Without a PIT the port reads 0xFF, output already "high": no polls.
    while inb(PORT_B) & 0x20 == 0 {
        polls += 1;
        if polls == 50_000_000 {
            break;
        }
    }
    let ticks = now() - start;
    outb(PORT_B, saved);
    (polls > 0 && polls < 50_000_000).then(|| ticks * 1000 / CALIBRATION_MS)
}
