//! What the modelled CPU is: vendor, PMU geometry, what the hypervisor lets
//! the guest do, how late PMIs come, and which faults are present.

use crate::fault::Faults;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
}

/// Xen's CPUID signature (leaf 0x40000000, or 0x40000100 beside Viridian).
pub const XEN_SIGNATURE: &str = "XenVMMXenVMM";

#[derive(Clone, Debug)]
pub struct Config {
    pub vendor: Vendor,
    /// CPUID.1:EAX.
    pub signature: u32,
    /// Intel: the architectural PMU version CPUID.0AH reports (0: none).
    pub version: u8,
    pub gp: u8,
    pub width: u8,
    pub fixed: u8,
    pub fixed_width: u8,
    /// Intel: PDCM with PERF_CAPABILITIES[13] (full-width writes through 0x4c1+i).
    pub full_width_writes: bool,
    /// AMD: PerfMonV2 (global control and status MSRs).
    pub perfmon_v2: bool,
    /// The hypervisor signature in CPUID 0x40000000, if any.
    pub hypervisor: Option<&'static str>,
    /// The hypervisor keeps a physical LVTPC between the counter and the
    /// guest's (Xen: xen-project/xen@c447b730:xen/arch/x86/apic.c:1326-1330,
    /// xen/arch/x86/cpu/vpmu.c:87-103): the CPU masks it on each PMI it
    /// delivers to the hypervisor, and only the guest's LVTPC write unmasks it.
    pub physical_lvtpc: bool,
    /// AMD under KVM: writes of reserved bits to the event selects and
    /// global MSRs are dropped, not #GP ("AMD ignores writes to reserved bits
    /// and read-only PMU MSRs, whereas Intel generates #GP":
    /// torvalds/linux@004a0aa5:arch/x86/kvm/pmu.c (kvm_pmu_set_msr), and
    /// svm/pmu.c masks them).
    pub reserved_bits_ignored: bool,
    /// IA32_DEBUGCTL accepts FREEZE_PERFMON_ON_PMI (bare metal does; KVM and Xen raise #GP).
    pub debugctl_freeze: bool,
    /// Intel TSX: CPUID.7.0:EBX reports HLE (bit 4) and RTM (bit 11), so
    /// IN_TX and IN_TXCP mean something (SDM Vol. 3B, Intel TSX performance
    /// monitoring). Skylake client parts shipped with TSX; microcode and
    /// hypervisors can hide it.
    pub tsx: bool,
    /// KVM's quirk: nonexistent legacy PMC0/PMC1 (0xc1, 0xc2) read as 0.
    pub legacy_pmc_reads_zero: bool,
    /// Xen's `vpmu=ipc`: an event select off its list (cycles, reference
    /// cycles, instructions) raises #GP
    /// (xen-project/xen@c447b730:xen/arch/x86/cpu/vpmu_intel.c (core2_vpmu_do_wrmsr)).
    pub xen_ipc_only: bool,
    /// Instructions retired between an overflow and its PMI: uniform in this range.
    pub skid: (u32, u32),
    /// A timer interrupt every this many user-mode instructions; each adds one
    /// to user-mode instruction and branch counts (the iret's tail).
    pub interrupt_every: u64,
    /// Kernel-mode instructions a syscall runs before its perf operation
    /// takes effect, during which a pending PMI can fire.
    pub syscall_entry: u32,
    pub faults: Faults,
    /// One of the fixes proposed for `xen-pmc-quirk`, where the model tries one.
    pub pmc_quirk_fix: Option<crate::quirk_fix::PmcQuirkFix>,
    pub seed: u64,
}

impl Config {
    /// A Skylake client on bare metal: PMU version 4, 4 counters of 48 bits,
    /// 3 fixed counters, full-width writes, freeze on PMI.
    pub fn intel_skylake() -> Config {
        Config {
            vendor: Vendor::Intel,
            signature: 0x0005_06e3,
            version: 4,
            gp: 4,
            width: 48,
            fixed: 3,
            fixed_width: 48,
            full_width_writes: true,
            perfmon_v2: false,
            hypervisor: None,
            physical_lvtpc: false,
            reserved_bits_ignored: false,
            debugctl_freeze: true,
            tsx: true,
            legacy_pmc_reads_zero: false,
            xen_ipc_only: false,
            skid: (0, 24),
            interrupt_every: 4_000_000,
            syscall_entry: 200,
            faults: Faults::none(),
            pmc_quirk_fix: None,
            seed: 0x5eed,
        }
    }

    /// The CPUs and hosts environments can name, by name.
    pub const PRESETS: [&'static str; 12] = [
        "intel-skylake",
        "intel-alder-lake",
        "amd-zen3",
        "xen-intel-skylake",
        "xen-intel-skylake-vpmu-off",
        "xen-intel-skylake-vpmu-ipc",
        "xen-intel-skylake-fix-quirk-old-cpus",
        "xen-intel-skylake-fix-intercept-reads",
        "xen-intel-skylake-fix-hold-pmi",
        "kvm-intel-skylake",
        "kvm-intel-alder-lake",
        "kvm-amd-zen3",
    ];

