//! How the guest ends: with code 0 once the plan has run (the verdicts are in
//! the records), with code 1 on every fatal path, and never by hanging.
//!
//! - Under Xen ([`crate::xen`]): `SCHEDOP_shutdown`, poweroff for 0 and
//!   crash for 1, so the toolstack sees which. Xen halts rather than powers
//!   off the machine when its hardware domain shuts down, so where the
//!   command line carries `pmuc.qemu-exit` (only the runner's QEMU launcher
//!   adds it: on a real host the port reaches hardware) the code goes to
//!   isa-debug-exit first, as under plain QEMU.
//! - Under QEMU: a write of the code to isa-debug-exit (port 0xF4, which the
//!   runner adds with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`). QEMU
//!   exits with status `(code << 1) | 1`: 1 for success, 3 for failure; 0
//!   means the guest never got here (a triple fault under `-no-reboot`).
//! - Elsewhere (bare metal, a hypervisor with neither): halt with interrupts
//!   off, which is as final as a machine without a power-off device gets.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::console::Console;

pub const SUCCESS: u8 = 0;
pub const FAILURE: u8 = 1;

const DEBUG_EXIT: u16 = 0xf4;

static QEMU_EXIT_UNDER_XEN: AtomicBool = AtomicBool::new(false);

/// Lets [`exit`] write isa-debug-exit before Xen's shutdown hypercall.
pub fn allow_qemu_exit_under_xen() {
    QEMU_EXIT_UNDER_XEN.store(true, Ordering::Relaxed);
}

pub fn exit(code: u8) -> ! {
    crate::console::flush();
    if QEMU_EXIT_UNDER_XEN.load(Ordering::Relaxed) {
        crate::port::outl(DEBUG_EXIT, u32::from(code));
    }
    crate::xen::shutdown(code == SUCCESS);
    crate::port::outl(DEBUG_EXIT, u32::from(code));
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: stops this CPU with interrupts off; nothing resumes it but NMI or reset.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Prints `probe-kernel: <what>` and exits with [`FAILURE`].
pub fn fatal(what: fmt::Arguments) -> ! {
    let _ = writeln!(Console, "probe-kernel: {what}");
    exit(FAILURE)
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit(FAILURE);
    }
    match info.location() {
        Some(at) => fatal(format_args!(
            "panic: {} (at {}:{})",
            info.message(),
            at.file(),
            at.line()
        )),
        None => fatal(format_args!("panic: {}", info.message())),
    }
}
