//! The PVH entry: the ELF note that tells QEMU and Xen where to enter, and
//! the 32-bit stub that takes the CPU from there to 64-bit Rust.
//!
//! PVH (Xen's `arch-x86/hvm/start_info.h`, QEMU's `hw/i386/x86.c`): the
//! loader maps the ELF at its physical addresses and enters at the address
//! in the `XEN_ELFNOTE_PHYS32_ENTRY` note in 32-bit protected mode, paging
//! off, flat CS/DS/SS, interrupts off, with EBX holding the physical address
//! of `hvm_start_info`. There is deliberately no multiboot header: QEMU tries
//! multiboot before PVH, and its multiboot loader rejects ELF64 outright.
//!
//! The stub then
//! 1. enables the MTRRs with write-back as the default type where the
//!    loader left them off (QEMU does, and all memory is then uncacheable);
//! 2. loads page tables, built by the assembler into .data, that
//!    identity-map 0–4 GiB with 2 MiB pages, so the xAPIC page at 0xFEE00000
//!    is reachable, with 3–4 GiB (the MMIO hole: LAPIC, IOAPIC, HPET)
//!    uncacheable (PCD|PWT select UC with the power-on PAT, SDM Vol. 3A
//!    §12.12.3);
//! 3. sets CR4.PAE, EFER.LME, CR0.PG|PE (SDM Vol. 3A §10.8.5, "Initializing
//!    IA-32e Mode"), loads a GDT with a 64-bit code segment and far-jumps to it;
//! 4. loads the data segments and the stack and calls `kernel_main` with
//!    what EBX held.
//!
//! .bss is not zeroed here: the ELF loader zero-fills a segment's memory
//! beyond its file size (QEMU's `load_elf`, Xen's libelf, as the ELF spec
//! requires), and some hosts run this stretch of code very slowly. On a
//! PVM-based KVM host (`kvm_pvm`) a guest that is not PVM-aware is emulated,
//! and zeroing 1.3 MiB took 0.6 s there.

use core::arch::global_asm;

global_asm!(
    r#"
    /* XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen". The descriptor is 8 bytes,
       upper half zero: QEMU 7.2 reads 8 for ELFCLASS64, later QEMU and Xen 4.
       4-aligned, since QEMU computes the padding from p_align. */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start
    .popsection

    .pushsection .text.pvh, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    /* The start_info address moves from EBX (CPUID clobbers it) to ESI
       until kernel_main gets it. */
    mov %ebx, %esi

    /* Caching first. Under QEMU's PVH boot no firmware programs the MTRRs,
       so IA32_MTRR_DEF_TYPE keeps its reset value 0: MTRRs disabled, which
       architecturally makes all memory UC (SDM Vol. 3A §12.11.2.1). Xen
       applies guest MTRRs to HVM guests' memory, so the checks would run
       uncached there. Enable them with WB as the default type; the page
       tables' PCD|PWT keep MMIO uncacheable. Nothing was cached under UC,
       so no WBINVD is needed. Firmware that enabled them is left alone. */
    mov $1, %eax
    cpuid
    test $0x1000, %edx          /* CPUID.01H:EDX[12] MTRR */
    jz 5f
    mov $0x2ff, %ecx            /* IA32_MTRR_DEF_TYPE */
    rdmsr
    test $0x800, %eax           /* E: MTRRs enabled */
    jnz 5f
    and $~0xcff, %eax           /* fixed ranges (FE) off, default type... */
    or $0x806, %eax             /* ...WB (6), enabled */
    wrmsr
5:
    mov $pvh_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax              /* CR4.PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx       /* IA32_EFER */
    rdmsr
    or $0x100, %eax             /* LME */
    wrmsr
    mov %cr0, %eax
    /* CD and NW off: the PVH ABI promises them clear, but a loader that
       came straight from reset (CR0 = 0x60000010) leaves them set, and with
       CD set every access misses the caches, even under WB MTRRs. */
    and $~0x60000000, %eax
    or $0x80000001, %eax        /* PG | PE: IA-32e mode, compatibility submode */
    mov %eax, %cr0
    lgdt pvh_gdt_pointer
    ljmp $0x08, $pvh_long_mode

    .code64
pvh_long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $pvh_stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi
    call {main}
    ud2
    .popsection

    .pushsection .data.pvh, "aw"
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: flat data */
pvh_gdt_end:
pvh_gdt_pointer:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt
    .popsection

    /* The page tables, built by the assembler: no instruction runs before
       paging is on that need not. PML4[0] -> PDPT; PDPT[0..4] -> four page
       directories; PDE i maps i * 2 MiB present | writable | page size, and
       from 3 GiB up (the MMIO hole: LAPIC, IOAPIC, HPET) also PWT | PCD,
       uncacheable. */
    .pushsection .data.pvh_tables, "aw"
    .balign 4096
pvh_pml4:
    .quad pvh_pdpt + 0x3
    .fill 511, 8, 0
pvh_pdpt:
    .quad pvh_pd + 0x0003
    .quad pvh_pd + 0x1003
    .quad pvh_pd + 0x2003
    .quad pvh_pd + 0x3003
    .fill 508, 8, 0
pvh_pd:
    .set pvh_pde, 0
    .rept 1536
    .quad (pvh_pde << 21) | 0x83
    .set pvh_pde, pvh_pde + 1
    .endr
    .rept 512
    .quad (pvh_pde << 21) | 0x9b
    .set pvh_pde, pvh_pde + 1
    .endr
    .popsection

    .pushsection .bss.pvh, "aw", @nobits
    .balign 16
pvh_stack:
    .skip 128 * 1024
pvh_stack_top:
    .popsection
"#,
    main = sym crate::kernel_main,
    options(att_syntax)
);
