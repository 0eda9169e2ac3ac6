//! The console: every byte to the debug console port and to COM1.
//!
//! Port 0xE9 is QEMU's `-debugcon` (which the runner reads) and, under Xen
//! HVM and PVH, `hvm_print_line`, which puts guest lines in `xl dmesg` (with
//! `guest_loglvl=all`). COM1 (0x3F8, 16550, 115200 8N1) is for bare metal and
//! for QEMU's `-serial`. Xen PVH domUs have no UART, and QEMU with
//! `-nodefaults` has none either: a port with no device reads as 0xFF, so
//! [`init`] probes the scratch register and skips COM1 where nothing answers,
//! and every wait for the transmitter is bounded, so a dead UART costs a
//! bounded delay, never a hang.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::port::{inb, outb, outsb};

const DEBUGCON: u16 = 0xe9;
const COM1: u16 = 0x3f8;
/// Register offsets from COM1 (PC16550D data sheet).
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const SCRATCH: u16 = 7;
/// LSR bit 5: the transmit holding register (with FIFOs on, the whole
/// 16-byte transmit FIFO) is empty.
const LSR_THRE: u8 = 1 << 5;
const FIFO_BYTES: usize = 16;
/// LSR polls before COM1 is given up on. At 115200 baud a 16-byte FIFO
/// drains in 1.4 ms; a poll is a port read (a VM exit under a hypervisor,
/// about a microsecond), so this is generous without being a hang.
const THRE_POLLS: u32 = 200_000;

static SERIAL: AtomicBool = AtomicBool::new(false);

/// Probes and programs COM1. Interrupts stay off at the UART (IER = 0, and
/// OUT2 clear in MCR keeps its IRQ line disconnected).
pub fn init() {
    outb(COM1 + SCRATCH, 0x5a);
    if inb(COM1 + SCRATCH) != 0x5a {
        return;
    }
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, 0x80); // DLAB: the next two registers are the divisor
    outb(COM1, 1); // 115200 = 1.8432 MHz / 16 / 1
    outb(COM1 + IER, 0);
    outb(COM1 + LCR, 0x03); // 8N1, DLAB off
    outb(COM1 + FCR, 0x07); // FIFOs on, both cleared
    outb(COM1 + MCR, 0x03); // DTR | RTS
    SERIAL.store(true, Ordering::Relaxed);
}

/// Writes `bytes` as they are to the debug console, and with "\n" as
/// "\r\n" to COM1.
pub fn write(bytes: &[u8]) {
    outsb(DEBUGCON, bytes);
    if SERIAL.load(Ordering::Relaxed) {
        serial(bytes);
    }
}

fn serial(bytes: &[u8]) {
    let mut chunk = [0u8; FIFO_BYTES];
    let mut len = 0;
    for &byte in bytes {
        if byte == b'\n' {
            if len == FIFO_BYTES {
                send(&chunk[..len]);
                len = 0;
            }
            chunk[len] = b'\r';
            len += 1;
        }
        if len == FIFO_BYTES {
            send(&chunk[..len]);
            len = 0;
        }
        chunk[len] = byte;
        len += 1;
    }
    if len > 0 {
        send(&chunk[..len]);
    }
}

/// One FIFO's worth, once the FIFO is empty.
fn send(chunk: &[u8]) {
    for _ in 0..THRE_POLLS {
        if inb(COM1 + LSR) & LSR_THRE != 0 {
            outsb(COM1, chunk);
            return;
        }
        core::hint::spin_loop();
    }
    // The transmitter never drained: stop using COM1 rather than stall every line.
    SERIAL.store(false, Ordering::Relaxed);
}

/// The console as a `fmt::Write`, for `writeln!`. It holds no state, so the
/// fatal paths can make one anywhere.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}
