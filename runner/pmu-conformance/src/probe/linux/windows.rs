//! The counted windows: each workload as one naked function whose arming and
//! disarming ioctls are raw `syscall`s inside the same asm.
//!
//! Between the return of the arming ioctl and the disarming `syscall`, only
//! the instructions written here retire in user mode, so the counts in
//! [`crate::workload::WorkloadKind::listing`] are exact by construction: no
//! compiler-generated code, no libc wrapper, no branch we did not write.
//! The tests at the end decode each function's machine code and hold it to
//! its listing, so the two cannot drift apart, and execute every window;
//! `tests/trace.rs` single-steps each one (`trace/`) and holds what it
//! really executes to the listing too.
//!
//! # Registers
//!
//! Each window is an `extern "sysv64" fn(*mut WindowArgs)`: it preserves rbx,
//! rbp, r12–r15 and rsp (`enter!` saves them, `leave!` restores them), and
//! may clobber rax, rcx, rdx, rsi, rdi, r8–r11 and the flags. Inside, each
//! register has one role:
//!
//! | register | holds | written after `enter!` by |
//! | --- | --- | --- |
//! | rbp | the `WindowArgs` pointer | nothing |
//! | r12 | the perf fd | nothing |
//! | r13 | the loop's iteration count | nothing |
//! | r15 | the loop counter | `begin!` and the loop |
//! | r14 | page-touch's cursor, the rdpmc page, or rr's failing ioctl result | its window |
//! | rbx | scratch: rdpmc's result, rr's failing step | its window, and `cpuid` |
//!
//! `syscall` overwrites rax, rcx and r11, and `cpuid` overwrites eax, ebx,
//! ecx and edx, so what must survive them (the args pointer above all) lives
//! in rbp and r12–r15. The tests hold every window to this table, statically
//! and by running it with sentinels in the callee-saved registers.

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
            WorkloadKind::UntakenBranchLoop => untaken_branch_loop(args),
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
        static pmu_conformance_untaken_branch_loop_marker: u8;
    }
    let marker = match kind {
        WorkloadKind::BranchLoop => &raw const pmu_conformance_branch_loop_marker,
        WorkloadKind::RrXenProbe => &raw const pmu_conformance_rr_xen_probe_marker,
        WorkloadKind::PageTouch => &raw const pmu_conformance_page_touch_marker,
        WorkloadKind::CpuidLoop => &raw const pmu_conformance_cpuid_loop_marker,
        WorkloadKind::UntakenBranchLoop => &raw const pmu_conformance_untaken_branch_loop_marker,
    };
    marker as u64
}

/// Where `kind`'s window starts (its rdpmc variant with `rdpmc`), for the
/// trace that steps through it.
pub fn entry(kind: WorkloadKind, rdpmc: bool) -> u64 {
    let window: unsafe extern "sysv64" fn(*mut WindowArgs) = match (kind, rdpmc) {
        (WorkloadKind::BranchLoop, true) => branch_loop_rdpmc,
        (WorkloadKind::BranchLoop, false) => branch_loop,
        (WorkloadKind::RrXenProbe, _) => rr_xen_probe,
        (WorkloadKind::PageTouch, _) => page_touch,
        (WorkloadKind::CpuidLoop, _) => cpuid_loop,
        (WorkloadKind::UntakenBranchLoop, _) => untaken_branch_loop,
    };
    window as usize as u64
}

/// The marker of the rdpmc variant's loop.
pub fn rdpmc_marker_address() -> u64 {
    unsafe extern "C" {
        static pmu_conformance_branch_loop_rdpmc_marker: u8;
    }
    (&raw const pmu_conformance_branch_loop_rdpmc_marker) as u64
}

/// Which of the window's syscalls (1-based) starts the count when it
/// returns: the arming ioctl, or for rr's probe the RESET after it.
pub fn counting_syscall(kind: WorkloadKind) -> usize {
    match kind {
        WorkloadKind::RrXenProbe => 2,
        WorkloadKind::BranchLoop
        | WorkloadKind::PageTouch
        | WorkloadKind::CpuidLoop
        | WorkloadKind::UntakenBranchLoop => 1,
    }
}

// The pieces every window shares. Each expands to one asm string; a window
// is these pieces around its own listing, so it reads top to bottom as the
// listing in `workload.rs` does.

/// Saves the callee-saved registers the windows use and loads what they all
/// need: rbp = args, r12 = fd, r13 = iterations.
macro_rules! enter {
    () => {
        concat!(
            "push rbx\n",
            "push rbp\n",
            "push r12\n",
            "push r13\n",
            "push r14\n",
            "push r15\n",
            "mov rbp, rdi\n",
            "mov r12, qword ptr [rbp]\n",
            "mov r13, qword ptr [rbp + 24]\n",
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
            "mov rsi, qword ptr [rbp + 8]\n",
            "mov rdx, qword ptr [rbp + 16]\n",
            "syscall\n",
        )
    };
}

