//! A reference model of an x86 PMU as a guest sees it.
//!
//! The development and CI machines have no PMU, and nobody can run every
//! hypervisor on every CPU. This model stands in for both: a deterministic,
//! seeded PMU ([`pmu::Pmu`]) with Intel's and AMD's MSR semantics, an LVT
//! entry and PMIs with skid, driven by programs of retired instructions
//! ([`program`], [`machine`]). Each known hypervisor bug is a named
//! [`fault::Fault`] that changes the PMU exactly the way its source shows.
//!
//! Two drivers sit on top:
//!
//! - [`hardware::ModelHardware`] implements `pmu_kernel_checks::Hardware`, so
//!   the probe kernel's MSR-level checks run on the model unchanged;
//! - [`perf::Perf`] programs the PMU the way Linux perf does (−period presets,
//!   delta accumulation with width masking, re-arm, notifications), so the
//!   Linux probe's checks run on the model through pmu-conformance's `sim`
//!   probe unchanged.
//!
//! A run is fully determined by its [`config::Config`] (CPU, faults, seed).

pub mod config;
pub mod fault;
pub mod hardware;
pub mod machine;
pub mod perf;
pub mod pmu;
pub mod program;
pub mod quirk_fix;
mod random;

pub use config::{Config, Vendor};
pub use fault::{Fault, Faults};
