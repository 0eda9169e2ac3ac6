//! Dynamic traces of the counted windows: a window runs in a forked child
//! under ptrace, one instruction at a time, and every instruction it executes
//! is decoded, so that what the listings in `workload.rs` promise is
//! measured on the real machine code rather than assumed.
//!
//! The child is set up as a real run sets up its window (a counter for the
//! ioctls to act on, fresh pages for page-touch, the notification handler
//! armed), stops itself, and runs the window. The parent steps it and counts
//! by the suite's convention ([`crate::counting`]) from the return of the
//! syscall that starts the count to the disarming syscall, inclusive, split
//! into the stretches between syscalls. Where asked, it delivers one
//! overflow notification mid-loop and counts what the handler adds, apart
//! from the window's own count. rdpmc, which faults without a PMU, is
//! completed by the parent and counted as the one instruction it is.
//!
//! Nothing a PMU counts is read here: the trace is what a faithful PMU must
//! count, independent of any PMU.

mod stepper;

use std::time::Duration;

use thiserror::Error;

use super::perf::{Counter, CounterSpec, PARKED_PERIOD};
use super::{FreshPages, notifications, windows};
use crate::event_table::{Encoding, SoftwareEvent};
use crate::vocabulary::ReadWith;
use crate::workload::{Counts, Listing, Workload, WorkloadKind};

/// What to trace.
#[derive(Clone, Copy, Debug)]
pub struct TraceRequest {
    pub workload: Workload,
    pub read_with: ReadWith,
    /// Deliver one overflow notification mid-loop and count its handler.
    pub notify: bool,
    /// Give up after this many single steps.
    pub step_limit: u64,
    /// Give up after this long.
    pub deadline: Duration,
}

impl TraceRequest {
    /// A request for `workload` with a step limit its listing allows for.
    pub fn new(workload: Workload, read_with: ReadWith) -> TraceRequest {
        let listed = workload
            .checked_counts(crate::vocabulary::ProbeKind::Linux)
            .map_or(u64::MAX, |c| c.instructions);
        TraceRequest {
            workload,
            read_with,
            notify: false,
            // The listing, twice over, plus the set-up and the handler.
            step_limit: listed.saturating_mul(2).saturating_add(100_000),
            deadline: Duration::from_secs(600),
        }
    }
}

/// What one traced window retired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracedWindow {
    /// From the return of the syscall that starts the count to the disarming
    /// syscall, inclusive: what a faithful user-mode counter counts. Page
    /// faults are the child's minor and major faults over that span, less the
    /// handler's; `branches_between_cpuids` is the model's assumption about
    /// VMware's fault, not a property of the code, and is not traced.
    pub counts: Counts,
    /// The stretches from the arming syscall's return to each later syscall,
    /// each ending with (and counting) its syscall.
    pub segments: Vec<Counts>,
    /// Of the counted conditional branches, those taken: what an encoding
    /// that counts COND_TAKEN would count.
    pub taken_conditional_branches: u64,
    /// What the one delivered notification's handler retired, if one was.
    pub handler: Option<HandlerCost>,
    /// Single steps taken, set-up included.
    pub steps: u64,
}

/// What the notification handler adds to the thread it interrupts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandlerCost {
    /// Up to and including the `read` syscall that takes the count: what a
    /// notification's reported count includes of its own handler.
    pub up_to_read: Counts,
    /// The whole handler, through the `rt_sigreturn` syscall of the restorer.
    pub total: Counts,
}

#[derive(Debug, Error)]
pub enum TraceError {
    /// This machine or sandbox does not let us trace a child.
    #[error("cannot trace here: {0}")]
    Unavailable(String),
    /// The case or size has no window this can trace.
    #[error("not traced: {0}")]
    NotTraceable(String),
    /// The window could not be traced to its end.
    #[error("{0}")]
    Failed(String),
}