/// listing.before of the loops: keep the arm's result; zero the pass counter.
/// 2 instructions.
macro_rules! begin {
    () => {
        concat!("mov qword ptr [rbp + 48], rax\n", "xor r15d, r15d\n")
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
            "mov qword ptr [rbp + 72], rax\n",
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
        "mov r14, qword ptr [rbp + 80]",
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
        "mov rbx, rax",
        "mov ecx, dword ptr [r14 + 8]",
        "mov dword ptr [rbp + 100], ecx",
        disarm!(),
        "mov qword ptr [rbp + 88], rbx",
        "mov dword ptr [rbp + 96], r8d",
        "mov dword ptr [rbp + 104], r10d",
        "mov qword ptr [rbp + 112], r9",
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
        // r14: what a failing in-window ioctl returned; rbx: which one (0 none).
        "xor r14d, r14d",
        "xor ebx, ebx",
        arm!(),
        "mov qword ptr [rbp + 48], rax",
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
        "lea rdx, [rbp + 32]",
        "syscall",
        "test rax, rax",
        "jnz 8f",
        "xor r15d, r15d",
        loop_body!("", "pmu_conformance_rr_xen_probe_marker"),
        "9:",
        disarm!(),
        "mov qword ptr [rbp + 56], r14",
        "mov qword ptr [rbp + 64], rbx",
        leave!(),
        // Failure paths: remember which ioctl failed and what it said, then disarm.
        "7:",
        "mov r14, rax",
        "mov ebx, 1",
        "jmp 9b",
        "8:",
        "mov r14, rax",
        "mov ebx, 2",
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
        "mov r14, qword ptr [rbp + 40]",
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

/// The branch loop with a guard that is never taken: the marker, then
/// `test r15, r15; jz` (r15 is at least 1 after `inc`), then the back-edge.
/// Two conditional branches per pass, one of them never taken.
#[unsafe(naked)]
unsafe extern "sysv64" fn untaken_branch_loop(args: *mut WindowArgs) {
    naked_asm!(
        enter!(),
        arm!(),
        begin!(),
        "2:",
        "inc r15",
        ".globl pmu_conformance_untaken_branch_loop_marker",
        ".hidden pmu_conformance_untaken_branch_loop_marker",
        "pmu_conformance_untaken_branch_loop_marker:",
        "nop",
        "test r15, r15",
        "jz 3f",
        "cmp r15, r13",
        "jne 2b",
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
    use crate::vocabulary::ProbeKind;
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
        assert_listing(untaken_branch_loop, 1, WorkloadKind::UntakenBranchLoop);
    }

    #[test]
    fn the_rdpmc_read_adds_no_branch() {
        let (before, body, after) = parts(branch_loop_rdpmc, 1);
        let listing = WorkloadKind::BranchLoop.listing(ProbeKind::Linux).unwrap();
        assert_eq!((before, body), (listing.before, listing.body));
        assert_eq!(after, listing.after + crate::workload::RDPMC_READ);
    }
}

/// Every window, run for real: with sentinels in every callee-saved register
/// (which must survive), with no perf event (`fd` -1, so each ioctl fails
/// with EBADF and the window runs its loop regardless) and with a software
/// event where a window's path depends on its ioctls succeeding. The rdpmc
/// window runs with rdpmc emulated, since without a PMU the instruction faults.
#[cfg(test)]
mod execution {
    use std::mem::MaybeUninit;
    use std::sync::atomic::{AtomicU64, Ordering};

    use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, Mnemonic, OpAccess, Register};

    use super::*;
    use crate::event_table::{Encoding, SoftwareEvent};
    use crate::probe::linux::PARKED_PERIOD;
    use crate::probe::linux::perf::{Counter, CounterSpec};

    type WindowFn = unsafe extern "sysv64" fn(*mut WindowArgs);

    const SENTINELS: [u64; 6] = [
        0x1111_2222_3333_4444, // rbx
        0x5555_6666_7777_8888, // rbp
        0x0c0c_0c0c_0c0c_0c0c, // r12
        0x0d0d_0d0d_0d0d_0d0d, // r13
        0x0e0e_0e0e_0e0e_0e0e, // r14
        0x0f0f_0f0f_0f0f_0f0f, // r15
    ];

    /// Calls `window(args)` with [`SENTINELS`] in rbx, rbp, r12–r15, then
    /// stores what those registers hold after it returned, and how far rsp
    /// moved, into `after`.
    #[unsafe(naked)]
    unsafe extern "sysv64" fn call_with_sentinels(window: WindowFn, args: *mut WindowArgs, after: *mut [u64; 7]) {
        naked_asm!(
            "push rbx",
            "push rbp",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            // Seven pushes keep rsp 16-byte aligned at the call.
            "push rdx",
            "mov qword ptr [rdx + 48], rsp",
            "mov rax, rdi",
            "mov rdi, rsi",
            "movabs rbx, {s0}",
            "movabs rbp, {s1}",
            "movabs r12, {s2}",
            "movabs r13, {s3}",
            "movabs r14, {s4}",
            "movabs r15, {s5}",
            "call rax",
            "mov rax, qword ptr [rsp]",
            "mov qword ptr [rax], rbx",
            "mov qword ptr [rax + 8], rbp",
            "mov qword ptr [rax + 16], r12",
            "mov qword ptr [rax + 24], r13",
            "mov qword ptr [rax + 32], r14",
            "mov qword ptr [rax + 40], r15",
            "mov rcx, qword ptr [rax + 48]",
            "sub rcx, rsp",
            "mov qword ptr [rax + 48], rcx",
            "pop rdx",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbp",
            "pop rbx",
            "ret",
            s0 = const SENTINELS[0],
            s1 = const SENTINELS[1],
            s2 = const SENTINELS[2],
            s3 = const SENTINELS[3],
            s4 = const SENTINELS[4],
            s5 = const SENTINELS[5],
        )
    }

    /// Runs `window` and asserts it left every callee-saved register and rsp as it found them.
    fn execute(name: &str, window: WindowFn, args: &mut WindowArgs) {
        let mut after = [0u64; 7];
        // SAFETY: `window` is one of this file's windows and `args` is set up
        // as it needs (its buffer or page, where it has one).
        unsafe { call_with_sentinels(window, args, &mut after) };
        let names = ["rbx", "rbp", "r12", "r13", "r14", "r15"];
        for (i, name_of_register) in names.iter().enumerate() {
            assert_eq!(
                after[i], SENTINELS[i],
                "{name}: {name_of_register} was {:#x} after the window, not the caller's {:#x}",
                after[i], SENTINELS[i]
            );
        }
        assert_eq!(after[6], 0, "{name}: rsp moved by {} bytes", after[6] as i64);
    }

    fn args(fd: i64, iterations: u64) -> WindowArgs {
        WindowArgs {
            fd,
            arm_request: ENABLE,
            iterations,
            ..WindowArgs::default()
        }
    }

    const EBADF: i64 = -(libc::EBADF as i64);

    #[test]
    fn the_loops_run_without_a_counter_and_preserve_the_callers_registers() {
        let mut a = args(-1, 1000);
        execute("branch-loop", branch_loop, &mut a);
        assert_eq!((a.arm_result, a.disarm_result), (EBADF, EBADF));

        // The cpuid loop once wrote through rbx after `cpuid` had overwritten it.
        let mut a = args(-1, 100);
        execute("cpuid-loop", cpuid_loop, &mut a);
        assert_eq!((a.arm_result, a.disarm_result), (EBADF, EBADF));

        let mut a = args(-1, 100);
        execute("untaken-branch-loop", untaken_branch_loop, &mut a);
        assert_eq!((a.arm_result, a.disarm_result), (EBADF, EBADF));

        let mut pages = vec![0u8; 16 * 4096];
        let mut a = args(-1, 16);
        a.buffer = pages.as_mut_ptr() as u64;
        execute("page-touch", page_touch, &mut a);
        assert_eq!(a.disarm_result, EBADF);
        assert!(
            (0..16).all(|page| pages[page * 4096] == 1),
            "page-touch wrote one byte per page"
        );

        // rr's probe takes its failure path when RESET fails.
        let mut a = args(-1, 100);
        execute("rr-xen-probe (RESET fails)", rr_xen_probe, &mut a);
        assert_eq!((a.failed_step, a.step_result), (1, EBADF));
    }

    #[test]
    fn rr_probe_runs_its_loop_when_its_ioctls_succeed() {
        // IOC_PERIOD needs a sampling event; the task clock is one any Linux has.
        let counter = Counter::open(&CounterSpec {
            encoding: Encoding::Software(SoftwareEvent::TaskClock),
            raw_type: 0,
            breakpoint_address: 0,
            sample_period: Some(PARKED_PERIOD),
        })
        .expect("a task-clock counter opens on any Linux");
        let mut a = args(std::os::fd::AsRawFd::as_raw_fd(&counter) as i64, 498);
        a.period = PARKED_PERIOD;
        execute("rr-xen-probe", rr_xen_probe, &mut a);
        assert_eq!(
            (a.arm_result, a.failed_step, a.step_result, a.disarm_result),
            (0, 0, 0, 0)
        );
    }

    /// rdpmc's emulation: how many times it stood in, and what it returns.
    static EMULATED: AtomicU64 = AtomicU64::new(0);
    const EMULATED_PMC: u64 = 0x0000_1234_89ab_cdef;

    /// A SIGSEGV handler that completes a faulting `rdpmc` (0f 33) with
    /// [`EMULATED_PMC`] in edx:eax. Any other fault gets the default action.
    extern "C" fn emulate_rdpmc(_signal: i32, _info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid ucontext for an SA_SIGINFO handler.
        unsafe {
            let gregs = &mut (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
            let rip = gregs[libc::REG_RIP as usize] as *const u8;
            if *rip == 0x0f && *rip.add(1) == 0x33 {
                gregs[libc::REG_RAX as usize] = (EMULATED_PMC & 0xffff_ffff) as i64;
                gregs[libc::REG_RDX as usize] = (EMULATED_PMC >> 32) as i64;
                gregs[libc::REG_RIP as usize] += 2;
                EMULATED.fetch_add(1, Ordering::Relaxed);
            } else {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            }
        }
    }

    #[test]
    fn the_rdpmc_window_reads_the_page_and_the_counter() {
        // A stand-in perf mmap page: seqlock at 8, index at 12, offset at 16.
        let mut page = vec![0u8; 4096];
        page[8..12].copy_from_slice(&7u32.to_le_bytes());
        page[12..16].copy_from_slice(&1u32.to_le_bytes());
        page[16..24].copy_from_slice(&(-5i64).to_le_bytes());
        let mut a = args(-1, 1000);
        a.user_page = page.as_ptr() as u64;
        // SAFETY: plain sigaction calls; the old action is restored below.
        let old = unsafe {
            let mut action: libc::sigaction = MaybeUninit::zeroed().assume_init();
            action.sa_sigaction = emulate_rdpmc as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            let mut old: libc::sigaction = MaybeUninit::zeroed().assume_init();
            assert_eq!(libc::sigaction(libc::SIGSEGV, &action, &mut old), 0);
            old
        };
        execute("branch-loop (rdpmc)", branch_loop_rdpmc, &mut a);
        unsafe { libc::sigaction(libc::SIGSEGV, &old, std::ptr::null_mut()) };
        assert_eq!((a.lock_before, a.lock_after, a.index, a.offset), (7, 7, 1, -5));
        assert_eq!(a.disarm_result, EBADF);
        // Where rdpmc is allowed here it read a real counter; elsewhere the emulation answered.
        if EMULATED.load(Ordering::Relaxed) > 0 {
            assert_eq!(a.pmc, EMULATED_PMC);
        }
    }

    /// The windows' code from entry to the first `ret`, split at `enter!`'s
    /// last instruction and `leave!`'s first: the body between must never
    /// write the registers that hold the args pointer, the fd, the iteration
    /// count or the stack pointer, counting what `cpuid` and `syscall`
    /// write implicitly.
    #[test]
    fn no_window_body_writes_the_registers_it_relies_on() {
        let windows: [(&str, WindowFn); 6] = [
            ("branch-loop", branch_loop),
            ("branch-loop (rdpmc)", branch_loop_rdpmc),
            ("rr-xen-probe", rr_xen_probe),
            ("page-touch", page_touch),
            ("cpuid-loop", cpuid_loop),
            ("untaken-branch-loop", untaken_branch_loop),
        ];
        let mut info = InstructionInfoFactory::new();
        for (name, window) in windows {
            let entry = window as usize;
            // SAFETY: as in `tests::decode`: a few dozen instructions of this binary's text.
            let bytes = unsafe { std::slice::from_raw_parts(entry as *const u8, 512) };
            let code: Vec<_> = Decoder::with_ip(64, bytes, entry as u64, DecoderOptions::NONE)
                .into_iter()
                .take_while(|i| i.mnemonic() != Mnemonic::Ret)
                .collect();
            // enter!: six pushes and three loads; leave!: six pops. What the
            // loads fill (the args pointer, taken from rdi, then the fd and
            // the iteration count) must survive the whole body, as must rsp.
            let (enter, body) = code.split_at(9);
            let body = &body[..body.len() - 6];
            let mut kept: Vec<Register> = enter[6..].iter().map(|i| i.op0_register().full_register()).collect();
            assert_eq!(
                enter[6].op1_register(),
                Register::RDI,
                "{name}: enter! loads args from rdi"
            );
            kept.push(Register::RSP);
            for instruction in body {
                for used in info.info(instruction).used_registers() {
                    let writes = matches!(
                        used.access(),
                        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
                    );
                    let register = used.register().full_register();
                    assert!(
                        !(writes && kept.contains(&register)),
                        "{name}: `{:?}` at {:#x} writes {register:?}, which the window relies on",
                        instruction.mnemonic(),
                        instruction.ip()
                    );
                }
            }
        }
    }
}
