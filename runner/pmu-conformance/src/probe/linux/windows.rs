//! The counted windows: each workload as one naked function whose arming and
//! disarming ioctls are raw `syscall`s inside the same asm.
//!
//! Between the return of the arming ioctl and the disarming `syscall`, only
//! the instructions written here retire in user mode, so the counts in
//! [`crate::workload::WorkloadKind::listing`] are exact by construction: no
//! compiler-generated code, no libc wrapper, no branch we did not write.
//! The tests at the end decode each function's machine code and hold it to
//! its listing, so the two cannot drift apart.

use std::arch::naked_asm;

use perf_event_open_sys::bindings;

use crate::workload::WorkloadKind;

/// The arguments and results of one window, shared with the asm by offset.
#[repr(C)]
#[derive(Debug, Default)]
pub struct WindowArgs {
    /// 0: the perf event's file descriptor.
    pub fd: i64,
    /// 8: the ioctl that starts counting: ENABLE, or REFRESH.
    pub arm_request: u64,
    /// 16: its argument: 0, or the REFRESH budget.
    pub arm_arg: u64,
    /// 24: loop iterations.
    pub iterations: u64,
    /// 32: the period rr's probe sets with IOC_PERIOD (passed by address).
    pub period: u64,
    /// 40: the first of the fresh pages `page-touch` writes.
    pub buffer: u64,
    /// 48: what the arming ioctl returned.
    pub arm_result: i64,
    /// 56: what the first failing in-window ioctl returned, or 0.
    pub step_result: i64,
    /// 64: which in-window ioctl failed: 0 none, 1 RESET, 2 PERIOD.
    pub failed_step: u64,
    /// 72: what the disarming ioctl returned.
    pub disarm_result: i64,
    /// 80: the counter's perf mmap page, for the rdpmc window.
    pub user_page: u64,
    /// 88: what rdpmc returned, edx:eax.
    pub pmc: u64,
    /// 96, 100: the page's seqlock before and after the read.
    pub lock_before: u32,
    pub lock_after: u32,
    /// 104: the page's counter index (rdpmc's ECX is index − 1).
    pub index: u32,
    pub _pad: u32,
    /// 112: the page's offset, to which the sign-extended pmc is added.
    pub offset: i64,
}

// The asm addresses these fields by offset.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(WindowArgs, arm_result) == 48);
    assert!(offset_of!(WindowArgs, disarm_result) == 72);
    assert!(offset_of!(WindowArgs, user_page) == 80);
    assert!(offset_of!(WindowArgs, pmc) == 88);
    assert!(offset_of!(WindowArgs, lock_after) == 100);
    assert!(offset_of!(WindowArgs, index) == 104);
    assert!(offset_of!(WindowArgs, offset) == 112);
};

/// The ioctl requests as the asm needs them.
pub const ENABLE: u64 = bindings::ENABLE as u64;
pub const REFRESH: u64 = bindings::REFRESH as u64;

/// Runs the branch loop's rdpmc variant once: the same loop, then the count
/// read with rdpmc through `args.user_page` just before the disarm.
pub fn run_branch_loop_rdpmc(args: &mut WindowArgs) {
    // SAFETY: as for `run`; and the caller has checked that the page grants
    // cap_user_rdpmc, so rdpmc with the page's index does not fault.
    unsafe { branch_loop_rdpmc(args) }
}

/// Runs `kind`'s window once with `args`.
pub fn run(kind: WorkloadKind, args: &mut WindowArgs) {
    // SAFETY: each window reads and writes only `args` (and, for page-touch,
    // the pages `args.buffer` points at, which the caller maps), preserves
    // every callee-saved register, and makes only ioctl syscalls on `args.fd`.
    unsafe {
        match kind {
            WorkloadKind::BranchLoop => branch_loop(args),
            WorkloadKind::RrXenProbe => rr_xen_probe(args),
            WorkloadKind::PageTouch => page_touch(args),
            WorkloadKind::CpuidLoop => cpuid_loop(args),
        }
    }
}

