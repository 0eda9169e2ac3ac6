//! What happens on each vector: the PMI and the NMI are counted, an MSR
//! fault resumes at its fixup, and everything else ends the guest with a
//! message.
//!
//! The PMI handler does exactly two things, count and EOI. It must not
//! unmask the LVT entry, touch a counter or acknowledge GLOBAL_STATUS: the
//! checks judge the PMU as the PMI left it (whether the LVT entry was masked
//! by delivery, SDM Vol. 3B §11.5.1; which status bits are set). That is the
//! one way this handler differs from Linux's and kvm-unit-tests', which
//! unmask the LVT entry in the handler.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pmu_kernel_checks::hardware::PMI_VECTOR;

use crate::{exit, lapic, msr, pic};

/// The registers as the stub in [`crate::idt`] saved them, lowest address first.
#[repr(C)]
pub struct Frame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors that push none.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const NMI: u64 = 2;
const UD: u64 = 6;
const GP: u64 = 13;

/// PMIs taken since boot; only the PMI handler writes it.
pub static PMIS: AtomicU64 = AtomicU64::new(0);

/// NMIs taken since boot (an NMI-mode PMI among them); only the NMI handler
/// writes it. An NMI needs no EOI, and IRETQ ends its blocking.
pub static NMIS: AtomicU64 = AtomicU64::new(0);

/// Set on the first fatal exception, so one raised while reporting it does
/// not recurse: the second goes straight to the exit.
static DYING: AtomicBool = AtomicBool::new(false);

pub extern "sysv64" fn dispatch(frame: &mut Frame) {
    match frame.vector {
        v if v == u64::from(PMI_VECTOR) => {
            PMIS.fetch_add(1, Ordering::Relaxed);
            lapic::eoi();
        }
        NMI => {
            NMIS.fetch_add(1, Ordering::Relaxed);
        }
        // Spurious interrupts are not in service: no EOI (SDM Vol. 3A §11.9).
        v if v == u64::from(lapic::SPURIOUS_VECTOR) => {}
        // A masked 8259 can still signal a spurious IRQ 7 or 15; it needs no EOI.
        v if pic::owns(v) => {}
        UD | GP => match msr::fixup(frame.rip) {
            // The accessor reads the vector from RAX on its fixup path.
            Some(fixup) => {
                frame.rax = frame.vector;
                frame.rip = fixup;
            }
            None => fatal(frame),
        },
        _ => fatal(frame),
    }
}

fn fatal(frame: &Frame) -> ! {
    if DYING.swap(true, Ordering::Relaxed) {
        exit::exit(exit::FAILURE);
    }
    if frame.vector < 32 {
        exit::fatal(format_args!(
            "fatal exception {} at {:#x} (error code {:#x})",
            frame.vector, frame.rip, frame.error_code
        ))
    } else {
        exit::fatal(format_args!(
            "fatal: unexpected interrupt on vector {} at {:#x}",
            frame.vector, frame.rip
        ))
    }
}