/// What the child needs, built before the fork so the child only makes syscalls.
struct Tracee {
    kind: WorkloadKind,
    rdpmc: bool,
    notify: bool,
    args: windows::WindowArgs,
    /// A zeroed page standing in for the perf mmap page of the rdpmc window.
    user_page: Box<[u8; 4096]>,
}

/// Traces `request`'s window once.
pub fn trace(request: &TraceRequest) -> Result<TracedWindow, TraceError> {
    let workload = request.workload;
    let rdpmc = request.read_with == ReadWith::Rdpmc;
    if rdpmc && workload.kind != WorkloadKind::BranchLoop {
        return Err(TraceError::Failed(format!("`{}` has no rdpmc window", workload.kind)));
    }
    let pages = match workload.kind {
        WorkloadKind::PageTouch => Some(FreshPages::map(workload.size).map_err(TraceError::Failed)?),
        _ => None,
    };
    let mut tracee = Tracee {
        kind: workload.kind,
        rdpmc,
        notify: request.notify,
        args: windows::WindowArgs {
            arm_request: windows::ENABLE,
            iterations: workload.iterations(),
            period: PARKED_PERIOD,
            buffer: pages.as_ref().map_or(0, |p| p.address as u64),
            ..windows::WindowArgs::default()
        },
        user_page: Box::new([0; 4096]),
    };
    tracee.args.user_page = tracee.user_page.as_ptr() as u64;
    let layout = stepper::Layout {
        entry: windows::entry(workload.kind, rdpmc),
        marker: match rdpmc {
            true => windows::rdpmc_marker_address(),
            false => windows::marker_address(workload.kind),
        },
        counting_syscall: windows::counting_syscall(workload.kind),
        handler: notifications::handler_address(),
        signal: notifications::signal(),
        notify_at_marker: request.notify.then(|| workload.iterations().div_ceil(2)),
    };
    // SAFETY: the child runs only `run_tracee`, which makes syscalls and runs
    // the window, and never returns.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(TraceError::Failed(format!("fork: {}", std::io::Error::last_os_error()))),
        0 => run_tracee(&mut tracee),
        child => {
            let result = stepper::step(child, &layout, request);
            drop(pages);
            result
        }
    }
}

/// Exit statuses by which the child says it could not start.
const EXIT_TRACEME: i32 = 90;
const EXIT_COUNTER: i32 = 91;
const EXIT_ARM: i32 = 92;

/// The child: asks to be traced, sets up as a real run does, stops, runs
/// the window, exits. Only syscalls and the window, so that nothing the
/// fork left locked (allocator, stdio) is ever taken.
fn run_tracee(tracee: &mut Tracee) -> ! {
    // SAFETY: plain syscalls on this process; `_exit` never returns.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
            libc::_exit(EXIT_TRACEME);
        }
        // A counter for the ioctls to act on, counting this child; the
        // parked period never overflows, so no notification arrives unasked.
        let Ok(counter) = Counter::open(&CounterSpec {
            encoding: Encoding::Software(SoftwareEvent::TaskClock),
            raw_type: 0,
            breakpoint_address: 0,
            sample_period: Some(PARKED_PERIOD),
        }) else {
            libc::_exit(EXIT_COUNTER)
        };
        tracee.args.fd = i64::from(std::os::fd::AsRawFd::as_raw_fd(&counter));
        let armed = match tracee.notify {
            true => match notifications::Armed::new(std::os::fd::AsRawFd::as_raw_fd(&counter)) {
                Ok(armed) => Some(armed),
                Err(_) => libc::_exit(EXIT_ARM),
            },
            false => None,
        };
        // The window's code is shared with the parent but not yet mapped in
        // this child: read it, so that no fault on its text lands in the count.
        let entry = windows::entry(tracee.kind, tracee.rdpmc) as *const u8;
        for offset in [0, 256, 511] {
            std::ptr::read_volatile(entry.add(offset));
        }
        // Nor on the window's arguments, which the fork shares copy-on-write:
        // write both ends, as a real run's thread has written its own stack.
        std::ptr::write_volatile(&raw mut tracee.args.fd, tracee.args.fd);
        std::ptr::write_volatile(&raw mut tracee.args.offset, 0);
        // Nor on the stand-in perf page, which the rdpmc window reads.
        std::ptr::read_volatile((tracee.args.user_page as *const u8).add(8));
        std::ptr::read_volatile((tracee.args.user_page as *const u8).add(23));
        libc::raise(libc::SIGSTOP);
        if tracee.rdpmc {
            windows::run_branch_loop_rdpmc(&mut tracee.args);
        } else {
            windows::run(tracee.kind, &mut tracee.args);
        }
        std::mem::forget(armed);
        std::mem::forget(counter);
        libc::_exit(0)
    }
}

