//! x86 port I/O: the console, the PIT, the PIC and isa-debug-exit all sit
//! behind I/O ports.

use core::arch::asm;

pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O at CPL0; the ports this kernel touches are devices it owns.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) }
}

pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) }
    value
}

/// `rep outsb`: all of `bytes` to one port. KVM can hand a whole string I/O
/// to the VMM in one exit (up to a page) where `out` costs an exit a byte;
/// a hypervisor that emulates it byte by byte is no slower than a loop of
/// `outb` (measured on a PVM-based KVM host: about 8 µs a byte either way).
pub fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: reads `bytes` only; port I/O as for `outb`.
    unsafe {
        asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        )
    }
}