    pub fn preset(name: &str) -> Option<Config> {
        match name {
            "intel-skylake" => Some(Config::intel_skylake()),
            "amd-zen3" => Some(Config::amd_zen3()),
            // Alder Lake's CPUID signature (family 6 model 0x97) and no TSX,
            // on the model's Skylake PMU: a hybrid part as the event table
            // sees it, so linux cases run once per core type, each with its
            // own encoding. Alder Lake's own PMU (version 5, more counters)
            // is not modelled.
            "intel-alder-lake" => Some(Config {
                signature: 0x0009_0672,
                tsx: false,
                ..Config::intel_skylake()
            }),
            // Xen's vPMU: version capped at 3 (xen/arch/x86/cpuid.c, leaf
            // 0xA), no PDCM so no full-width writes
            // (public/arch-x86/cpufeatureset.h:128), DEBUGCTL's freeze bit
            // refused (xen/arch/x86/hvm/vmx/vmx.c:3728-3745), and its
            // physical LVTPC; all at xen-project/xen@c447b730.
            "xen-intel-skylake" => Config::intel_skylake().under("xen").map(|c| Config {
                version: 3,
                full_width_writes: false,
                debugctl_freeze: false,
                ..c
            }),
            // Xen without a vPMU for this guest (vpmu off, the default; the
            // NMI watchdog; a host arch-perfmon version outside 2-5):
            // leaf 0xA empty (vpmu_intel.c:902-924, vpmu.c:824-827).
            "xen-intel-skylake-vpmu-off" => Config::preset("xen-intel-skylake").map(|c| Config {
                version: 0,
                gp: 0,
                fixed: 0,
                ..c
            }),
            // Xen booted with vpmu=ipc: only three event selects pass.
            "xen-intel-skylake-vpmu-ipc" => Config::preset("xen-intel-skylake").map(|c| Config {
                xen_ipc_only: true,
                ..c
            }),
            // Xen with one of the fixes proposed for its PMC quirk
            // (crate::quirk_fix; none exists in Xen).
            fixed if fixed.starts_with("xen-intel-skylake-fix-") => {
                let name = &fixed["xen-intel-skylake-fix-".len()..];
                let fix = crate::quirk_fix::PmcQuirkFix::ALL
                    .into_iter()
                    .find(|f| f.name() == name)?;
                Config::preset("xen-intel-skylake").map(|c| Config {
                    pmc_quirk_fix: Some(fix),
                    ..c
                })
            }
            // KVM's perf-based vPMU: guests see at most version 2
            // (kvm_init_pmu_capability: min(version, 2)), freeze refused
            // (vmx_is_valid_debugctl), legacy PMC0/1 read as 0
            // (kvm_get_msr_common); torvalds/linux@004a0aa5:arch/x86/kvm/.
            "kvm-intel-skylake" => Config::intel_skylake().under("kvm").map(|c| Config {
                version: 2,
                debugctl_freeze: false,
                legacy_pmc_reads_zero: true,
                ..c
            }),
            // A KVM guest on an Alder Lake host (family 6 model 0x97, CPUID.1
            // 0x90672): KVM turns its vPMU off on hybrid hosts, so leaf 0xA
            // is empty (kvm_init_pmu_capability).
            "kvm-intel-alder-lake" => Config::preset("kvm-intel-skylake").map(|c| Config {
                signature: 0x0009_0672,
                version: 0,
                gp: 0,
                fixed: 0,
                ..c
            }),
            // KVM's vPMU on AMD: PerfMonV2 passed through, reserved bits
            // dropped, legacy K7 MSRs answered (kvm_get_msr_common).
            "kvm-amd-zen3" => Config::amd_zen3().under("kvm").map(|c| Config {
                legacy_pmc_reads_zero: true,
                ..c
            }),
            _ => None,
        }
    }

    /// Whether this is a guest of Xen, whose PMI handler acts on every PMI.
    pub fn under_xen(&self) -> bool {
        self.hypervisor == Some(XEN_SIGNATURE)
    }

    /// The hypervisors a model can run under, by the name fingerprints
    /// give them, with their CPUID signatures.
    pub const HYPERVISORS: [(&'static str, &'static str); 4] = [
        ("xen", XEN_SIGNATURE),
        ("kvm", "KVMKVMKVM\0\0\0"),
        ("vmware", "VMwareVMware"),
        ("parallels", " lrpepyh  vr"),
    ];

    /// This CPU as a guest of `hypervisor`: its CPUID signature, Xen's
    /// physical LVTPC, and KVM's dropping of AMD's reserved bits. Nothing
    /// else of a hypervisor's vPMU changes here; the presets add that.
    pub fn under(self, hypervisor: &str) -> Option<Config> {
        let (name, signature) = Config::HYPERVISORS.into_iter().find(|(n, _)| *n == hypervisor)?;
        Some(Config {
            hypervisor: Some(signature),
            physical_lvtpc: name == "xen",
            reserved_bits_ignored: name == "kvm" && self.vendor == Vendor::Amd,
            ..self
        })
    }

    /// A Zen 3 on bare metal: 6 core counters of 48 bits, PerfMonV2.
    pub fn amd_zen3() -> Config {
        Config {
            vendor: Vendor::Amd,
            signature: 0x00a0_0f11,
            version: 0,
            gp: 6,
            width: 48,
            fixed: 0,
            fixed_width: 0,
            full_width_writes: true,
            perfmon_v2: true,
            debugctl_freeze: false,
            tsx: false,
            ..Config::intel_skylake()
        }
    }
}
