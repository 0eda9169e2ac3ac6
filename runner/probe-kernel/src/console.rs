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
//!
//! As Xen's hardware domain (dom0), [`use_xen_console`] sends everything
//! through the `console_io` hypercall instead ([`crate::xen`]): port 0xE9
//! would reach Xen's serial line as `(d0)` lines split every 199 bytes,
//! which breaks the framed records. Bytes are gathered into whole lines, so
//! that none of Xen's own messages lands inside a record.
//!
//! Where the host asks (`pmuc.memcon=`, [`use_memory_console`]), everything
//! goes into a region of guest RAM that the host reads from the file
//! backing it, and to no port: no VM exit per byte
//! ([`pmu_kernel_checks::memory_console`] gives the layout).

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering, compiler_fence};

use pmu_kernel_checks::memory_console::{self, DROPPED, HEADER_BYTES, MAGIC, Region, WRITTEN};

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
static XEN_CONSOLE: AtomicBool = AtomicBool::new(false);

/// The memory console's region, base 0 while there is none.
static MEMORY_BASE: AtomicU64 = AtomicU64::new(0);
static MEMORY_LEN: AtomicU64 = AtomicU64::new(0);
/// Held while text is being put in the region; a fault handler that
/// prints meanwhile goes to the debug port instead of tearing the text.
static MEMORY_TAKEN: AtomicBool = AtomicBool::new(false);

/// Bytes gathered for Xen's console, sent at each newline or when full.
struct Line {
    bytes: [u8; LINE_BYTES],
    len: usize,
}

/// Long enough for any line but the hello's CPUID leaves, which go out in pieces.
const LINE_BYTES: usize = 512;

/// One writer at a time: the kernel runs on one vCPU, but a fault handler
/// can print while a line is being gathered. The one who finds it taken
/// writes straight through.
static LINE_TAKEN: AtomicBool = AtomicBool::new(false);
static mut LINE: Line = Line {
    bytes: [0; LINE_BYTES],
    len: 0,
};

/// From now on, writes go to Xen's console through the hypercall page,
/// where Xen accepts it; says whether it did.
pub fn use_xen_console() -> bool {
    if crate::xen::console_write(b"") {
        XEN_CONSOLE.store(true, Ordering::Relaxed);
    }
    XEN_CONSOLE.load(Ordering::Relaxed)
}

/// Sends what is gathered for Xen's console (the exit path calls it).
pub fn flush() {
    if !XEN_CONSOLE.load(Ordering::Relaxed) || LINE_TAKEN.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: LINE_TAKEN makes this the only reference.
    let line = unsafe { &mut *&raw mut LINE };
    send_line(line);
    LINE_TAKEN.store(false, Ordering::Release);
}

fn send_line(line: &mut Line) {
    if line.len > 0 {
        crate::xen::console_write(&line.bytes[..line.len]);
        line.len = 0;
    }
}

fn xen_console(bytes: &[u8]) {
    if LINE_TAKEN.swap(true, Ordering::Acquire) {
        crate::xen::console_write(bytes);
        return;
    }
    // SAFETY: LINE_TAKEN makes this the only reference.
    let line = unsafe { &mut *&raw mut LINE };
    for &byte in bytes {
        if line.len == LINE_BYTES {
            send_line(line);
        }
        line.bytes[line.len] = byte;
        line.len += 1;
        if byte == b'\n' {
            send_line(line);
        }
    }
    LINE_TAKEN.store(false, Ordering::Release);
}

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

/// From now on, writes go into `region` of guest RAM, which the host
/// reads; refused (with why) unless the region lies above this kernel's
/// image and within what it maps (the first 4 GiB).
pub fn use_memory_console(region: Region) -> Result<(), &'static str> {
    unsafe extern "C" {
        static __image_end: u8;
    }
    let image_end = (&raw const __image_end) as u64;
    if region.base < image_end {
        return Err("the region overlaps the kernel's image");
    }
    if region.base.checked_add(region.len).is_none_or(|end| end > 1 << 32) || region.len < memory_console::MIN_BYTES {
        return Err("the region is not within the first 4 GiB, or shorter than a page");
    }
    let header = region.base as *mut u64;
    // SAFETY: the region is identity-mapped RAM the host set aside for this
    // (checked above to be clear of the image); nothing else uses it.
    unsafe {
        header.byte_add(WRITTEN).write_volatile(0);
        header.byte_add(DROPPED).write_volatile(0);
        compiler_fence(Ordering::Release);
        header.write_volatile(MAGIC);
    }
    MEMORY_LEN.store(region.len, Ordering::Relaxed);
    MEMORY_BASE.store(region.base, Ordering::Release);
    Ok(())
}

/// Appends `bytes` to the memory console's text; what does not fit is
/// counted as dropped. False when there is no memory console, or it is
/// being written by the code this interrupted.
fn memory(bytes: &[u8]) -> bool {
    let base = MEMORY_BASE.load(Ordering::Acquire);
    if base == 0 || MEMORY_TAKEN.swap(true, Ordering::Acquire) {
        return false;
    }
    let capacity = MEMORY_LEN.load(Ordering::Relaxed) - HEADER_BYTES as u64;
    let header = base as *mut u64;
    // SAFETY: the region was checked in `use_memory_console`; MEMORY_TAKEN
    // makes this the only writer; the text stays within its capacity.
    unsafe {
        let written = header.byte_add(WRITTEN).read_volatile();
        let fits = capacity.saturating_sub(written).min(bytes.len() as u64) as usize;
        let text = (base as *mut u8).add(HEADER_BYTES + written as usize);
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), text, fits);
        // The text before the count that covers it (stores stay in order on x86).
        compiler_fence(Ordering::Release);
        header.byte_add(WRITTEN).write_volatile(written + fits as u64);
        if fits < bytes.len() {
            let dropped = header.byte_add(DROPPED).read_volatile();
            header
                .byte_add(DROPPED)
                .write_volatile(dropped + (bytes.len() - fits) as u64);
        }
    }
    MEMORY_TAKEN.store(false, Ordering::Release);
    true
}

/// Writes `bytes` as they are to the debug console, and with "\n" as
/// "\r\n" to COM1; or, once [`use_xen_console`] said yes, to Xen's console;
/// or, once [`use_memory_console`] did, into guest memory alone.
pub fn write(bytes: &[u8]) {
    if XEN_CONSOLE.load(Ordering::Relaxed) {
        xen_console(bytes);
        return;
    }
    if memory(bytes) {
        return;
    }
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
