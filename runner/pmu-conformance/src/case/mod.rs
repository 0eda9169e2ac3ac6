//! Cases and suites: what the YAML under `suites/` means once validated.
//!
//! A [`Suite`] is one YAML file; its [`Case`]s are fully checked before
//! anything runs (see [`load_suites`]). The types here carry only valid
//! values: a `Case` with a period has a period that can overflow, a case on an
//! inexact event has a tolerance with a reason, and so on.

pub mod formula;
pub mod schema;
mod validate;

use std::fmt;
use std::time::Duration;

pub use formula::Formula;
pub use pmu_kernel_checks::checks::KernelCheck;
pub use pmu_kernel_checks::pmu::Counter;
pub use validate::{SuiteSources, load_suites};

use crate::vocabulary::{CaseId, ProbeKind, ReadWith};
use crate::workload::Workload;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// Every run counts exactly the workload's events.
    ExactCount,
    /// One notification per period boundary, each within the skid budget.
    PmiDelivery,
    /// The total after overflows equals the workload's exact count.
    OverflowPreservation,
    /// A check the probe kernel runs at MSR level.
    Kernel(KernelCheck),
}

impl CheckKind {
    /// The linux probe's checks; the kernel probe's are [`KernelCheck::ALL`].
    pub const LINUX: [CheckKind; 3] = [
        CheckKind::ExactCount,
        CheckKind::PmiDelivery,
        CheckKind::OverflowPreservation,
    ];

    /// Every check `probe` knows.
    pub fn all_for(probe: ProbeKind) -> Vec<CheckKind> {
        match probe {
            ProbeKind::Linux => CheckKind::LINUX.to_vec(),
            ProbeKind::Kernel => KernelCheck::ALL.iter().map(|&k| CheckKind::Kernel(k)).collect(),
        }
    }

    /// What the check requires, in one or two sentences.
    pub fn about(self) -> String {
        match self {
            CheckKind::ExactCount => "Every run of the workload counts exactly the events its listing retires \
                 (within the case's tolerance, where it has one)."
                .to_owned(),
            CheckKind::PmiDelivery => "Every period boundary raises exactly one overflow notification, within \
                 the CPU's skid budget: none lost, none extra, none late."
                .to_owned(),
            CheckKind::OverflowPreservation => "The counter overflows part-way through the workload, and its \
                 total across the overflows is still exactly the workload's events."
                .to_owned(),
            CheckKind::Kernel(k) => k.about().split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CheckKind::ExactCount => "exact-count",
            CheckKind::PmiDelivery => "pmi-delivery",
            CheckKind::OverflowPreservation => "overflow-preservation",
            CheckKind::Kernel(k) => k.name(),
        }
    }

    /// Whether the check arms overflow notifications, and so needs a period.
    pub fn samples(self) -> bool {
        matches!(self, CheckKind::PmiDelivery | CheckKind::OverflowPreservation)
    }

    /// Whether the check compares a count with the case's `expect`.
    pub fn expects_count(self) -> bool {
        matches!(
            self,
            CheckKind::ExactCount | CheckKind::OverflowPreservation | CheckKind::Kernel(KernelCheck::ExactCount)
        )
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventRef {
    /// An abstract event from the event table, resolved per CPU.
    Named(String),
    /// A raw PERF_TYPE_RAW config, used as is.
    Raw(u64),
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventRef::Named(name) => f.write_str(name),
            EventRef::Raw(config) => write!(f, "raw {config:#x}"),
        }
    }
}

/// The expected count, as written and as evaluated for the case's workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedCount {
    pub formula: Formula,
    pub count: u64,
}

/// How far a count may stray and still pass. Only inexact events have one,
/// and then always with the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tolerance {
    pub above: u64,
    pub below: u64,
    pub reason: Option<String>,
}

impl Tolerance {
    pub fn admits(&self, deviation: i128) -> bool {
        -(self.below as i128) <= deviation && deviation <= self.above as i128
    }
}

/// A run budget sized to catch, with `probability`, a fault that strikes
/// each opportunity (a run for count checks, an overflow for `pmi-delivery`)
/// with probability `rate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunBudget {
    pub rate: f64,
    pub probability: f64,
}

/// What a kernel case tells the probe kernel beyond its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelParams {
    pub counter: Counter,
    /// Set the counter's INT bit.
    pub int: bool,
}

impl Default for KernelParams {
    fn default() -> KernelParams {
        KernelParams {
            counter: Counter::Gp(0),
            int: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Case {
    pub id: CaseId,
    pub about: String,
    pub probe: ProbeKind,
    pub check: CheckKind,
    pub event: EventRef,
    pub workload: Workload,
    /// Events per overflow notification; present exactly when the check samples.
    pub period: Option<u64>,
    /// Arm with IOC_REFRESH for this many notifications instead of ENABLE.
    pub refresh: Option<u32>,
    /// The run budget: how many times the workload runs.
    pub runs: u32,
    /// Where `runs` was sized from a fault rate to catch, that target.
    pub budget: Option<RunBudget>,
    pub expect: Option<ExpectedCount>,
    pub tolerance: Tolerance,
    /// Known bugs this case is meant to catch, by id.
    pub catches: Vec<String>,
    pub timeout: Duration,
    /// How counts are read.
    pub read_with: ReadWith,
    /// Kernel probe only: the counter and its INT bit.
    pub kernel: KernelParams,
    /// `file:line:column` of the case's `id`, for messages.
    pub location: String,
}

/// One suite file.
#[derive(Clone, Debug)]
pub struct Suite {
    pub name: String,
    pub about: String,
    pub path: String,
    pub cases: Vec<Case>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::workload::WorkloadKind;

    /// A valid exact-count case with the given id, for tests of code that only needs one.
    pub(crate) fn case_named(id: CaseId) -> Case {
        Case {
            id,
            about: "a test case".into(),
            probe: ProbeKind::Linux,
            check: CheckKind::ExactCount,
            event: EventRef::Named("breakpoint-marker".into()),
            workload: Workload {
                kind: WorkloadKind::BranchLoop,
                size: 10,
            },
            period: None,
            refresh: None,
            runs: 1,
            budget: None,
            expect: Some(ExpectedCount {
                formula: Formula::Variable("marker_hits".into()),
                count: 10,
            }),
            tolerance: Tolerance::default(),
            catches: Vec::new(),
            timeout: Duration::from_secs(5),
            read_with: ReadWith::Syscall,
            kernel: KernelParams::default(),
            location: "suites/test.yaml:1:1".into(),
        }
    }
}
