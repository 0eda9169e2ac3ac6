//! What one executed instruction is, by the suite's counting convention,
//! decoded with iced-x86: shared by the traces of the Linux probe's windows
//! (ptrace) and of the probe kernel's (QEMU's instruction log).
//!
//! The convention (suites/README.md, "Counting"): every instruction that
//! retires in user mode counts once, `syscall` included; a conditional
//! branch is a `jcc`, `loop` or `jrcxz`; a branch is any near control
//! transfer (conditional or not, direct or indirect, call and return);
//! `syscall`, `sysret` and interrupts are far transfers and not branches
//! here; CPUID and WRMSR exit to the hypervisor in a guest.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic};

use crate::workload::Counts;

/// One decoded instruction and what it counts as.
#[derive(Clone, Copy, Debug)]
pub struct Executed {
    pub conditional_branch: bool,
    pub branch: bool,
    pub vm_exit: bool,
    pub syscall: bool,
    pub ret: bool,
    pub rdpmc: bool,
    /// The instruction's length in bytes: a conditional branch that lands
    /// anywhere but `ip + len` was taken.
    pub len: u64,
    nop: bool,
    wrmsr: bool,
}

impl Executed {
    /// Decodes the instruction in `bytes`, which start at `ip`.
    pub fn decode(ip: u64, bytes: &[u8]) -> Option<Executed> {
        let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return None;
        }
        let flow = instruction.flow_control();
        let mnemonic = instruction.mnemonic();
        let syscall = mnemonic == Mnemonic::Syscall;
        Some(Executed {
            conditional_branch: flow == FlowControl::ConditionalBranch,
            // iced files `syscall` under Call; it is a far transfer, not a branch here.
            branch: !syscall
                && matches!(
                    flow,
                    FlowControl::ConditionalBranch
                        | FlowControl::UnconditionalBranch
                        | FlowControl::IndirectBranch
                        | FlowControl::Call
                        | FlowControl::IndirectCall
                        | FlowControl::Return
                ),
            vm_exit: matches!(mnemonic, Mnemonic::Cpuid | Mnemonic::Wrmsr),
            syscall,
            ret: flow == FlowControl::Return,
            rdpmc: mnemonic == Mnemonic::Rdpmc,
            len: instruction.len() as u64,
            nop: mnemonic == Mnemonic::Nop,
            wrmsr: mnemonic == Mnemonic::Wrmsr,
        })
    }

    /// A `nop`: the loops' marker instruction.
    pub fn is_nop(&self) -> bool {
        self.nop
    }

    /// A `wrmsr`: the probe kernel's bracket.
    pub fn wrmsr(&self) -> bool {
        self.wrmsr
    }

    /// This instruction as counts; `marker` when it is the window's marker.
    pub fn counts(&self, marker: bool) -> Counts {
        Counts {
            instructions: 1,
            conditional_branches: u64::from(self.conditional_branch),
            branches: u64::from(self.branch),
            vm_exits: u64::from(self.vm_exit),
            marker_hits: u64::from(marker),
            ..Counts::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Executed {
        Executed::decode(0x1000, bytes).expect("valid")
    }

    #[test]
    fn the_convention_classifies_each_kind_of_transfer() {
        // jne -2; jmp -2; call rel32; ret; syscall; cpuid; wrmsr; rdpmc; nop
        let jne = decode(&[0x75, 0xfe]);
        assert!(jne.conditional_branch && jne.branch);
        let jmp = decode(&[0xeb, 0xfe]);
        assert!(!jmp.conditional_branch && jmp.branch);
        assert!(decode(&[0xe8, 0, 0, 0, 0]).branch);
        let ret = decode(&[0xc3]);
        assert!(ret.ret && ret.branch);
        let syscall = decode(&[0x0f, 0x05]);
        assert!(syscall.syscall && !syscall.branch);
        assert!(decode(&[0x0f, 0xa2]).vm_exit);
        assert!(decode(&[0x0f, 0x30]).vm_exit);
        assert!(decode(&[0x0f, 0x33]).rdpmc);
        let nop = decode(&[0x90]);
        assert_eq!(
            nop.counts(true),
            Counts {
                instructions: 1,
                marker_hits: 1,
                ..Counts::ZERO
            }
        );
        // push es does not exist in 64-bit mode.
        assert!(Executed::decode(0, &[0x06]).is_none());
    }
}