/// The address of the marker instruction in `kind`'s loop body, where the
/// breakpoint event puts its execute breakpoint.
pub fn marker_address(kind: WorkloadKind) -> u64 {
    unsafe extern "C" {
        static pmu_conformance_branch_loop_marker: u8;
        static pmu_conformance_rr_xen_probe_marker: u8;
        static pmu_conformance_page_touch_marker: u8;
        static pmu_conformance_cpuid_loop_marker: u8;
    }
    let marker = match kind {
        WorkloadKind::BranchLoop => &raw const pmu_conformance_branch_loop_marker,
        WorkloadKind::RrXenProbe => &raw const pmu_conformance_rr_xen_probe_marker,
        WorkloadKind::PageTouch => &raw const pmu_conformance_page_touch_marker,
        WorkloadKind::CpuidLoop => &raw const pmu_conformance_cpuid_loop_marker,
    };
    marker as u64
}

// The pieces every window shares. Each expands to one asm string; a window
// is these pieces around its own listing, so it reads top to bottom as the
// listing in `workload.rs` does.

/// Saves the callee-saved registers the windows use and loads what they all
/// need: rbx = args, r12 = fd, r13 = iterations.
macro_rules! enter {
    () => {
        concat!(
            "push rbx\n",
            "push rbp\n",
            "push r12\n",
            "push r13\n",
            "push r14\n",
            "push r15\n",
            "mov rbx, rdi\n",
            "mov r12, qword ptr [rbx]\n",
            "mov r13, qword ptr [rbx + 24]\n",
        )
    };
}

/// ioctl(fd, arm_request, arm_arg): counting starts in the kernel, so nothing
/// here is counted.
macro_rules! arm {
    () => {
        concat!(
            "mov eax, {sys_ioctl}\n",
            "mov rdi, r12\n",
            "mov rsi, qword ptr [rbx + 8]\n",
            "mov rdx, qword ptr [rbx + 16]\n",
            "syscall\n",
        )
    };
}

/// listing.before of the loops: keep the arm's result; zero the pass counter.
/// 2 instructions.
macro_rules! begin {
    () => {
        concat!("mov qword ptr [rbx + 48], rax\n", "xor r15d, r15d\n")
    };
}

/// listing.body: `inc r15; <marker>: nop; cmp r15, r13; jne`, after the
/// window's own `$before` lines. 4 instructions, 1 conditional branch, 1 marker.
macro_rules! loop_body {
    ($before:expr, $marker:literal) => {
        concat!(
            "2:\n",
            $before,
            "inc r15\n",
            ".globl ",
            $marker,
            "\n",
            ".hidden ",
            $marker,
            "\n",
            $marker,
            ":\n",
            "nop\n",
            "cmp r15, r13\n",
            "jne 2b\n",
        )
    };
}

/// listing.after: ioctl(fd, DISABLE), 5 instructions up to and including
/// `syscall`; then its result is kept.
macro_rules! disarm {
    () => {
        concat!(
            "mov eax, {sys_ioctl}\n",
            "mov rdi, r12\n",
            "mov esi, {disable}\n",
            "xor edx, edx\n",
            "syscall\n",
            "mov qword ptr [rbx + 72], rax\n",
        )
    };
}

macro_rules! leave {
    () => {
        concat!(
            "pop r15\n",
            "pop r14\n",
            "pop r13\n",
            "pop r12\n",
            "pop rbp\n",
            "pop rbx\n",
            "ret\n"
        )
    };
}

/// `iterations` passes of `inc; marker: nop; cmp; jne`.
#[unsafe(naked)]
unsafe extern "sysv64" fn branch_loop(args: *mut WindowArgs) {
    naked_asm!(
        enter!(),
        arm!(),
        begin!(),
        loop_body!("", "pmu_conformance_branch_loop_marker"),
        disarm!(),
        leave!(),
        sys_ioctl = const libc::SYS_ioctl,
        disable = const bindings::DISABLE,
    )
}

/// The branch loop, read with rdpmc: after the loop it loads the page's
/// seqlock, index and offset, runs rdpmc, loads the seqlock again, then
/// disarms. No conditional branch is added, so a conditional-branch count
/// read this way must equal `iterations` exactly.
#[unsafe(naked)]
unsafe extern "sysv64" fn branch_loop_rdpmc(args: *mut WindowArgs) {
    naked_asm!(
        enter!(),
        "mov r14, qword ptr [rbx + 80]",
        arm!(),
        begin!(),
        loop_body!("", "pmu_conformance_branch_loop_rdpmc_marker"),
        // The read: lock, index, offset, rdpmc(index - 1), lock again.
        "mov r8d, dword ptr [r14 + 8]",
        "mov ecx, dword ptr [r14 + 12]",
        "mov r9, qword ptr [r14 + 16]",
        "mov r10d, ecx",
        "dec ecx",
        "rdpmc",
        "shl rdx, 32",
        "or rax, rdx",
        "mov rbp, rax",
        "mov ecx, dword ptr [r14 + 8]",
        "mov dword ptr [rbx + 100], ecx",
        disarm!(),
        "mov qword ptr [rbx + 88], rbp",
        "mov dword ptr [rbx + 96], r8d",
        "mov dword ptr [rbx + 104], r10d",
        "mov qword ptr [rbx + 112], r9",
        leave!(),
        sys_ioctl = const libc::SYS_ioctl,
        disable = const bindings::DISABLE,
    )
}

