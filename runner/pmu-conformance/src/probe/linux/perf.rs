//! A thin, owned wrapper over perf-event-open-sys: build an attr, open it,
//! read it with its enabled and running times, close it on drop.
//!
//! Counters are opened disabled; the windows arm and disarm them with raw
//! ioctls of their own, so this file never enables anything.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use perf_event_open_sys::{self as sys, bindings};

use crate::event_table::{Encoding, SoftwareEvent};
use crate::outcome::{Reason, ReasonCode};
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
        attr.read_format = (bindings::PERF_FORMAT_TOTAL_TIME_ENABLED | bindings::PERF_FORMAT_TOTAL_TIME_RUNNING) as u64;
        if let Some(period) = spec.sample_period {
            attr.sample_period = period;
            // Raise the fd's signal on every overflow, not every Nth.
            attr.wakeup_events = 1;
        }
        // SAFETY: attr is fully initialised and sized; pid 0 / cpu -1 is this thread.
        let fd = unsafe { sys::perf_event_open(&mut attr, 0, -1, -1, bindings::PERF_FLAG_FD_CLOEXEC as libc::c_ulong) };
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
            0 => Err("the pinned counter could not be scheduled: read returned 0 bytes \
                      (another user holds the PMU, e.g. the NMI watchdog)"
                .into()),
            n if n < 0 => Err(format!("reading the counter failed: {}", io::Error::last_os_error())),
            n => Err(format!("reading the counter returned {n} bytes, expected 24")),
        }
    }
}

impl AsRawFd for Counter {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Says what an errno from perf_event_open means for the case: `no_pmu`
/// says why there is no PMU here, given what showed it.
pub fn describe_open_error(error: &io::Error, context: &str, no_pmu: impl FnOnce(&str) -> Reason) -> Reason {
    let name = match error.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::ENOSPC) => "ENOSPC",
        _ => return Reason::new(ReasonCode::PerfRefused, format!("perf_event_open: {error}")),
    };
    if let Some(libc::ENOENT | libc::ENODEV) = error.raw_os_error() {
        return no_pmu(&format!(
            "perf_event_open: {name} — no hardware PMU exposed ({context})"
        ));
    }
    let meaning = match error.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => {
            format!("not permitted ({context}); run as root or lower perf_event_paranoid")
        }
        Some(libc::EINVAL) => format!("the kernel rejects this event or period ({context})"),
        Some(libc::EOPNOTSUPP) => format!("this PMU cannot sample or filter as asked ({context})"),
        Some(libc::EBUSY) => "the counter is held exclusively by another user".to_owned(),
        Some(libc::ENOSPC) => "no free breakpoint or counter slot".to_owned(),
        _ => unreachable!("handled above"),
    };
    Reason::new(ReasonCode::PerfRefused, format!("perf_event_open: {name} — {meaning}"))
}

/// A sampling counter's ring buffer. The kernel writes one record into it for
/// every overflow it handles, whether or not the notification then reaches us,
/// so comparing its records with the notifications received separates a lost
/// interrupt (no record, no notification) from a lost signal (a record only).
pub struct SampleRing {
    base: *mut libc::c_void,
    length: usize,
}

/// What the ring says the kernel did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingTally {
    /// Overflows handled: sample records plus the samples LOST records account for.
    pub overflows: u64,
    /// Whether the kernel throttled the event (too many interrupts per second).
    pub throttled: bool,
}

impl SampleRing {
    /// Data pages: 128 KiB holds 16 384 header-only sample records, one per
    /// notification slot.
    const DATA_PAGES: usize = 32;

    pub fn map(counter: &Counter) -> io::Result<SampleRing> {
        let length = (1 + Self::DATA_PAGES) * 4096;
        // SAFETY: maps the perf fd's ring as the man page prescribes: one
        // control page plus a power-of-two number of data pages.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                counter.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SampleRing { base, length })
    }

