//! The small types every layer names: a case's id and probe kind, how a
//! window is read, which accelerator a QEMU environment asks for, how many
//! notifications a window can record, and what their handler retires.
//!
//! They sit on the bottom floor, below `case`, `probe`, `environment` and the
//! executors, so that none of those has to import another to name them.

use std::fmt;

use pmu_kernel_checks::listing::Counts;

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

/// What the Linux probe's notification handler retires in user mode from
/// its first instruction up to and including the `read` syscall that takes
/// the count: each notification's count includes this much of its own
/// handler. Measured by the trace (`pmu-conformance trace
/// overflow/rr-xen-probe`) and held to it by tests/trace.rs.
pub const HANDLER_UP_TO_READ: Counts = Counts {
    instructions: 13,
    ..Counts::ZERO
};

/// The whole handler, through the restorer's `rt_sigreturn`: what each
/// notification adds to its window's count. Its one branch is the `ret`.
pub const HANDLER_TOTAL: Counts = Counts {
    instructions: 18,
    branches: 1,
    ..Counts::ZERO
};

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

/// An environment's id, a label for a run on this machine, or a host class:
/// `[a-z0-9][a-z0-9._:-]*`, at most 64 characters. Each names a folder under
/// `expected/` (with `:` written as `-`), so none can climb out of it: no
/// `/`, and no leading `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvironmentId(String);

/// Why a text is not an [`EnvironmentId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{0}` is not a valid id: it is empty; use lower-case letters, digits and `._:-`")]
    Empty(String),
    #[error("`{text}` is not a valid id: it has {length} characters, and an id has at most {max}")]
    TooLong { text: String, length: usize, max: usize },
    #[error("`{text}` is not a valid id: it starts with `{first}`; an id starts with a lower-case letter or a digit")]
    BadStart { text: String, first: char },
    #[error(
        "`{text}` is not a valid id: `{bad}` (character {at}) is not allowed; use lower-case letters, digits and `._:-`"
    )]
    BadCharacter { text: String, bad: char, at: usize },
}

impl EnvironmentId {
    pub const MAX_LENGTH: usize = 64;

    pub fn parse(text: &str) -> Result<EnvironmentId, IdError> {
        let owned = || text.to_owned();
        let Some(first) = text.chars().next() else {
            return Err(IdError::Empty(owned()));
        };
        let length = text.chars().count();
        if length > Self::MAX_LENGTH {
            return Err(IdError::TooLong {
                text: owned(),
                length,
                max: Self::MAX_LENGTH,
            });
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(IdError::BadStart { text: owned(), first });
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._:-".contains(c);
        if let Some((at, bad)) = text.chars().enumerate().find(|&(_, c)| !allowed(c)) {
            return Err(IdError::BadCharacter {
                text: owned(),
                bad,
                at: at + 1,
            });
        }
        Ok(EnvironmentId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its folder under `expected/`: `sim:ideal` is `sim-ideal`.
    pub fn folder(&self) -> String {
        self.0.replace(':', "-")
    }
}

impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_folder_names() {
        for good in ["sim:ideal", "kvm-amd-zen-nopmu", "aws-c7i.metal", "0day"] {
            assert_eq!(EnvironmentId::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(EnvironmentId::parse("sim:ideal").unwrap().folder(), "sim-ideal");
        let refused = |text: &str| EnvironmentId::parse(text).unwrap_err().to_string();
        assert!(refused("").contains("it is empty"));
        assert!(refused("../../x").contains("starts with `.`"));
        assert!(refused("a/../../x").contains("`/` (character 2) is not allowed"));
        assert!(refused("Sim:Ideal").contains("starts with `S`"));
        assert!(refused("x y").contains("` ` (character 2)"));
        assert!(refused(&"a".repeat(65)).contains("65 characters"));
        assert!(EnvironmentId::parse(&"a".repeat(64)).is_ok());
    }
}
