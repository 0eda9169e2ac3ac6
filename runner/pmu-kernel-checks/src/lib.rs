//! MSR-level PMU checks: the part of pmu-conformance that runs inside a guest.
//!
//! Userspace cannot see overflow status bits, their acknowledgement through
//! IA32_PERF_GLOBAL_OVF_CTRL, the LVT performance-counter entry, or a
//! counter's exact value after it wraps. These checks can. They are written
//! once, against the [`Hardware`] trait, and run
//!
//! - in the probe kernel (`runner/probe-kernel`), on whatever the guest's CPU
//!   is, booted by QEMU or Xen; and
//! - in host tests and `sim:` environments, on the reference model
//!   (`runner/pmu-model`), with and without its faults.
//!
//! The pieces: [`hardware`] is the interface; [`pmu`] finds the counters from
//! CPUID and names their MSRs; [`window`] is the counted window, one asm
//! block between two WRMSRs; [`checks`] are the checks; [`record`] and
//! [`protocol`] are what they report and how it crosses the console, with
//! [`reason`] and [`magnitude`] the codes and units a record's why and how
//! much are given in;
//! [`memory_console`] is how the console crosses through guest RAM where
//! a port write is too dear; [`cpuid_leaves`] are what the host
//! fingerprints the guest by;
//! [`plan`] is the list of cases the host asks for; [`errata`] the published
//! errata the checks relax for; [`run`] ties them up.
//!
//! The crate knows nothing about YAML: the host turns its suites into a
//! [`plan::Plan`], and reads [`record::Record`]s back.
#![no_std]

extern crate alloc;

pub mod checks;
pub mod cpuid_leaves;
pub mod errata;
pub mod hardware;
pub mod hypervisor;
pub mod listing;
pub mod magnitude;
pub mod memory_console;
pub mod plan;
pub mod pmu;
pub mod protocol;
pub mod reason;
pub mod record;
pub mod refusal;
mod run;
mod stable_names;
pub mod window;

pub use hardware::{Fault, Hardware};
pub use run::{CPUID_WORD, QEMU_EXIT_WORD, RDPMC_WORD, run};
