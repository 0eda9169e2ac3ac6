//! The interrupt descriptor table: a gate for each of the 256 vectors, so
//! that nothing the CPU raises can triple-fault the guest unreported.
//!
//! Each vector has a 16-byte stub (generated with `.rept`) that pushes a zero
//! error code where the CPU pushes none (every vector but 8, 10–14, 17, 21,
//! 29 and 30; SDM Vol. 3A Table 7-1), then the vector, and jumps to one
//! common path. That path saves the general registers as a
//! [`crate::exceptions::Frame`], calls [`crate::exceptions::dispatch`], and
//! returns with IRETQ to whatever RIP the frame then holds, which is how an
//! MSR fault resumes at its fixup. All gates are interrupt gates (IF cleared
//! on entry) at DPL 0 on the boot stack; the kernel runs at CPL 0 only, so no
//! TSS stack switch is needed.

use core::arch::{asm, global_asm};

global_asm!(
    r#"
    .pushsection .text.isr, "ax"
    .balign 16
    .global probe_isr_stubs
probe_isr_stubs:
    .set isr_vector, 0
    .rept 256
    .balign 16
    .if (isr_vector != 8) && ((isr_vector < 10) || (isr_vector > 14)) && (isr_vector != 17) && (isr_vector != 21) && (isr_vector != 29) && (isr_vector != 30)
    pushq $0
    .endif
    pushq $isr_vector
    jmp probe_isr_common
    .set isr_vector, isr_vector + 1
    .endr

probe_isr_common:
    /* The CPU aligned RSP to 16 before pushing its 5-word frame; with the
       error code, the vector and these 15 registers RSP is 16-aligned again,
       as the call below needs. */
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call {dispatch}
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq
    .popsection
"#,
    dispatch = sym crate::exceptions::dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    static probe_isr_stubs: u8;
}

const STUB_BYTES: u64 = 16;
/// The 64-bit code segment of [`crate::pvh`]'s GDT.
const KERNEL_CS: u16 = 0x08;
/// Present, DPL 0, 64-bit interrupt gate.
const INTERRUPT_GATE: u8 = 0x8e;

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    kind: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const ABSENT: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        kind: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn to(handler: u64) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: 0,
            kind: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Table([Gate; 256]);

static mut IDT: Table = Table([Gate::ABSENT; 256]);

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Fills the table and loads it. Called once, first thing, with interrupts off.
pub fn init() {
    let stubs = &raw const probe_isr_stubs as u64;
    let table = &raw mut IDT;
    // SAFETY: single CPU, interrupts off, and nothing else refers to IDT
    // before `lidt` below publishes it.
    unsafe {
        for (vector, gate) in (*table).0.iter_mut().enumerate() {
            *gate = Gate::to(stubs + vector as u64 * STUB_BYTES);
        }
        let pointer = Pointer {
            limit: (core::mem::size_of::<Table>() - 1) as u16,
            base: table as u64,
        };
        asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags));
    }
}
