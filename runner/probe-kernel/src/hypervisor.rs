//! Which hypervisor this guest runs under: the checks crate's reading of
//! CPUID's hypervisor leaves, on this machine's CPUID.

pub use pmu_kernel_checks::hypervisor::Hypervisor;

/// Identifies the hypervisor of the running guest.
pub fn detect() -> Hypervisor {
    pmu_kernel_checks::hypervisor::identify(crate::cpuid::cpuid)
}