/// rr's Xen PMI probe: ENABLE, then RESET and IOC_PERIOD inside the window,
/// each checked with one conditional branch, then `iterations` loop passes.
/// With period = branches − 1 the counter wraps on the last back-edge, just
/// before the disarming syscall enters the kernel.
#[unsafe(naked)]
unsafe extern "sysv64" fn rr_xen_probe(args: *mut WindowArgs) {
    naked_asm!(
        enter!(),
        // r14: what a failing in-window ioctl returned; rbp: which one (0 none).
        "xor r14d, r14d",
        "xor ebp, ebp",
        arm!(),
        "mov qword ptr [rbx + 48], rax",
        // RESET: the count restarts at zero when this returns.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov esi, {reset}",
        "xor edx, edx",
        "syscall",
        // listing.before: 10 instructions, 2 conditional branches.
        "test rax, rax",
        "jnz 7f",
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov esi, {period}",
        "lea rdx, [rbx + 32]",
        "syscall",
        "test rax, rax",
        "jnz 8f",
        "xor r15d, r15d",
        loop_body!("", "pmu_conformance_rr_xen_probe_marker"),
        "9:",
        disarm!(),
        "mov qword ptr [rbx + 56], r14",
        "mov qword ptr [rbx + 64], rbp",
        leave!(),
        // Failure paths: remember which ioctl failed and what it said, then disarm.
        "7:",
        "mov r14, rax",
        "mov ebp, 1",
        "jmp 9b",
        "8:",
        "mov r14, rax",
        "mov ebp, 2",
        "jmp 9b",
        sys_ioctl = const libc::SYS_ioctl,
        reset = const bindings::RESET,
        period = const bindings::PERIOD,
        disable = const bindings::DISABLE,
    )
}

/// One byte written to each of `iterations` fresh pages, 4 KiB apart: the
/// body adds `mov byte ptr [r14], 1; add r14, 4096` (6 instructions, 1 fault).
#[unsafe(naked)]
unsafe extern "sysv64" fn page_touch(args: *mut WindowArgs) {
    naked_asm!(
        enter!(),
        "mov r14, qword ptr [rbx + 40]",
        arm!(),
        begin!(),
        loop_body!("mov byte ptr [r14], 1\nadd r14, 4096\n", "pmu_conformance_page_touch_marker"),
        disarm!(),
        leave!(),
        sys_ioctl = const libc::SYS_ioctl,
        disable = const bindings::DISABLE,
    )
}

/// rr's VMware probe shape: CPUID leaf 0, a conditional branch on its result
/// (never taken: every CPU has a leaf 0), CPUID leaf 1, then the loop body.
/// In a guest each CPUID exits to the hypervisor; VMware's hvsim sometimes
/// drops the branch between them.
#[unsafe(naked)]
unsafe extern "sysv64" fn cpuid_loop(args: *mut WindowArgs) {
    naked_asm!(
        enter!(),
        arm!(),
        begin!(),
        loop_body!(
            "xor eax, eax\ncpuid\ntest eax, eax\njz 3f\nmov eax, 1\ncpuid\n",
            "pmu_conformance_cpuid_loop_marker"
        ),
        "3:",
        disarm!(),
        leave!(),
        sys_ioctl = const libc::SYS_ioctl,
        disable = const bindings::DISABLE,
    )
}

