//! A thin, owned wrapper over perf-event-open-sys: build an attr, open it,
//! read it with its enabled and running times, close it on drop.
//!
//! Counters are opened disabled; the windows arm and disarm them with raw
//! ioctls of their own, so this file never enables anything.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use perf_event_open_sys::{self as sys, bindings};

use crate::event_table::{Encoding, SoftwareEvent};
use crate::probe::Reading;

/// Period for events that are sampling but set their real period inside the
/// window (rr's probe): large enough never to overflow first. rr uses 2^60.
pub const PARKED_PERIOD: u64 = 1 << 60;

/// How one counter is to be opened.
#[derive(Clone, Copy, Debug)]
pub struct CounterSpec {
    pub encoding: Encoding,
    /// PERF_TYPE_RAW, or the hybrid core PMU's dynamic type.
    pub raw_type: u32,
    /// Where an execute breakpoint goes.
    pub breakpoint_address: u64,
    /// Overflow every this many events; `None` counts only.
    pub sample_period: Option<u64>,
}

pub struct Counter {
    fd: OwnedFd,
}

impl Counter {
    /// Opens a disabled, pinned, user-mode-only counter on this thread.
    pub fn open(spec: &CounterSpec) -> io::Result<Counter> {
        let mut attr = bindings::perf_event_attr {
            size: size_of::<bindings::perf_event_attr>() as u32,
            ..Default::default()
        };
        match spec.encoding {
            Encoding::Raw(config) => {
                attr.type_ = spec.raw_type;
                attr.config = config;
                // As rr does: never count while a guest of ours runs.
                attr.set_exclude_guest(1);
            }
            Encoding::Software(SoftwareEvent::BreakpointExecute) => {
                attr.type_ = bindings::PERF_TYPE_BREAKPOINT;
                attr.bp_type = bindings::HW_BREAKPOINT_X;
                attr.bp_addr = spec.breakpoint_address;
                // Execute breakpoints take sizeof(long).
                attr.bp_len = size_of::<libc::c_long>() as u64;
            }
            Encoding::Software(SoftwareEvent::PageFaults) => {
                attr.type_ = bindings::PERF_TYPE_SOFTWARE;
                attr.config = bindings::PERF_COUNT_SW_PAGE_FAULTS as u64;
            }
            Encoding::Software(SoftwareEvent::TaskClock) => {
                attr.type_ = bindings::PERF_TYPE_SOFTWARE;
                attr.config = bindings::PERF_COUNT_SW_TASK_CLOCK as u64;
            }
        }
        attr.set_disabled(1);
        attr.set_pinned(1);
        attr.set_exclude_kernel(1);
        attr.set_exclude_hv(1);
        attr.read_format = (bindings::PERF_FORMAT_TOTAL_TIME_ENABLED
            | bindings::PERF_FORMAT_TOTAL_TIME_RUNNING) as u64;
        if let Some(period) = spec.sample_period {
            attr.sample_period = period;
            // Raise the fd's signal on every overflow, not every Nth.
            attr.wakeup_events = 1;
        }
        // SAFETY: attr is fully initialised and sized; pid 0 / cpu -1 is this thread.
        let fd = unsafe {
            sys::perf_event_open(
                &mut attr,
                0,
                -1,
                -1,
                bindings::PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(Counter {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Reads value, time enabled and time running.
    pub fn read(&self) -> Result<Reading, String> {
        let mut buf = [0u64; 3];
        // SAFETY: buf is 24 writable bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 24) };
        match n {
            24 => Ok(Reading {
                value: buf[0],
                time_enabled: buf[1],
                time_running: buf[2],
            }),
            // A pinned event that could not be scheduled is in error state and reads as EOF.
            0 => Err(
                "the pinned counter could not be scheduled: read returned 0 bytes \
                      (another user holds the PMU, e.g. the NMI watchdog)"
                    .into(),
            ),
            n if n < 0 => Err(format!(
                "reading the counter failed: {}",
                io::Error::last_os_error()
            )),
            n => Err(format!(
                "reading the counter returned {n} bytes, expected 24"
            )),
        }
    }
}

impl AsRawFd for Counter {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Says what an errno from perf_event_open means for the case.
pub fn describe_open_error(error: &io::Error, context: &str) -> String {
    let name = match error.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::ENOSPC) => "ENOSPC",
        _ => return format!("perf_event_open: {error}"),
    };
    let meaning = match error.raw_os_error() {
        Some(libc::ENOENT | libc::ENODEV) => format!("no hardware PMU exposed ({context})"),
        Some(libc::EACCES | libc::EPERM) => {
            format!("not permitted ({context}); run as root or lower perf_event_paranoid")
        }
        Some(libc::EINVAL) => format!("the kernel rejects this event or period ({context})"),
        Some(libc::EOPNOTSUPP) => format!("this PMU cannot sample or filter as asked ({context})"),
        Some(libc::EBUSY) => "the counter is held exclusively by another user".to_owned(),
        Some(libc::ENOSPC) => "no free breakpoint or counter slot".to_owned(),
        _ => unreachable!("handled above"),
    };
    format!("perf_event_open: {name} — {meaning}")
}
