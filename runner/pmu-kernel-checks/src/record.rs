//! What a check concludes: the verdict and its evidence, in a form that
//! crosses the console ([`crate::protocol`]) and becomes the host's outcome.
//!
//! [`Verdict`] and [`SignatureKind`] are the project's one list of verdicts
//! and failure signatures, as [`crate::reason::ReasonCode`] is of reasons and
//! [`crate::magnitude::Unit`] of what a failure's size counts; the host's
//! outcome model uses these types.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use crate::magnitude::{Magnitude, Unit};
pub use crate::reason::{Reason, ReasonCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Verdict {
    Pass,
    /// The PMU misbehaved; the record carries a [`Signature`].
    Fail,
    /// The check cannot run here; the record carries the reason. Never a pass.
    Unsupported,
    /// No verdict could be reached; the record carries the message. Never a pass.
    Error,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [Verdict::Pass, Verdict::Fail, Verdict::Unsupported, Verdict::Error];

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unsupported => "unsupported",
            Verdict::Error => "error",
        }
    }

    pub fn from_name(name: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

crate::stable_names::stable_names! {
    /// Short, stable names for the ways a PMU fails a case.
    SignatureKind {
        /// More events than the workload retired.
        Overcount => "overcount",
        /// Fewer events than the workload retired.
        Undercount => "undercount",
        /// An overflow raised no notification (or no PMI).
        PmiLost => "pmi-lost",
        /// A notification (or PMI) came for no new overflow, or twice for one.
        PmiExtra => "pmi-extra",
        /// An overflow raised no PMI though the guest's LVT entry read
        /// unmasked: an LVT the guest cannot see (a hypervisor's physical
        /// one) held it back.
        PmiBlocked => "pmi-blocked",
        /// A notification came after more events than the skid budget allows:
        /// where rr's replay would fail.
        PmiLate => "pmi-late",
        /// A notification came after more than five times the skid budget:
        /// where rr warns even while recording.
        PmiLateRecord => "pmi-late-record",
        /// A REFRESH budget ran out without the POLL_HUP notification that says so.
        HupMissing => "hup-missing",
        /// An overflow did not set its GLOBAL_STATUS bit.
        StatusNotSet => "status-not-set",
        /// Acknowledging an overflow did not clear its GLOBAL_STATUS bit.
        StatusNotCleared => "status-not-cleared",
        /// Acknowledging one overflow cleared bits that were not acknowledged.
        StatusOvercleared => "status-overcleared",
        /// A write to STATUS_SET did not set the bits it named.
        StatusSetIgnored => "status-set-ignored",
        /// The LVT performance-counter entry was not masked after a PMI (Intel).
        LvtpcNotMasked => "lvtpc-not-masked",
        /// The LVT performance-counter entry was masked by a PMI (AMD must not).
        LvtpcMasked => "lvtpc-masked",
        /// IA32_PERF_GLOBAL_OVF_CTRL read as something other than 0.
        OvfCtrlNotZero => "ovf-ctrl-not-zero",
        /// A write that must raise #GP (reserved bits, a counter CPUID does not
        /// advertise) was accepted.
        NoGp => "no-gp",
        /// An access the architecture allows raised #GP.
        UnexpectedGp => "unexpected-gp",
        /// Counters kept counting when a PMI should have frozen them.
        NotFrozen => "not-frozen",
        /// A counter read back other than what was written to it, through its
        /// MSR or RDPMC, or other than its width allows.
        WrongValue => "wrong-value",
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.detail)
    }
}

/// How a case failed: the kind, its size as a number with a unit, and the
/// same in words a developer can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Signature {
    pub kind: SignatureKind,
    pub magnitude: Magnitude,
    /// The magnitude in words, with the rest of what was seen (in how many
    /// runs, which MSRs); reports show it, expectations do not hold it.
    pub detail: String,
}

impl Signature {
    pub fn new(kind: SignatureKind, magnitude: Magnitude, detail: impl Into<String>) -> Signature {
        Signature {
            kind,
            magnitude,
            detail: detail.into(),
        }
    }
}

/// One figure a check reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    Number(u64),
    Flag(bool),
    Text(String),
}

impl From<u64> for Fact {
    fn from(n: u64) -> Fact {
        Fact::Number(n)
    }
}

impl From<bool> for Fact {
    fn from(b: bool) -> Fact {
        Fact::Flag(b)
    }
}

impl From<&str> for Fact {
    fn from(s: &str) -> Fact {
        Fact::Text(s.into())
    }
}

/// One case's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The case id the host gave, `suite/case`.
    pub case: String,
    pub verdict: Verdict,
    pub signature: Option<Signature>,
    /// Why unsupported, or what went wrong.
    pub reason: Option<Reason>,
    /// The key figure, in one line.
    pub summary: String,
    /// Exact, reproducible figures, in the order reported.
    pub facts: Vec<(String, Fact)>,
}

impl Record {
    pub fn new(case: &str, verdict: Verdict, summary: impl Into<String>) -> Record {
        Record {
            case: case.into(),
            verdict,
            signature: None,
            reason: None,
            summary: summary.into(),
            facts: Vec::new(),
        }
    }

    pub fn pass(case: &str, summary: impl Into<String>) -> Record {
        Record::new(case, Verdict::Pass, summary)
    }

    /// A failure of `kind`, `magnitude` large, `detail` saying so in words.
    pub fn fail(
        case: &str,
        kind: SignatureKind,
        magnitude: Magnitude,
        detail: impl Into<String>,
        summary: impl Into<String>,
    ) -> Record {
        Record {
            signature: Some(Signature::new(kind, magnitude, detail)),
            ..Record::new(case, Verdict::Fail, summary)
        }
    }

    pub fn unsupported(case: &str, code: ReasonCode, reason: impl Into<String>) -> Record {
        Record {
            reason: Some(Reason::new(code, reason)),
            ..Record::new(case, Verdict::Unsupported, "not run here")
        }
    }

    pub fn error(case: &str, code: ReasonCode, message: impl Into<String>) -> Record {
        Record {
            reason: Some(Reason::new(code, message)),
            ..Record::new(case, Verdict::Error, "no verdict")
        }
    }

    pub fn fact(mut self, name: &str, value: impl Into<Fact>) -> Record {
        self.facts.push((name.into(), value.into()));
        self
    }
}