/// The listings in `workload.rs` are checked against the machine code here:
/// each window is decoded and split at its arming syscall, its loop and its
/// disarming syscall, and every part must retire what its listing says.
#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};

    use super::*;
    use crate::case::ProbeKind;
    use crate::workload::Counts;

    type WindowFn = unsafe extern "sysv64" fn(*mut WindowArgs);

    /// The window's code, from its entry to its first `ret`.
    fn decode(window: WindowFn) -> Vec<Instruction> {
        let entry = window as usize;
        // SAFETY: reads code bytes of this binary's text section; the windows
        // are a few dozen instructions, far inside 512 bytes of mapped text.
        let bytes = unsafe { std::slice::from_raw_parts(entry as *const u8, 512) };
        let mut out = Vec::new();
        for instruction in Decoder::with_ip(64, bytes, entry as u64, DecoderOptions::NONE) {
            out.push(instruction);
            if instruction.mnemonic() == Mnemonic::Ret {
                break;
            }
        }
        out
    }

    fn tally(code: &[Instruction]) -> Counts {
        let is = |f: FlowControl| code.iter().filter(|i| i.flow_control() == f).count() as u64;
        let cpuid_at: Vec<usize> = code
            .iter()
            .enumerate()
            .filter(|(_, i)| i.mnemonic() == Mnemonic::Cpuid)
            .map(|(n, _)| n)
            .collect();
        let between = code
            .iter()
            .enumerate()
            .filter(|(n, i)| {
                i.flow_control() == FlowControl::ConditionalBranch
                    && cpuid_at.iter().any(|c| c < n)
                    && cpuid_at.iter().any(|c| c > n)
            })
            .count() as u64;
        Counts {
            instructions: code.len() as u64,
            conditional_branches: is(FlowControl::ConditionalBranch),
            branches: is(FlowControl::ConditionalBranch) + is(FlowControl::UnconditionalBranch),
            marker_hits: code.iter().filter(|i| i.mnemonic() == Mnemonic::Nop).count() as u64,
            // A fault is not visible in the code; the listing is checked by the page-fault cases.
            page_faults: 0,
            vm_exits: code
                .iter()
                .filter(|i| matches!(i.mnemonic(), Mnemonic::Cpuid | Mnemonic::Wrmsr))
                .count() as u64,
            branches_between_cpuids: between,
        }
    }

    /// Splits a window into (before, body, after), counting from the return of
    /// its `restart`-th syscall (1-based) to its last syscall.
    fn parts(window: WindowFn, restart: usize) -> (Counts, Counts, Counts) {
        let code = decode(window);
        let syscalls: Vec<usize> = code
            .iter()
            .enumerate()
            .filter(|(_, i)| i.mnemonic() == Mnemonic::Syscall)
            .map(|(n, _)| n)
            .collect();
        let start = syscalls[restart - 1] + 1;
        let end = *syscalls.last().unwrap();
        let back_edge = (start..end)
            .find(|&n| {
                code[n].flow_control() == FlowControl::ConditionalBranch && code[n].near_branch_target() < code[n].ip()
            })
            .expect("every window has a loop");
        let head = code
            .iter()
            .position(|i| i.ip() == code[back_edge].near_branch_target())
            .unwrap();
        (
            tally(&code[start..head]),
            tally(&code[head..=back_edge]),
            tally(&code[back_edge + 1..=end]),
        )
    }

    fn assert_listing(window: WindowFn, restart: usize, kind: WorkloadKind) {
        let listing = kind.listing(ProbeKind::Linux).unwrap();
        let (before, body, after) = parts(window, restart);
        let no_faults = |c: Counts| Counts { page_faults: 0, ..c };
        assert_eq!(before, no_faults(listing.before), "{kind}: before the loop");
        assert_eq!(body, no_faults(listing.body), "{kind}: the loop body");
        assert_eq!(after, no_faults(listing.after), "{kind}: after the loop");
    }

    #[test]
    fn the_windows_retire_what_their_listings_say() {
        assert_listing(branch_loop, 1, WorkloadKind::BranchLoop);
        // rr's probe restarts the count with RESET, its second syscall.
        assert_listing(rr_xen_probe, 2, WorkloadKind::RrXenProbe);
        assert_listing(page_touch, 1, WorkloadKind::PageTouch);
        assert_listing(cpuid_loop, 1, WorkloadKind::CpuidLoop);
    }

    #[test]
    fn the_rdpmc_read_adds_no_branch() {
        let (before, body, after) = parts(branch_loop_rdpmc, 1);
        let listing = WorkloadKind::BranchLoop.listing(ProbeKind::Linux).unwrap();
        assert_eq!((before, body), (listing.before, listing.body));
        assert_eq!(after.conditional_branches + after.branches, 0);
    }
}
