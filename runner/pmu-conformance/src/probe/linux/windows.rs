//! The counted windows: each workload as one naked function whose arming and
//! disarming ioctls are raw `syscall`s inside the same asm.
//!
//! Between the return of the arming ioctl and the disarming `syscall`, only
//! the instructions written here retire in user mode, so the counts in
//! [`crate::workload::WorkloadKind::listing`] are exact by construction: no
//! compiler-generated code, no libc wrapper, no branch we did not write.
//! Keep each function and its listing in step; the comments mark which lines
//! each listing entry counts.

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
    }
    let marker = match kind {
        WorkloadKind::BranchLoop => &raw const pmu_conformance_branch_loop_marker,
        WorkloadKind::RrXenProbe => &raw const pmu_conformance_rr_xen_probe_marker,
        WorkloadKind::PageTouch => &raw const pmu_conformance_page_touch_marker,
    };
    marker as u64
}

/// `iterations` passes of `inc; marker: nop; cmp; jne`.
#[unsafe(naked)]
unsafe extern "sysv64" fn branch_loop(args: *mut WindowArgs) {
    naked_asm!(
        "push rbx",
        "push r12",
        "push r13",
        "push r15",
        "mov rbx, rdi",
        "mov r12, qword ptr [rbx]",
        "mov r13, qword ptr [rbx + 24]",
        // Arm: ioctl(fd, arm_request, arm_arg). Counting starts in the kernel.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov rsi, qword ptr [rbx + 8]",
        "mov rdx, qword ptr [rbx + 16]",
        "syscall",
        // listing.before: 2 instructions.
        "mov qword ptr [rbx + 48], rax",
        "xor r15d, r15d",
        // listing.body, once per iteration: 4 instructions, 1 conditional branch, 1 marker.
        "2:",
        "inc r15",
        ".globl pmu_conformance_branch_loop_marker",
        ".hidden pmu_conformance_branch_loop_marker",
        "pmu_conformance_branch_loop_marker:",
        "nop",
        "cmp r15, r13",
        "jne 2b",
        // listing.after: the disarm, 5 instructions up to and including `syscall`.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov esi, {disable}",
        "xor edx, edx",
        "syscall",
        "mov qword ptr [rbx + 72], rax",
        "pop r15",
        "pop r13",
        "pop r12",
        "pop rbx",
        "ret",
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
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rbx, rdi",
        "mov r12, qword ptr [rbx]",
        "mov r13, qword ptr [rbx + 24]",
        "mov r14, qword ptr [rbx + 80]",
        // Arm.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov rsi, qword ptr [rbx + 8]",
        "mov rdx, qword ptr [rbx + 16]",
        "syscall",
        // listing.before, as branch-loop.
        "mov qword ptr [rbx + 48], rax",
        "xor r15d, r15d",
        // listing.body, as branch-loop (the marker is branch-loop's own symbol).
        "2:",
        "inc r15",
        "nop",
        "cmp r15, r13",
        "jne 2b",
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
        // Disarm.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov esi, {disable}",
        "xor edx, edx",
        "syscall",
        "mov qword ptr [rbx + 72], rax",
        "mov qword ptr [rbx + 88], rbp",
        "mov dword ptr [rbx + 96], r8d",
        "mov dword ptr [rbx + 104], r10d",
        "mov qword ptr [rbx + 112], r9",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
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
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rbx, rdi",
        "mov r12, qword ptr [rbx]",
        "mov r13, qword ptr [rbx + 24]",
        "xor r14d, r14d",
        "xor ebp, ebp",
        // Arm (ENABLE or REFRESH).
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov rsi, qword ptr [rbx + 8]",
        "mov rdx, qword ptr [rbx + 16]",
        "syscall",
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
        // listing.body, once per iteration.
        "2:",
        "inc r15",
        ".globl pmu_conformance_rr_xen_probe_marker",
        ".hidden pmu_conformance_rr_xen_probe_marker",
        "pmu_conformance_rr_xen_probe_marker:",
        "nop",
        "cmp r15, r13",
        "jne 2b",
        // listing.after: the disarm.
        "9:",
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov esi, {disable}",
        "xor edx, edx",
        "syscall",
        "mov qword ptr [rbx + 72], rax",
        "mov qword ptr [rbx + 56], r14",
        "mov qword ptr [rbx + 64], rbp",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
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

/// One byte written to each of `iterations` fresh pages, 4 KiB apart.
#[unsafe(naked)]
unsafe extern "sysv64" fn page_touch(args: *mut WindowArgs) {
    naked_asm!(
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rbx, rdi",
        "mov r12, qword ptr [rbx]",
        "mov r13, qword ptr [rbx + 24]",
        "mov r14, qword ptr [rbx + 40]",
        // Arm.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov rsi, qword ptr [rbx + 8]",
        "mov rdx, qword ptr [rbx + 16]",
        "syscall",
        // listing.before: 2 instructions.
        "mov qword ptr [rbx + 48], rax",
        "xor r15d, r15d",
        // listing.body: 6 instructions, 1 page fault, 1 conditional branch, 1 marker.
        "2:",
        "mov byte ptr [r14], 1",
        "add r14, 4096",
        "inc r15",
        ".globl pmu_conformance_page_touch_marker",
        ".hidden pmu_conformance_page_touch_marker",
        "pmu_conformance_page_touch_marker:",
        "nop",
        "cmp r15, r13",
        "jne 2b",
        // listing.after: the disarm.
        "mov eax, {sys_ioctl}",
        "mov rdi, r12",
        "mov esi, {disable}",
        "xor edx, edx",
        "syscall",
        "mov qword ptr [rbx + 72], rax",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "ret",
        sys_ioctl = const libc::SYS_ioctl,
        disable = const bindings::DISABLE,
    )
}