    /// Walks the records the kernel has written. Sample records are header
    /// only: the counter is opened with `sample_type` 0.
    pub fn tally(&self) -> Result<RingTally, String> {
        let page = self.base.cast::<bindings::perf_event_mmap_page>();
        // SAFETY: the control page is mapped for as long as `self` lives; the
        // kernel publishes data_head, and the acquire fence orders our reads
        // of the data after it, as perf_event_open(2) requires.
        let (head, offset, size) = unsafe {
            let head = std::ptr::read_volatile(&raw const (*page).data_head);
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            (head, (*page).data_offset, (*page).data_size)
        };
        if head > size {
            return Err(format!("the sample ring wrapped ({head} bytes written into {size})"));
        }
        let data = unsafe { self.base.cast::<u8>().add(offset as usize) };
        let mut tally = RingTally::default();
        let mut at = 0u64;
        while at < head {
            // SAFETY: every record lies within [0, head), which is within the ring.
            let (kind, record_size) = unsafe {
                let header = data.add(at as usize);
                (
                    std::ptr::read_unaligned(header.cast::<u32>()),
                    std::ptr::read_unaligned(header.add(6).cast::<u16>()),
                )
            };
            match kind {
                bindings::PERF_RECORD_SAMPLE => tally.overflows += 1,
                bindings::PERF_RECORD_LOST => {
                    // struct { header; u64 id; u64 lost; }
                    tally.overflows += unsafe { std::ptr::read_unaligned(data.add(at as usize + 16).cast::<u64>()) };
                }
                bindings::PERF_RECORD_THROTTLE => tally.throttled = true,
                _ => {}
            }
            if record_size == 0 {
                return Err("a zero-sized record in the sample ring".into());
            }
            at += u64::from(record_size);
        }
        Ok(tally)
    }
}

impl Drop for SampleRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped.
        unsafe { libc::munmap(self.base, self.length) };
    }
}

/// A counter's first mmap page, where the kernel says whether, and how, user
/// space may read the counter with rdpmc (perf_event_open(2), "rdpmc").
pub struct UserPage {
    base: *mut libc::c_void,
}

impl UserPage {
    pub fn map(counter: &Counter) -> io::Result<UserPage> {
        // SAFETY: maps the fd's control page read-only; nothing else uses it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                counter.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(UserPage { base })
    }

    fn page(&self) -> &bindings::perf_event_mmap_page {
        // SAFETY: the page is mapped while `self` lives.
        unsafe { &*self.base.cast::<bindings::perf_event_mmap_page>() }
    }

    /// `cap_user_rdpmc`: bit 2 of the capabilities word.
    pub fn rdpmc_allowed(&self) -> bool {
        // SAFETY: every bit pattern is a valid u64.
        let capabilities = unsafe { std::ptr::read_volatile(&raw const self.page().__bindgen_anon_1.capabilities) };
        capabilities & (1 << 2) != 0
    }

    pub fn pmc_width(&self) -> u16 {
        self.page().pmc_width
    }

    pub fn address(&self) -> u64 {
        self.base as u64
    }
}

impl Drop for UserPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped.
        unsafe { libc::munmap(self.base, 4096) };
    }
}

/// The count an rdpmc read gives: the page's offset plus the counter value
/// sign-extended from its width (perf_event_open(2)).
pub fn rdpmc_count(pmc: u64, width: u16, offset: i64) -> u64 {
    let shift = 64 - u32::from(width.clamp(1, 64));
    let extended = ((pmc << shift) as i64) >> shift;
    offset.wrapping_add(extended) as u64
}

#[cfg(test)]
mod tests {
    use super::rdpmc_count;

    #[test]
    fn rdpmc_values_sign_extend_from_the_counter_width() {
        assert_eq!(rdpmc_count(500, 48, 0), 500);
        // A 48-bit counter preset to -2 reads 0xffff_ffff_fffe; the offset carries the rest.
        assert_eq!(rdpmc_count(0xffff_ffff_fffe, 48, 1000), 998);
        // Bits above the width are ignored.
        assert_eq!(rdpmc_count(0xdead_0000_0000_0005, 48, 10), 15);
    }
}
