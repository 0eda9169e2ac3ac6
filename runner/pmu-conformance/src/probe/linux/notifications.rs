//! Overflow notifications: a queued real-time signal per overflow, caught by a
//! handler that adds nothing to the count it measures.
//!
//! The perf fd is set to raise `SIGRTMIN+3` (F_SETSIG; real-time signals
//! queue, where SIGIO would coalesce) at the measuring thread (F_SETOWN_EX
//! with F_OWNER_TID), via O_ASYNC. The handler runs in that thread, inside the
//! counted window, so it is a naked function with no conditional branch and a
//! fixed handful of instructions: it stores si_code and the counter's value,
//! read with one raw `read` syscall, into a preallocated slot. The value it
//! reads is the count at delivery, from which checks derive skid.
//!
//! [`Armed`] installs the handler and restores the previous disposition and
//! signal mask when dropped, so every case leaves the process as it found it.

use std::arch::naked_asm;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use linux_raw_sys::general::{F_OWNER_TID, F_SETOWN_EX, F_SETSIG, POLL_HUP, f_owner_ex};

use crate::probe::{Notification, NotificationKind};
use crate::vocabulary::NOTIFICATION_CAPACITY;

/// What the handler records per notification. 64 bytes; field offsets are
/// used by the handler's asm.
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    /// 0: si_code: POLL_IN per overflow, POLL_HUP when a REFRESH budget ends.
    code: i32,
    /// 4: si_fd.
    fd: i32,
    /// 8: what `read` returned: 24 on success.
    read_result: i64,
    /// 16: the counter value, then time enabled and time running.
    value: [u64; 3],
    _pad: [u64; 3],
}

const EMPTY: Slot = Slot {
    code: 0,
    fd: 0,
    read_result: 0,
    value: [0; 3],
    _pad: [0; 3],
};

// The handler writes these; Rust reads them only with the signal blocked.
static mut SLOTS: [Slot; NOTIFICATION_CAPACITY] = [EMPTY; NOTIFICATION_CAPACITY];
static mut NEXT: u64 = 0;

/// Only one window at a time may own the slots.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// The signal that carries notifications.
pub fn signal() -> i32 {
    libc::SIGRTMIN() + 3
}

/// Records one notification. Runs inside the counted window: no conditional
/// branches, no stack use beyond the return address, no page faults (the
/// slots are touched before any window runs).
///
/// siginfo_t on x86_64: si_code at byte 8, si_fd at byte 24 (libc has no
/// accessor for si_fd).
#[unsafe(naked)]
unsafe extern "C" fn record(_signal: i32, _info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    naked_asm!(
        // r9 = &SLOTS[NEXT % CAPACITY]
        "mov r8, qword ptr [rip + {next}]",
        "and r8, {mask}",
        "shl r8, 6",
        "lea r9, [rip + {slots}]",
        "add r9, r8",
        "mov eax, dword ptr [rsi + 8]",
        "mov dword ptr [r9], eax",
        "mov edi, dword ptr [rsi + 24]",
        "mov dword ptr [r9 + 4], edi",
        // read(si_fd, &slot.value, 24)
        "lea rsi, [r9 + 16]",
        "mov edx, 24",
        "mov eax, {sys_read}",
        "syscall",
        "mov qword ptr [r9 + 8], rax",
        "inc qword ptr [rip + {next}]",
        "ret",
        next = sym NEXT,
        slots = sym SLOTS,
        mask = const NOTIFICATION_CAPACITY - 1,
        sys_read = const libc::SYS_read,
    )
}

const _: () = assert!(size_of::<Slot>() == 64);
const _: () = assert!(NOTIFICATION_CAPACITY.is_power_of_two());

/// Writes every slot page, so the handler never page-faults: a fault in the
/// handler would be counted by a page-fault event under test. Done on every
/// arming, not once per process: a forked child (the trace's) shares the
/// parent's pages copy-on-write, and its first write to each would fault.
fn touch_slots() {
    let base = (&raw mut SLOTS).cast::<u8>();
    for offset in (0..size_of::<[Slot; NOTIFICATION_CAPACITY]>()).step_by(4096) {
        // SAFETY: in bounds; no window is running (IN_USE is held by the caller).
        unsafe { ptr::write_volatile(base.add(offset), ptr::read_volatile(base.add(offset))) };
    }
}

/// Where the handler starts, for the trace that steps through it.
pub fn handler_address() -> u64 {
    record as *const () as u64
}

/// The handler installed and the fd wired to it, for one window.
pub struct Armed {
    old_action: libc::sigaction,
    old_mask: libc::sigset_t,
}

