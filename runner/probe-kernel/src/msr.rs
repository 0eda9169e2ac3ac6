//! RDMSR, WRMSR and RDPMC that return a #GP (or #UD) instead of dying of it.
//!
//! Probing what a (virtual) PMU accepts is half of what the checks do, and
//! an MSR the hypervisor does not emulate raises #GP (SDM Vol. 4 §2.1; KVM
//! and Xen inject it for unknown or reserved MSR accesses). As in Linux's
//! `rdmsr_safe`, each access instruction is listed in the `.ex_table`
//! section with a fixup address; [`crate::exceptions`] resumes a #GP or #UD
//! at the fixup when the faulting RIP is listed, with the vector in RAX. Any
//! other faulting instruction is not listed, so it stays fatal.

use core::arch::asm;

use pmu_kernel_checks::Fault;

/// One `.ex_table` entry, as the asm below emits it.
#[repr(C)]
struct Entry {
    instruction: u64,
    fixup: u64,
}

unsafe extern "C" {
    static __ex_table_start: Entry;
    static __ex_table_end: Entry;
}

/// Where a fault at `rip` resumes, if an accessor listed it.
pub fn fixup(rip: u64) -> Option<u64> {
    let start = &raw const __ex_table_start;
    let end = &raw const __ex_table_end;
    // SAFETY: the linker script brackets .ex_table with these symbols, and it
    // holds only 16-byte entries (8-aligned).
    let table = unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) };
    table.iter().find(|e| e.instruction == rip).map(|e| e.fixup)
}

/// The asm around one recoverable instruction: `{faulted}` ends 0 if it
/// completed, 1 if it faulted, with the vector in EAX (set by the handler).
/// Labels are numeric (local to each expansion) and not 0 or 1, which
/// Intel syntax would read as binary.
macro_rules! recoverable {
    ($instruction:literal) => {
        concat!(
            "xor {faulted:e}, {faulted:e}\n",
            "2:\n",
            $instruction,
            "\n",
            "jmp 4f\n",
            "3:\n",
            "mov {faulted:e}, 1\n",
            "4:\n",
            ".pushsection .ex_table, \"a\"\n",
            ".balign 8\n",
            ".quad 2b, 3b\n",
            ".popsection",
        )
    };
}

/// An instruction that takes ECX and returns EDX:EAX (RDMSR, RDPMC), made
/// recoverable: its value, or the vector it raised.
macro_rules! read_edx_eax {
    ($instruction:literal, $ecx:expr) => {{
        let (low, high): (u32, u32);
        let faulted: u32;
        // SAFETY: RDMSR and RDPMC at CPL0 read and change nothing; a fault
        // resumes at the fixup (CR4.PCE does not matter at CPL0).
        unsafe {
            asm!(
                recoverable!($instruction),
                faulted = out(reg) faulted,
                in("ecx") $ecx,
                out("eax") low,
                out("edx") high,
                options(nomem, nostack)
            );
        }
        if faulted != 0 {
            Err(Fault { vector: low as u8 })
        } else {
            Ok(u64::from(high) << 32 | u64::from(low))
        }
    }};
}

pub fn read(msr: u32) -> Result<u64, Fault> {
    read_edx_eax!("rdmsr", msr)
}

/// RDPMC: a bad index raises #GP, and QEMU's TCG, which emulates no PMU,
/// raises #UD for any.
pub fn rdpmc(index: u32) -> Result<u64, Fault> {
    read_edx_eax!("rdpmc", index)
}

pub fn write(msr: u32, value: u64) -> Result<(), Fault> {
    let faulted: u32;
    let vector: u32;
    // SAFETY: WRMSR at CPL0; a fault resumes at the fixup. What the write
    // does to the machine is the caller's business.
    unsafe {
        asm!(
            recoverable!("wrmsr"),
            faulted = out(reg) faulted,
            in("ecx") msr,
            inout("eax") value as u32 => vector,
            in("edx") (value >> 32) as u32,
            options(nostack)
        );
    }
    if faulted != 0 {
        Err(Fault { vector: vector as u8 })
    } else {
        Ok(())
    }
}

/// For MSRs this kernel has established exist (its own LAPIC's, EFER): a
/// fault is a bug in the kernel or the hypervisor, and ends the guest.
pub fn read_or_die(msr: u32) -> u64 {
    read(msr).unwrap_or_else(|f| crate::exit::fatal(format_args!("RDMSR {msr:#x} raised vector {}", f.vector)))
}

pub fn write_or_die(msr: u32, value: u64) {
    if let Err(f) = write(msr, value) {
        crate::exit::fatal(format_args!("WRMSR {msr:#x} = {value:#x} raised vector {}", f.vector))
    }
}
