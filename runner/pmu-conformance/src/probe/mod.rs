//! Probes: where a case's windows execute, behind one interface.
//!
//! A check never opens a counter itself. It asks a [`Probe`] to run a
//! [`Window`] (one event over one workload, optionally with overflow
//! notifications) and gets back a [`WindowRun`]: the final reading and every
//! notification with the count at its delivery. The `linux` probe does this
//! with perf_event_open on this machine; other probes (the reference model,
//! the probe kernel) implement the same trait, so checks run unchanged on all.

pub mod linux;
pub mod sim;

use std::fmt;

use crate::event_table::ResolvedEvent;
use crate::outcome::Reason;
use crate::vocabulary::ReadWith;
use crate::workload::{Counts, Workload};

/// One counted window to execute.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    pub event: &'a ResolvedEvent,
    pub workload: Workload,
    /// Overflow notifications, or `None` to count only.
    pub sampling: Option<Sampling>,
    /// How the final value is read.
    pub read_with: ReadWith,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Events per overflow.
    pub period: u64,
    /// Arm for this many notifications (IOC_REFRESH) instead of indefinitely.
    pub refresh: Option<u32>,
}

/// A counter's value after its window closed, with the times that show
/// whether it counted for all of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub value: u64,
    pub time_enabled: u64,
    pub time_running: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// An overflow (POLL_IN).
    Overflow,
    /// The last overflow a REFRESH budget allowed (POLL_HUP).
    Hangup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The counter's value when the notification reached the workload's thread.
    pub count: u64,
    pub kind: NotificationKind,
    /// Delivered only after the window closed (found pending when it was collected).
    pub after_window: bool,
}

/// Everything one window produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowRun {
    pub reading: Reading,
    /// In delivery order.
    pub notifications: Vec<Notification>,
    /// Overflows the kernel (or model) handled, where the probe can see them:
    /// each should have produced exactly one notification.
    pub overflows_handled: Option<u64>,
}

/// Why a window produced no usable result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The environment cannot run this at all; becomes `unsupported`.
    Unsupported(Reason),
    /// Something went wrong that says nothing about the PMU's conformance
    /// (a multiplexed counter, a failed syscall); becomes `error`.
    Harness(String),
    /// Something outside the PMU disturbed this one window (a debug trap the
    /// kernel did not claim), so its result is no evidence either way; the
    /// window may be run again (see `check::OUTLAST`).
    Disturbed(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Unsupported(reason) => write!(f, "unsupported ({}): {reason}", reason.code),
            ProbeError::Harness(message) => f.write_str(message),
            ProbeError::Disturbed(why) => write!(f, "disturbed: {why}"),
        }
    }
}

/// The interface every check is written against.
pub trait Probe: Send {
    /// Executes one window.
    fn run(&mut self, window: &Window<'_>) -> Result<WindowRun, ProbeError>;

    /// What `workload`'s window, read `read_with`, retires when traced
    /// instruction by instruction on this machine, for diagnoses; `None`
    /// where this probe's windows cannot be traced from here.
    fn traced_counts(&mut self, workload: &Workload, read_with: ReadWith) -> Option<Result<Counts, String>> {
        let _ = (workload, read_with);
        None
    }
}
