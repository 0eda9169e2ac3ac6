//! The legacy 8259 PICs: moved off the exception vectors and masked.
//!
//! Under QEMU `-M pc` SeaBIOS runs before the PVH entry and leaves the PIT
//! ticking into the master PIC, based at vector 0x08, whose output reaches
//! the CPU through LINT0 (ExtINT): the first STI would take the timer as a
//! double fault. So the PICs are reinitialised (ICW1–ICW4, Intel 8259A data
//! sheet) with their vectors at [`BASE`] and every line masked, and
//! [`crate::lapic`] masks LINT0 too. A spurious IRQ 7 or 15 can still be
//! signalled after masking; it arrives on `BASE + 7` or `BASE + 15`, which
//! [`crate::exceptions`] ignores. Where there is no PIC (Xen PVH, microvm
//! without one) the writes go nowhere.

use crate::port::outb;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// The master's first vector; the slave's is `BASE + 8`.
pub const BASE: u8 = 0xe0;

/// Whether `vector` is one of the PICs'.
pub fn owns(vector: u64) -> bool {
    (u64::from(BASE)..u64::from(BASE) + 16).contains(&vector)
}

pub fn mask_all() {
    outb(MASTER_COMMAND, 0x11); // ICW1: edge, cascade, ICW4 follows
    outb(SLAVE_COMMAND, 0x11);
    outb(MASTER_DATA, BASE); // ICW2: vector base
    outb(SLAVE_DATA, BASE + 8);
    outb(MASTER_DATA, 0x04); // ICW3: slave on IRQ 2
    outb(SLAVE_DATA, 0x02); // ICW3: cascade identity 2
    outb(MASTER_DATA, 0x01); // ICW4: 8086 mode
    outb(SLAVE_DATA, 0x01);
    outb(MASTER_DATA, 0xff); // OCW1: every line masked
    outb(SLAVE_DATA, 0xff);
}
