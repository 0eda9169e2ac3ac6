//! Shutting down under Xen, which has no isa-debug-exit: through the
//! hypercall page.
//!
//! Xen's CPUID leaf base + 2 gives the number of hypercall pages in EAX and,
//! in EBX, the MSR to which the guest writes a page's physical address; Xen
//! then fills the page with one 32-byte stub per hypercall (`mov $nr, %eax;
//! vmcall/vmmcall; ret`). `HYPERVISOR_sched_op` is number 29;
//! `SCHEDOP_shutdown` (2) takes `struct sched_shutdown { unsigned int reason; }`
//! (Xen `public/sched.h`): poweroff 0, crash 3. The page is installed at boot
//! so that every fatal path can use it.
//!
//! `SCHEDOP_yield` (0, no argument) gives the pCPU back to Xen's scheduler,
//! for the checks that need the vCPU switched out ([`sched_yield`]).
//!
//! The hardware domain also writes its console through the page:
//! `HYPERVISOR_console_io` is number 18, and `CONSOLEIO_write` (0) takes a
//! count and a buffer (Xen `public/xen.h`). Xen prints a hardware domain's
//! bytes as they are, with no `(d0)` prefix and no 199-byte split, which
//! port 0xE9 gets (guest-boots.md); a non-debug Xen refuses it to a domU.

use core::sync::atomic::{AtomicBool, Ordering};

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Executable like all of the image (one RWX segment, no NX).
static mut HYPERCALL_PAGE: Page = Page([0; 4096]);
static INSTALLED: AtomicBool = AtomicBool::new(false);

const HYPERCALL_STUB_BYTES: usize = 32;
const HYPERVISOR_CONSOLE_IO: usize = 18;
const HYPERVISOR_SCHED_OP: usize = 29;
const CONSOLEIO_WRITE: u64 = 0;
const SCHEDOP_YIELD: u64 = 0;
const SCHEDOP_SHUTDOWN: u64 = 2;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_CRASH: u32 = 3;

/// Installs the hypercall page of the Xen interface at `base`.
pub fn init(base: u32) {
    let [pages, msr, _, _] = crate::cpuid::cpuid(base + 2, 0);
    if pages == 0 {
        return;
    }
    let page = &raw mut HYPERCALL_PAGE as u64;
    if crate::msr::write(msr, page).is_ok() {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Powers the domain off (or crashes it, for a failure). Returns only where
/// there is no hypercall page or Xen refused.
pub fn shutdown(poweroff: bool) {
    if !INSTALLED.load(Ordering::Relaxed) {
        return;
    }
    let reason: u32 = if poweroff { SHUTDOWN_POWEROFF } else { SHUTDOWN_CRASH };
    let stub = &raw const HYPERCALL_PAGE as usize + HYPERVISOR_SCHED_OP * HYPERCALL_STUB_BYTES;
    // SAFETY: calls Xen's stub with the 64-bit hypercall ABI (RDI, RSI;
    // result in RAX). Debug builds of Xen scribble over the argument
    // registers, so they are all clobbered.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inout("rdi") SCHEDOP_SHUTDOWN => _,
            inout("rsi") &reason as *const u32 => _,
            clobber_abi("sysv64"),
        );
    }
}

/// Writes `bytes` to Xen's console. False where there is no hypercall page
/// or Xen refused (a domU of a non-debug Xen).
pub fn console_write(bytes: &[u8]) -> bool {
    if !INSTALLED.load(Ordering::Relaxed) {
        return false;
    }
    let stub = &raw const HYPERCALL_PAGE as usize + HYPERVISOR_CONSOLE_IO * HYPERCALL_STUB_BYTES;
    let result: i64;
    // SAFETY: as in [`shutdown`]; Xen only reads `bytes.len()` bytes at
    // `bytes`, which the identity map gives the same address in every view.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inout("rdi") CONSOLEIO_WRITE => _,
            inout("rsi") bytes.len() => _,
            inout("rdx") bytes.as_ptr() => _,
            lateout("rax") result,
            clobber_abi("sysv64"),
        );
    }
    result == 0
}

/// Yields the vCPU to Xen's scheduler. False where there is no hypercall
/// page or Xen refused.
pub fn sched_yield() -> bool {
    if !INSTALLED.load(Ordering::Relaxed) {
        return false;
    }
    let stub = &raw const HYPERCALL_PAGE as usize + HYPERVISOR_SCHED_OP * HYPERCALL_STUB_BYTES;
    let result: i64;
    // SAFETY: as in [`shutdown`]; SCHEDOP_yield reads no argument.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inout("rdi") SCHEDOP_YIELD => _,
            inout("rsi") 0u64 => _,
            lateout("rax") result,
            clobber_abi("sysv64"),
        );
    }
    result == 0
}
