//! Debug traps the kernel did not claim, caught instead of killing the run.
//!
//! An execute breakpoint that perf owns is handled in the kernel: the hit is
//! counted and the thread never sees it. A debug exception the kernel's
//! breakpoint handler cannot match to an installed breakpoint becomes a
//! SIGTRAP for the thread instead (`exc_debug_user` → `send_sigtrap`), and
//! SIGTRAP's default action ends the whole process, report and all. These
//! machines raise one now and then on long breakpoint runs (the soak test
//! died of one). So once linux cases run, SIGTRAP has a handler that
//! records the trap (where and with what si_code) and lets the thread go on;
//! each window compares the tally before and after, and a window that took a
//! stray trap is that case's `error`, never a pass and never the run's death.
//!
//! The handler sets the resume flag (RF) in the saved flags, so returning to
//! an instruction that has an execute breakpoint on it does not trap again.

use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

static TRAPS: AtomicU64 = AtomicU64::new(0);
static LAST_ADDRESS: AtomicU64 = AtomicU64::new(0);
static LAST_CODE: AtomicI32 = AtomicI32::new(0);
static LAST_SENDER: AtomicI32 = AtomicI32::new(0);

/// EFLAGS.RF: the next instruction's execute breakpoints are ignored.
const RESUME_FLAG: i64 = 1 << 16;

extern "C" fn record(_signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO
    // handler; only atomics are touched, which is async-signal-safe.
    unsafe {
        let gregs = &mut (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
        LAST_ADDRESS.store(gregs[libc::REG_RIP as usize] as u64, Ordering::Relaxed);
        LAST_CODE.store((*info).si_code, Ordering::Relaxed);
        LAST_SENDER.store((*info).si_pid(), Ordering::Relaxed);
        gregs[libc::REG_EFL as usize] |= RESUME_FLAG;
    }
    TRAPS.fetch_add(1, Ordering::Release);
}

/// How many stray traps this process has taken so far.
pub fn taken() -> u64 {
    TRAPS.load(Ordering::Acquire)
}

/// The last stray trap: the instruction it stopped at, and its si_code.
pub fn last() -> (u64, i32) {
    (LAST_ADDRESS.load(Ordering::Relaxed), LAST_CODE.load(Ordering::Relaxed))
}

/// What a trap's si_code says about where it came from, for messages.
pub fn origin(si_code: i32) -> String {
    match si_code {
        // exc_debug_user (arch/x86/kernel/traps.c) takes a #DB whose DR6 has
        // no step or breakpoint bit for an icebp and signals it as TRAP_BRKPT:
        // the breakpoint hit, but DR6 did not say so, and perf did not count it.
        1 => "si_code TRAP_BRKPT: a debug trap whose DR6 named no breakpoint".to_owned(),
        4 => "si_code TRAP_HWBKPT: a hardware breakpoint no perf event owned".to_owned(),
        code if code <= 0 => format!(
            "sent by process {} (si_code {code})",
            LAST_SENDER.load(Ordering::Relaxed)
        ),
        code => format!("si_code {code}"),
    }
}

/// Installs the handler, once per process, for the rest of the process's
/// life: a stray trap between two windows (or after the last) must not end
/// the run either, so it is never taken away again.
pub fn catch() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        // SAFETY: a plain sigaction call with a fully initialised structure.
        unsafe {
            let mut action: libc::sigaction = MaybeUninit::zeroed().assume_init();
            action.sa_sigaction = record as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGTRAP, &action, ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
        }
        Ok(())
    });
    installed.map_err(io::Error::from_raw_os_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stray_trap_is_counted_and_the_thread_goes_on() {
        catch().unwrap();
        let before = taken();
        // SAFETY: raising a signal that has a handler.
        assert_eq!(unsafe { libc::raise(libc::SIGTRAP) }, 0);
        assert!(taken() > before);
        assert_eq!(last().1, libc::SI_TKILL);
    }
}