impl Armed {
    /// Installs the handler, unblocks its signal in this thread, and points
    /// `fd`'s overflow signal at this thread.
    pub fn new(fd: RawFd) -> io::Result<Armed> {
        if IN_USE.swap(true, Ordering::Acquire) {
            return Err(io::Error::other("another window already owns the notification slots"));
        }
        touch_slots();
        // SAFETY: the signal is blocked-or-ours while NEXT is reset: no handler runs.
        unsafe { ptr::write_volatile(&raw mut NEXT, 0) };
        let armed = unsafe { Armed::install() }.inspect_err(|_| IN_USE.store(false, Ordering::Release))?;
        route_to_this_thread(fd)?;
        Ok(armed)
    }

    unsafe fn install() -> io::Result<Armed> {
        let sig = signal();
        unsafe {
            let mut action: libc::sigaction = MaybeUninit::zeroed().assume_init();
            action.sa_sigaction = record as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old_action = MaybeUninit::zeroed().assume_init();
            check(libc::sigaction(sig, &action, &mut old_action))?;
            let mut set = MaybeUninit::zeroed().assume_init();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            let mut old_mask = MaybeUninit::zeroed().assume_init();
            let rc = libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut old_mask);
            if rc != 0 {
                libc::sigaction(sig, &old_action, ptr::null_mut());
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Armed { old_action, old_mask })
        }
    }

    /// Blocks the signal, collects what the handler recorded plus any
    /// notification still pending (delivered after the window closed, with
    /// `final_count` as its count), and restores the previous disposition.
    pub fn collect(self, final_count: u64) -> Result<Vec<Notification>, String> {
        let sig = signal();
        let mut set = unsafe { MaybeUninit::<libc::sigset_t>::zeroed().assume_init() };
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
        }
        // SAFETY: the signal is blocked, so the handler cannot run while we read.
        let recorded = unsafe { ptr::read_volatile(&raw const NEXT) } as usize;
        if recorded > NOTIFICATION_CAPACITY {
            return Err(format!(
                "{recorded} notifications overflowed the {NOTIFICATION_CAPACITY} recording slots; raise the period"
            ));
        }
        let mut out = Vec::with_capacity(recorded);
        for i in 0..recorded {
            let slot = unsafe { ptr::read_volatile((&raw const SLOTS).cast::<Slot>().add(i)) };
            if slot.read_result != 24 {
                return Err(format!(
                    "the notification handler's read of the counter returned {} (errno {})",
                    slot.read_result, -slot.read_result
                ));
            }
            out.push(Notification {
                count: slot.value[0],
                kind: kind_of(slot.code),
                after_window: false,
            });
        }
        // Anything still queued arrived after the window closed.
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        loop {
            let mut info = unsafe { MaybeUninit::<libc::siginfo_t>::zeroed().assume_init() };
            if unsafe { libc::sigtimedwait(&set, &mut info, &zero) } != sig {
                break;
            }
            out.push(Notification {
                count: final_count,
                kind: kind_of(info.si_code),
                after_window: true,
            });
        }
        Ok(out)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        let sig = signal();
        unsafe {
            // Drain before restoring the old disposition, which may be the
            // default action: for a real-time signal, that ends the process.
            let mut set = MaybeUninit::<libc::sigset_t>::zeroed().assume_init();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            while libc::sigtimedwait(&set, ptr::null_mut(), &zero) == sig {}
            libc::sigaction(sig, &self.old_action, ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, ptr::null_mut());
        }
        IN_USE.store(false, Ordering::Release);
    }
}

fn kind_of(si_code: i32) -> NotificationKind {
    if si_code == POLL_HUP as i32 {
        NotificationKind::Hangup
    } else {
        NotificationKind::Overflow
    }
}

/// F_SETOWN_EX to this thread, F_SETSIG to our signal, then O_ASYNC.
fn route_to_this_thread(fd: RawFd) -> io::Result<()> {
    let owner = f_owner_ex {
        type_: F_OWNER_TID as _,
        pid: unsafe { libc::gettid() },
    };
    unsafe {
        check(libc::fcntl(fd, F_SETOWN_EX as i32, &owner))?;
        check(libc::fcntl(fd, F_SETSIG as i32, signal()))?;
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC))?;
    }
    Ok(())
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The current disposition of the notification signal, for tests that check
/// a case left it as it found it.
pub fn current_disposition() -> usize {
    unsafe {
        let mut old: libc::sigaction = MaybeUninit::zeroed().assume_init();
        libc::sigaction(signal(), ptr::null(), &mut old);
        old.sa_sigaction
    }
}
