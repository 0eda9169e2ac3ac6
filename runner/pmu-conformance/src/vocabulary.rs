//! The small types every layer names: a case's id and probe kind, how a
//! window is read, which accelerator a QEMU environment asks for, and how many
//! notifications a window can record.
//!
//! They sit on the bottom floor, below `case`, `probe`, `environment` and the
//! executors, so that none of those has to import another to name them.

use std::fmt;

/// `suite/case`: a case's name in trial lists, snapshots and reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseId {
    pub suite: String,
    pub name: String,
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.suite, self.name)
    }
}

/// Which interface a case talks to. Environments provide probes; a case runs
/// in every environment whose probe serves its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// perf_event_open from Linux userspace.
    Linux,
    /// MSRs, the LVT entry and PMIs, from the probe kernel (`pmu-kernel-checks`).
    Kernel,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 2] = [ProbeKind::Linux, ProbeKind::Kernel];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Linux => "linux",
            ProbeKind::Kernel => "kernel",
        }
    }
}

/// The most notifications one run can record. Validation rejects periods
/// that would raise more.
pub const NOTIFICATION_CAPACITY: usize = 16 * 1024;

/// How a window's count is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadWith {
    /// `read(2)` after the counter is disabled.
    #[default]
    Syscall,
    /// `rdpmc` inside the window, just before the counter is disabled, through
    /// the perf mmap page (where the kernel grants `cap_user_rdpmc`).
    Rdpmc,
}

/// What runs a QEMU environment's guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accel {
    /// QEMU's emulator: runs anywhere, emulates no PMU.
    Tcg,
    /// Hardware virtualization through `/dev/kvm` (see `executor::qemu::launcher::kvm_usable`).
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}
