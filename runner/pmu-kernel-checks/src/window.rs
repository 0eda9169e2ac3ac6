//! The probe kernel's counted window: one WRMSR that starts counting, the
//! branch loop, one WRMSR that stops it, in one naked function.
//!
//! As in kvm-unit-tests, the stopping WRMSR retires while the counter is on,
//! so it is counted; the starting one is not. Between them only the
//! instructions of [`LISTING`] retire. The window runs at CPL0 with
//! interrupts off; a test at the end decodes its machine code and holds it
//! to the listing, and the runner's tests/trace.rs boots it under QEMU's TCG
//! (`pmuc.window-trace=`), logs every instruction it executes and holds
//! those to the listing too.

use core::arch::naked_asm;

use crate::listing::{Counts, Listing};

/// The window's arguments, shared with the asm by offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowArgs {
    /// 0: the MSR whose write starts and stops counting: GLOBAL_CTRL (Intel
    /// v2+, AMD PerfMonV2), or the counter's event select.
    pub msr: u32,
    pub _pad: u32,
    /// 8: the value that starts counting.
    pub enable: u64,
    /// 16: the value that stops it.
    pub disable: u64,
    /// 24: loop passes, at least 1.
    pub iterations: u64,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(WindowArgs, enable) == 8);
    assert!(offset_of!(WindowArgs, disable) == 16);
    assert!(offset_of!(WindowArgs, iterations) == 24);
};

/// What the window retires while counting.
pub const LISTING: Listing = Listing {
    // xor r15d, r15d
    before: Counts {
        instructions: 1,
        ..Counts::ZERO
    },
    // inc r15; nop; cmp r15, r13; jne
    body: Counts {
        instructions: 4,
        conditional_branches: 1,
        branches: 1,
        marker_hits: 1,
        ..Counts::ZERO
    },
    // mov eax, r9d; mov edx, r10d; wrmsr (counted, and it exits to the hypervisor)
    after: Counts {
        instructions: 3,
        vm_exits: 1,
        ..Counts::ZERO
    },
};

/// Runs the window once.
///
/// # Safety
/// Needs CPL0 and an MSR at `args.msr` that accepts both values; a #GP
/// here is not caught. Callers check both values with a trial WRMSR first.
pub unsafe fn run(args: &WindowArgs) {
    unsafe { window(args) }
}

/// Where the window's code starts, for a host that traces it.
pub fn entry() -> u64 {
    window as *const () as u64
}

#[unsafe(naked)]
unsafe extern "sysv64" fn window(args: *const WindowArgs) {
    naked_asm!(
        "push rbx",
        "push r13",
        "push r15",
        "mov ecx, dword ptr [rdi]",
        "mov eax, dword ptr [rdi + 8]",
        "mov edx, dword ptr [rdi + 12]",
        "mov r9d, dword ptr [rdi + 16]",
        "mov r10d, dword ptr [rdi + 20]",
        "mov r13, qword ptr [rdi + 24]",
        // Counting starts when this retires.
        "wrmsr",
        // LISTING.before
        "xor r15d, r15d",
        // LISTING.body
        "2:",
        "inc r15",
        "nop",
        "cmp r15, r13",
        "jne 2b",
        // LISTING.after: the stopping WRMSR is counted.
        "mov eax, r9d",
        "mov edx, r10d",
        "wrmsr",
        "pop r15",
        "pop r13",
        "pop rbx",
        "ret",
    )
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};

    use super::*;

    fn decode() -> Vec<Instruction> {
        let entry = window as *const () as usize;
        // SAFETY: reads this function's code bytes; it is well inside 256 bytes of text.
        let bytes = unsafe { core::slice::from_raw_parts(entry as *const u8, 256) };
        let mut out = Vec::new();
        for i in Decoder::with_ip(64, bytes, entry as u64, DecoderOptions::NONE) {
            out.push(i);
            if i.mnemonic() == Mnemonic::Ret {
                break;
            }
        }
        out
    }

    fn tally(code: &[Instruction]) -> Counts {
        let count = |f: &dyn Fn(&Instruction) -> bool| code.iter().filter(|i| f(i)).count() as u64;
        Counts {
            instructions: code.len() as u64,
            conditional_branches: count(&|i| i.flow_control() == FlowControl::ConditionalBranch),
            branches: count(&|i| {
                matches!(
                    i.flow_control(),
                    FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
                )
            }),
            marker_hits: count(&|i| i.mnemonic() == Mnemonic::Nop),
            vm_exits: count(&|i| matches!(i.mnemonic(), Mnemonic::Wrmsr | Mnemonic::Cpuid)),
            ..Counts::ZERO
        }
    }

    #[test]
    fn the_window_retires_what_its_listing_says() {
        let code = decode();
        let wrmsrs: Vec<usize> = code
            .iter()
            .enumerate()
            .filter(|(_, i)| i.mnemonic() == Mnemonic::Wrmsr)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(wrmsrs.len(), 2, "one WRMSR starts the count, one stops it");
        let (start, end) = (wrmsrs[0] + 1, wrmsrs[1]);
        let back_edge = (start..end)
            .find(|&n| code[n].flow_control() == FlowControl::ConditionalBranch)
            .expect("a loop");
        let head = code
            .iter()
            .position(|i| i.ip() == code[back_edge].near_branch_target())
            .unwrap();
        assert_eq!(tally(&code[start..head]), LISTING.before);
        assert_eq!(tally(&code[head..=back_edge]), LISTING.body);
        assert_eq!(tally(&code[back_edge + 1..=end]), LISTING.after);
    }
}