/// What a child's early exit status means.
fn early_exit(status: i32) -> String {
    match status {
        EXIT_TRACEME => "the child could not ask to be traced (PTRACE_TRACEME failed)".into(),
        EXIT_COUNTER => "the child could not open its task-clock counter".into(),
        EXIT_ARM => "the child could not arm overflow notifications".into(),
        other => format!("the child exited with status {other} before its window ended"),
    }
}

/// A window's counts as a function of its iterations, measured: traced at
/// three sizes, they must be `fixed + per_iteration × n`, as the window's
/// code (a loop whose path depends only on its counter) implies; the third
/// trace checks it. A listing in the shape of `workload.rs`'s, all of
/// whose fixed part is in `before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracedListing {
    pub listing: Listing,
    /// The iterations traced.
    pub traced_at: [u64; 3],
}

/// The iterations [`trace_listing`] traces at: small, so that it takes a few
/// hundred steps, and unequal, so that fixed and per-pass parts separate.
pub const LISTING_ITERATIONS: [u64; 3] = [2, 9, 33];

/// What `workload`'s window retires, from its traced listing
/// ([`trace_listing`]): quick at any size.
pub fn extrapolated_counts(workload: &Workload, read_with: ReadWith) -> Result<Counts, TraceError> {
    trace_listing(workload.kind, read_with)?.total(workload.iterations())
}

impl TracedListing {
    /// What the window retires over `iterations` passes, by this listing.
    pub fn total(&self, iterations: u64) -> Result<Counts, TraceError> {
        self.listing
            .checked_total(iterations)
            .ok_or_else(|| TraceError::NotTraceable("the traced counts overflow 64 bits".into()))
    }
}

/// Traces `kind`'s window at [`LISTING_ITERATIONS`] and derives its listing.
pub fn trace_listing(kind: WorkloadKind, read_with: ReadWith) -> Result<TracedListing, TraceError> {
    let [a, b, c] = LISTING_ITERATIONS;
    let at = |iterations: u64| -> Result<Counts, TraceError> {
        let size = iterations + (kind.minimum_size() - 1);
        Ok(trace(&TraceRequest::new(Workload { kind, size }, read_with))?.counts)
    };
    let (ca, cb, cc) = (at(a)?, at(b)?, at(c)?);
    let not_affine = || {
        TraceError::Failed(format!(
            "`{kind}` does not retire a fixed amount per pass: traced {ca:?} at {a}, {cb:?} at {b}, {cc:?} at {c}"
        ))
    };
    let per_iteration = cb
        .combine(ca, u64::checked_sub)
        .and_then(|d| d.combine(Counts::ZERO, |d, _| (d % (b - a) == 0).then_some(d / (b - a))))
        .ok_or_else(not_affine)?;
    let fixed = ca.combine(per_iteration * a, u64::checked_sub).ok_or_else(not_affine)?;
    let listing = Listing {
        before: fixed,
        body: per_iteration,
        after: Counts::ZERO,
    };
    if listing.total(c) != cc {
        return Err(not_affine());
    }
    Ok(TracedListing {
        listing,
        traced_at: LISTING_ITERATIONS,
    })
}
