//! The tracer's side: single-steps the child through its window, counting by
//! the convention in [`crate::counting`], and kills it when the window
//! returns, when it misbehaves, or when the limits run out.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::time::Instant;

use super::{HandlerCost, TraceError, TraceRequest, TracedWindow, early_exit};
use crate::counting::Executed;
use crate::workload::Counts;

/// Where things are in the child, which shares this process's layout.
pub struct Layout {
    pub entry: u64,
    pub marker: u64,
    pub counting_syscall: usize,
    pub handler: u64,
    pub signal: i32,
    /// Deliver a notification when the marker is about to run for this (1-based) time.
    pub notify_at_marker: Option<u64>,
}

/// The child, killed and reaped however the trace ends.
struct Child(libc::pid_t);

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: signals and reaps our own child.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

/// Kills the child at the deadline even if a step never comes back (a
/// `waitpid` blocks), so a trace cannot hang its caller; dropped when the
/// trace ends first.
struct Deadline {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Deadline {
    fn start(pid: libc::pid_t, after: std::time::Duration) -> Deadline {
        let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let watched = done.clone();
        std::thread::spawn(move || {
            let (lock, wake) = &*watched;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (finished, _) = wake
                .wait_timeout_while(guard, after, |finished| !*finished)
                .unwrap_or_else(|p| p.into_inner());
            if !*finished {
                // SAFETY: signals our own child, not yet reaped (the trace still holds it).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Deadline { done }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let (lock, wake) = &*self.done;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }
}

enum Stop {
    Signal(i32),
    Exited(i32),
    Killed(i32),
}

fn wait(pid: libc::pid_t) -> Result<Stop, TraceError> {
    let mut status = 0;
    // SAFETY: waits for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(TraceError::Failed(format!("waitpid: {}", io::Error::last_os_error())));
    }
    Ok(if libc::WIFSTOPPED(status) {
        Stop::Signal(libc::WSTOPSIG(status))
    } else if libc::WIFEXITED(status) {
        Stop::Exited(libc::WEXITSTATUS(status))
    } else {
        Stop::Killed(libc::WTERMSIG(status))
    })
}

/// A ptrace request, as each libc types it (glibc unsigned, musl signed).
#[cfg(target_env = "musl")]
type Request = libc::c_int;
#[cfg(not(target_env = "musl"))]
type Request = libc::c_uint;

fn ptrace(request: Request, pid: libc::pid_t, data: usize, what: &str) -> Result<(), TraceError> {
    // SAFETY: requests on our stopped tracee; `data` is what the request takes.
    if unsafe { libc::ptrace(request, pid, 0usize, data) } < 0 {
        return Err(TraceError::Failed(format!(
            "ptrace({what}): {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn registers(pid: libc::pid_t) -> Result<libc::user_regs_struct, TraceError> {
    let mut regs = MaybeUninit::<libc::user_regs_struct>::zeroed();
    ptrace(libc::PTRACE_GETREGS, pid, regs.as_mut_ptr() as usize, "GETREGS")?;
    // SAFETY: GETREGS filled it.
    Ok(unsafe { regs.assume_init() })
}

/// The child's minor plus major faults so far, from /proc/PID/stat.
fn faults(pid: libc::pid_t) -> Result<u64, TraceError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| TraceError::Failed(format!("reading the child's fault counts: {e}")))?;
    // Fields after the parenthesised command: state is field 3; minflt 10, majflt 12.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(10), field(12)) {
        (Some(minor), Some(major)) => Ok(minor + major),
        _ => Err(TraceError::Failed(format!("unexpected /proc/{pid}/stat: {stat}"))),
    }
}

/// Reads up to 16 code bytes at `ip` in the child.
fn code_at(pid: libc::pid_t, ip: u64) -> Result<[u8; 16], TraceError> {
    let mut bytes = [0u8; 16];
    let local = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: 16,
    };
    let remote = libc::iovec {
        iov_base: ip as *mut libc::c_void,
        iov_len: 16,
    };
    // SAFETY: reads the child's memory into `bytes`; a short read leaves zeros.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n <= 0 {
        return Err(TraceError::Failed(format!(
            "reading the child's code at {ip:#x}: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(bytes)
}

#[derive(PartialEq, Eq)]
enum Phase {
    /// Not yet at the window's entry.
    Before,
    Window,
    /// In the notification handler, until execution is back at `resume`.
    Handler {
        resume: u64,
    },
}

/// Steps `pid` through its window.
pub fn step(pid: libc::pid_t, layout: &Layout, request: &TraceRequest) -> Result<TracedWindow, TraceError> {
    let child = Child(pid);
    // Declared after the child, so dropped before it: the watchdog stands
    // down before the child is reaped and its pid can be reused.
    let _deadline = Deadline::start(pid, request.deadline);
    let started = Instant::now();
    match wait(child.0)? {
        Stop::Signal(libc::SIGSTOP) => {}
        Stop::Exited(status) => {
            return Err(match status {
                super::EXIT_TRACEME => TraceError::Unavailable(early_exit(status)),
                _ => TraceError::Failed(early_exit(status)),
            });
        }
        Stop::Signal(other) => {
            return Err(TraceError::Failed(format!(
                "the child stopped with signal {other} first"
            )));
        }
        Stop::Killed(signal) => return Err(TraceError::Failed(format!("the child was killed by signal {signal}"))),
    }
    ptrace(
        libc::PTRACE_SETOPTIONS,
        pid,
        libc::PTRACE_O_EXITKILL as usize,
        "SETOPTIONS",
    )?;

    let mut decoded: HashMap<u64, Executed> = HashMap::new();
    let mut phase = Phase::Before;
    let mut syscalls = 0usize;
    let mut running = Counts::ZERO;
    let mut through_last_syscall = Counts::ZERO;
    let mut segment = Counts::ZERO;
    let mut segments = Vec::new();
    let mut faults_at_start = 0u64;
    let mut faults_in_window = 0u64;
    let mut faults_outside = 0u64;
    let mut faults_before_handler = 0u64;
    let mut handler = HandlerCost::default();
    let mut handler_read = false;
    let mut handled = false;
    let mut steps = 0u64;
    // A conditional branch counted, at this address, whose outcome the next stop shows.
    let mut pending_branch: Option<(u64, u64)> = None;
    let mut taken = 0u64;
    let mut taken_through_last_syscall = 0u64;
    loop {
        if steps >= request.step_limit {
            return Err(TraceError::Failed(format!(
                "gave up after {steps} steps (the limit) before the window returned"
            )));
        }
        if started.elapsed() > request.deadline {
            return Err(TraceError::Failed(format!(
                "gave up after {:?} (the deadline) and {steps} steps before the window returned",
                request.deadline
            )));
        }
        let regs = registers(pid)?;
        let ip = regs.rip;
        if let Some((at, len)) = pending_branch.take()
            && ip != at + len
        {
            taken += 1;
        }
        if phase == Phase::Before && ip == layout.entry {
            phase = Phase::Window;
        }
        if let Phase::Handler { resume } = phase
            && ip == resume
        {
            phase = Phase::Window;
            // Faults the delivery and the handler took are not the window's.
            faults_outside += faults(pid)? - faults_before_handler;
        }
        let mut delivered_from: Option<u64> = None;
        if phase != Phase::Before {
            let executed = match decoded.get(&ip) {
                Some(e) => *e,
                None => {
                    let bytes = code_at(pid, ip)?;
                    let e = Executed::decode(ip, &bytes).ok_or_else(|| {
                        TraceError::Failed(format!("undecodable instruction at {ip:#x}: {bytes:02x?}"))
                    })?;
                    decoded.insert(ip, e);
                    e
                }
            };
            match phase {
                Phase::Window => {
                    let counting = syscalls >= layout.counting_syscall;
                    let marker = ip == layout.marker;
                    if counting && marker && !handled && layout.notify_at_marker == Some(running.marker_hits + 1) {
                        // Deliver one notification here, before the marker runs.
                        delivered_from = Some(ip);
                    } else {
                        let one = executed.counts(marker && counting);
                        if syscalls >= 1 {
                            segment = segment + one;
                        }
                        if counting {
                            running = running + one;
                            if executed.conditional_branch {
                                pending_branch = Some((ip, executed.len));
                            }
                        }
                        if executed.syscall {
                            if syscalls >= 1 {
                                segments.push(std::mem::replace(&mut segment, Counts::ZERO));
                            }
                            if counting {
                                through_last_syscall = running;
                                taken_through_last_syscall = taken;
                            }
                        }
                        if executed.ret {
                            let mut counts = through_last_syscall;
                            counts.page_faults = faults_in_window.saturating_sub(faults_outside);
                            return Ok(TracedWindow {
                                counts,
                                segments,
                                taken_conditional_branches: taken_through_last_syscall,
                                handler: handled.then_some(handler),
                                steps,
                            });
                        }
                    }
                }
                Phase::Handler { .. } => {
                    handler.total = handler.total + executed.counts(false);
                    if executed.syscall && !handler_read {
                        handler.up_to_read = handler.total;
                        handler_read = true;
                    }
                }
                Phase::Before => {}
            }
            if let Some(resume) = delivered_from {
                faults_before_handler = faults(pid)?;
                deliver(pid, layout, regs.r12 as i32)?;
                phase = Phase::Handler { resume };
                handled = true;
                continue;
            }
            if phase == Phase::Window && executed.syscall {
                syscalls += 1;
            }
        }
        resume_one_step(pid, &regs, &decoded)?;
        steps += 1;
        // Fault counts are read as the count starts and at each later syscall.
        if phase == Phase::Window && decoded.get(&ip).is_some_and(|e| e.syscall) && syscalls >= layout.counting_syscall
        {
            let now = faults(pid)?;
            if syscalls == layout.counting_syscall {
                faults_at_start = now;
            }
            faults_in_window = now - faults_at_start;
        }
    }
}

/// One single step; a faulting rdpmc is completed here as a PMU-less
/// machine cannot, with zero in edx:eax.
fn resume_one_step(
    pid: libc::pid_t,
    regs: &libc::user_regs_struct,
    decoded: &HashMap<u64, Executed>,
) -> Result<(), TraceError> {
    ptrace(libc::PTRACE_SINGLESTEP, pid, 0, "SINGLESTEP")?;
    match wait(pid)? {
        Stop::Signal(libc::SIGTRAP) => Ok(()),
        Stop::Signal(libc::SIGSEGV) if decoded.get(&regs.rip).is_some_and(|e| e.rdpmc) => {
            let mut after = *regs;
            after.rax = 0;
            after.rdx = 0;
            after.rip += 2;
            ptrace(libc::PTRACE_SETREGS, pid, &after as *const _ as usize, "SETREGS")
        }
        Stop::Signal(signal) => Err(TraceError::Failed(format!(
            "the window took signal {signal} at {:#x}",
            regs.rip
        ))),
        Stop::Exited(status) => Err(TraceError::Failed(early_exit(status))),
        Stop::Killed(signal) => Err(TraceError::Failed(format!("the child was killed by signal {signal}"))),
    }
}

/// Queues the notification signal, turns it into an overflow notification
/// for the child's counter (si_code POLL_IN, si_fd), and steps into the
/// handler, which the kernel stops at before its first instruction.
/// `fd` is the child's counter, which the window keeps in r12.
fn deliver(pid: libc::pid_t, layout: &Layout, fd: i32) -> Result<(), TraceError> {
    // SAFETY: signals our own child.
    if unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, layout.signal) } != 0 {
        return Err(TraceError::Failed(format!("tgkill: {}", io::Error::last_os_error())));
    }
    ptrace(libc::PTRACE_SINGLESTEP, pid, 0, "SINGLESTEP")?;
    match wait(pid)? {
        Stop::Signal(s) if s == layout.signal => {}
        Stop::Signal(s) => return Err(TraceError::Failed(format!("expected the notification signal, got {s}"))),
        Stop::Exited(status) => return Err(TraceError::Failed(early_exit(status))),
        Stop::Killed(s) => return Err(TraceError::Failed(format!("the child was killed by signal {s}"))),
    }
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    ptrace(libc::PTRACE_GETSIGINFO, pid, info.as_mut_ptr() as usize, "GETSIGINFO")?;
    // SAFETY: GETSIGINFO filled it; si_code is at byte 8 and si_fd at byte 24 on x86_64.
    unsafe {
        let raw = info.as_mut_ptr().cast::<u8>();
        raw.add(8).cast::<i32>().write(linux_raw_sys::general::POLL_IN as i32);
        // The handler reads the counter, as a real notification makes it do.
        raw.add(24).cast::<i32>().write(fd);
    }
    ptrace(libc::PTRACE_SETSIGINFO, pid, info.as_ptr() as usize, "SETSIGINFO")?;
    ptrace(
        libc::PTRACE_SINGLESTEP,
        pid,
        layout.signal as usize,
        "SINGLESTEP into the handler",
    )?;
    match wait(pid)? {
        Stop::Signal(libc::SIGTRAP) => {}
        Stop::Signal(s) => {
            return Err(TraceError::Failed(format!(
                "entering the handler stopped with signal {s}"
            )));
        }
        Stop::Exited(status) => return Err(TraceError::Failed(early_exit(status))),
        Stop::Killed(s) => return Err(TraceError::Failed(format!("the child was killed by signal {s}"))),
    }
    let at = registers(pid)?.rip;
    if at != layout.handler {
        return Err(TraceError::Failed(format!(
            "the notification entered at {at:#x}, not the handler at {:#x}",
            layout.handler
        )));
    }
    Ok(())
}
