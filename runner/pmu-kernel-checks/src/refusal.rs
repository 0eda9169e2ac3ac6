//! Why a hypervisor gives a guest less PMU than its CPU has, as far as the
//! guest can tell: a refusal is a reason, never a failure, and it names the
//! hypervisor's own rule.
//!
//! Sources, each at the revision hypervisor-behaviour.md reads:
//! - KVM turns its vPMU off on hybrid hosts:
//!   torvalds/linux@004a0aa5:arch/x86/kvm/pmu.c (kvm_init_pmu_capability).
//! - The hybrid models: arch/x86/include/asm/intel-family.h, its "Hybrid"
//!   block (Lakefield to Panther Lake).
//! - Xen's Intel vPMU is family 6 only (vpmu_intel.c:920-924), needs a host
//!   arch-perfmon version of 2-5 (:902-918), is off unless Xen boots with
//!   `vpmu=1`, and the NMI watchdog turns it off (vpmu.c:824-827):
//!   xen-project/xen@c447b730.
//! - `vpmu=ipc` and `vpmu=arch` (XENPMU_FEATURE_IPC_ONLY, _ARCH_ONLY in
//!   xen/include/public/pmu.h) make core2_vpmu_do_wrmsr refuse every event
//!   select outside their lists with -EINVAL, a #GP to the guest.

use alloc::format;
use alloc::string::String;

use crate::reason::{Reason, ReasonCode};

/// Intel family-6 models with P- and E-cores (intel-family.h, "Hybrid").
pub const HYBRID_MODELS: [u32; 13] = [
    0x8a, // Lakefield
    0x97, 0x9a, // Alder Lake
    0xb7, 0xba, 0xbf, // Raptor Lake
    0xac, 0xaa, // Meteor Lake
    0xc5, 0xc6, 0xb5, // Arrow Lake
    0xbd, // Lunar Lake
    0xcc, // Panther Lake
];

/// `umask << 8 | event` of the event selects `vpmu=ipc` allows: core
/// cycles, reference cycles, instructions.
pub const XEN_IPC_EVENTS: [u16; 3] = [0x003c, 0x013c, 0x00c0];
/// What `vpmu=arch` allows besides: LLC references and misses, branches,
/// branch misses.
pub const XEN_ARCH_EVENTS: [u16; 4] = [0x4f2e, 0x412e, 0x00c4, 0x00c5];

/// XENPMU_FEATURE_IPC_ONLY and XENPMU_FEATURE_ARCH_ONLY, as
/// /sys/hypervisor/pmu/pmu_features shows them to a Linux guest.
pub const XEN_FEATURE_IPC_ONLY: u32 = 1 << 1;
pub const XEN_FEATURE_ARCH_ONLY: u32 = 1 << 2;

/// Why there is no PMU at all, `seen` being what showed it (`CPUID.0AH:
/// PMU version 0`), under `hypervisor` (as [`crate::hypervisor`] names it)
/// on a CPU of this vendor, family and model.
pub fn no_pmu(seen: &str, hypervisor: &str, intel: bool, family: u32, model: u32) -> Reason {
    match hypervisor {
        "kvm" if intel && family == 6 && HYBRID_MODELS.contains(&model) => Reason::new(
            ReasonCode::KvmHybridHost,
            format!(
                "{seen}: KVM turns its vPMU off on hybrid hosts (torvalds/linux@004a0aa5:arch/x86/kvm/pmu.c \
                 (kvm_init_pmu_capability)), and this guest's CPU, family 6 model {model:#x}, is a hybrid part"
            ),
        ),
        "kvm" => Reason::new(
            ReasonCode::NoPmu,
            format!("{seen}: KVM gives this guest no vPMU (kvm.enable_pmu=0 on the host, or -cpu …,pmu=off)"),
        ),
        "xen" if intel && family != 6 => Reason::new(
            ReasonCode::XenNotFamily6,
            format!(
                "{seen}: Xen's Intel vPMU serves family 6 only \
                 (xen-project/xen@c447b730:xen/arch/x86/cpu/vpmu_intel.c:920-924), and this CPU is family {family}"
            ),
        ),
        "xen" => Reason::new(
            ReasonCode::XenNoVpmu,
            format!(
                "{seen}: Xen gives this guest no vPMU. It is off unless Xen boots with vpmu=1; the NMI watchdog \
                 turns it off (xen-project/xen@c447b730:xen/arch/x86/cpu/vpmu.c:824-827); and a host whose \
                 arch-perfmon version is not 2-5 gets none (vpmu_intel.c:902-918)"
            ),
        ),
        _ => Reason::new(ReasonCode::NoPmu, String::from(seen)),
    }
}

/// Whether Xen's `vpmu=ipc`/`vpmu=arch`, as `features` has them, refuses
/// the event select `evtsel`.
pub fn xen_filter_refuses(features: u32, evtsel: u64) -> bool {
    let event = (evtsel & 0xffff) as u16;
    let ipc = features & XEN_FEATURE_IPC_ONLY != 0;
    let arch = features & XEN_FEATURE_ARCH_ONLY != 0;
    (ipc || arch) && !XEN_IPC_EVENTS.contains(&event) && !(arch && XEN_ARCH_EVENTS.contains(&event))
}

/// The reason for an event select Xen refused, or would refuse.
pub fn xen_filter(evtsel: u64) -> Reason {
    Reason::new(
        ReasonCode::XenEventFilter,
        format!(
            "Xen refuses the event select {:#06x}: vpmu=ipc lets a guest count only cycles, reference cycles and \
             instructions, and vpmu=arch adds LLC references and misses, branches and branch misses \
             (xen-project/xen@c447b730:xen/arch/x86/cpu/vpmu_intel.c (core2_vpmu_do_wrmsr))",
            evtsel & 0xffff
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hypervisor_names_its_own_refusal() {
        let code = |hv, intel, family, model| no_pmu("version 0", hv, intel, family, model).code;
        assert_eq!(code("kvm", true, 6, 0x97), ReasonCode::KvmHybridHost);
        assert_eq!(code("kvm", true, 6, 0x55), ReasonCode::NoPmu);
        assert_eq!(code("kvm", false, 0x19, 0x97), ReasonCode::NoPmu);
        assert_eq!(code("xen", true, 19, 1), ReasonCode::XenNotFamily6);
        assert_eq!(code("xen", true, 6, 0x55), ReasonCode::XenNoVpmu);
        assert_eq!(code("bare", true, 6, 0x97), ReasonCode::NoPmu);
    }

    #[test]
    fn xens_filters_pass_only_their_lists() {
        let instructions = 0x00c0 | 1 << 22;
        let branches = 0x00c4;
        let conditional = 0x5101c4;
        assert!(!xen_filter_refuses(0, conditional));
        assert!(!xen_filter_refuses(XEN_FEATURE_IPC_ONLY, instructions));
        assert!(xen_filter_refuses(XEN_FEATURE_IPC_ONLY, branches));
        assert!(!xen_filter_refuses(XEN_FEATURE_ARCH_ONLY, branches));
        assert!(xen_filter_refuses(XEN_FEATURE_ARCH_ONLY, conditional));
        assert!(xen_filter_refuses(
            XEN_FEATURE_IPC_ONLY | XEN_FEATURE_ARCH_ONLY,
            conditional
        ));
    }
}
