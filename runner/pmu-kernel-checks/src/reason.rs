//! Why a case has no verdict: a stable code beside its message.
//!
//! An `unsupported` or `error` outcome always says why. The [`ReasonCode`] is
//! what recorded expectations hold and what a table across machines can
//! group by; the message is for the person reading it, and may be reworded
//! without changing any expectation.

use alloc::string::String;
use core::fmt;

crate::stable_names::stable_names! {
    /// Short, stable names for why a case was not judged.
    ReasonCode {
        // Why a case cannot run here (`unsupported`).
        /// The machine exposes no usable PMU at all.
        NoPmu => "no-pmu",
        /// CPUID does not advertise the event the case counts.
        EventNotAdvertised => "event-not-advertised",
        /// The event table has no encoding of the event for this CPU.
        NoEncoding => "no-encoding",
        /// CPUID does not advertise the counter the case needs, or that counter
        /// cannot count the case's event.
        CounterNotAdvertised => "counter-not-advertised",
        /// The case needs more counters than CPUID advertises.
        TooFewCounters => "too-few-counters",
        /// The feature belongs to a later PMU version (or AMD's PerfMonV2).
        PmuVersion => "pmu-version",
        /// The feature is another vendor's.
        OtherVendor => "other-vendor",
        /// An optional control the PMU (or its hypervisor) refuses with #GP.
        ControlRefused => "control-refused",
        /// The CPU has no TSX, so an IN_TXCP bit would be dropped unseen.
        NoTsx => "no-tsx",
        /// No skid budget is known for this CPU, or it is not below the period.
        NoSkidBudget => "no-skid-budget",
        /// perf_event_open refused the counter for a reason other than a
        /// missing PMU (permissions, an unknown config).
        PerfRefused => "perf-refused",
        /// This probe cannot observe what the check judges.
        ProbeCannotSee => "probe-cannot-see",
        /// KVM turns its vPMU off on hybrid hosts.
        KvmHybridHost => "kvm-hybrid-host",
        /// Xen gives this guest no vPMU (off by default, the NMI watchdog, or a
        /// host arch-perfmon version outside 2–5).
        XenNoVpmu => "xen-no-vpmu",
        /// Xen's vPMU is Intel family 6 only.
        XenNotFamily6 => "xen-not-family-6",
        /// Xen's `vpmu=ipc` or `vpmu=arch` blocks the event.
        XenEventFilter => "xen-event-filter",
        /// This host cannot run the environment's guest at all (its KVM is a
        /// software virtualizer that cannot run a Linux guest, or it is not
        /// the Xen dom0 that an `xl` environment creates domUs from).
        HostCannotRunGuest => "host-cannot-run-guest",

        // Why no verdict was reached (`error`).
        /// The run observed less than the check's stated minimum.
        NotExercised => "not-exercised",
        /// A syscall or the harness failed; nothing was learnt about the PMU.
        Harness => "harness",
        /// Something outside the PMU disturbed every attempt.
        Disturbed => "disturbed",
        /// The guest did not boot, died, or reported nothing usable.
        Guest => "guest",
        /// The case ran past its deadline.
        Deadline => "deadline",
        /// The check itself went wrong (a panic, a plan it cannot follow).
        Internal => "internal",
    }
}

/// Why a case was not judged: the code, and the words.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Reason {
        Reason {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
