//! The known bugs, as faults the model can have.
//!
//! Each fault is named by its id in `runner/pmu-conformance/known-bugs.yaml`
//! (the catalogue cases and diagnosis use) and changes the model exactly as
//! its source shows; where a fault strikes only sometimes, it has a rate,
//! and the model counts its opportunities to strike so that detection
//! probabilities can be computed rather than sampled. Every rate, and the
//! late PMI's lateness, is invented: no source gives one (known-bugs.yaml
//! marks each such entry `unverified`), and the detection matrix shows how
//! far each catch depends on it.

/// One fault, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Xen's PMI handler writes 1 into every overflowed counter that reads 0
    /// (xen:arch/x86/cpu/vpmu_intel.c, handle_pmc_quirk).
    XenPmcQuirk,
    /// Xen's guest GLOBAL_STATUS is a shadow updated only in its PMI handler:
    /// an overflow without INT never shows until some PMI comes.
    XenStatusShadow,
    /// Xen's vLAPIC never sets the guest's LVT mask bit when it delivers a
    /// PMI (the physical LVTPC, modelled by `Config::physical_lvtpc`, still
    /// holds a second PMI back until the guest rewrites its LVT).
    XenLvtpcNeverMasked,
    /// Each instruction that exits to Xen (CPUID, an intercepted WRMSR) is not counted.
    XenVmexitUndercount,
    /// KVM never set the guest's LVT mask bit on a PMI (before
    /// a16eb25b09c0), and there is no second LVT to hold the next one back.
    KvmLvtpcNeverMasked,
    /// KVM did not count the instructions it emulated (before 9cd803d496e7).
    KvmVmexitUndercount,
    /// KVM masked the guest's LVTPC on a PMI on AMD too, which AMD's LAPIC
    /// never does (a16eb25b09c0 to 49ff3b4aec51).
    KvmAmdLvtpcMasked,
    /// KVM did not emulate AMD's PerfMonV2 GlobalStatusSet: writing it
    /// raised #GP (from 4a2771895ca6 until its 2025 fix).
    KvmAmdStatusSetGp,
    /// Xen did not save hardware GLOBAL_STATUS across an HVM context switch
    /// and masked the physical LVTPC while the vCPU was out: with this chance
    /// per PMI, the vCPU is switched out between overflow and PMI, and the
    /// PMI and its status bit are lost.
    XenStatusNotSaved { rate: f64 },
    /// KVM could not create the host event for an IN_TXCP counter: it counts nothing.
    KvmInTxcpDrop,
    /// KVM's pinned host event cannot be scheduled: with this chance per
    /// window, the counter silently stops part-way.
    KvmPinnedStarvation { rate: f64 },
    /// KVM injects a PMI twice when an instruction it emulates (one that
    /// exits to it: CPUID, an intercepted WRMSR) overflows the counter, with
    /// the guest's LVTPC unmasked (torvalds/linux@73554b29bd70).
    KvmDuplicatePmi,
    /// With this chance per PMI, it never reaches the guest.
    LostPmi { rate: f64 },
    /// With this chance per PMI, it comes `extra` instructions late.
    LatePmi { rate: f64, extra: u32 },
    /// A counter written reads with bit 31 flipped (Parallels: counts off by exactly 2^31).
    Parallels2p31Offset,
    /// With this chance, a conditional branch between two CPUIDs is not counted (VMware hvsim).
    VmwareCpuidBranchDrop { rate: f64 },
    /// Counters run but count nothing.
    ZeroCounts,
}

impl Fault {
    /// Every fault, with its default parameters.
    pub const ALL: [Fault; 17] = [
        Fault::XenPmcQuirk,
        Fault::XenStatusShadow,
        Fault::XenLvtpcNeverMasked,
        Fault::XenVmexitUndercount,
        Fault::KvmLvtpcNeverMasked,
        Fault::KvmVmexitUndercount,
        Fault::KvmAmdLvtpcMasked,
        Fault::KvmAmdStatusSetGp,
        Fault::XenStatusNotSaved { rate: 0.01 },
        Fault::KvmInTxcpDrop,
        Fault::KvmPinnedStarvation { rate: 0.05 },
        Fault::KvmDuplicatePmi,
        Fault::LostPmi { rate: 0.01 },
        Fault::LatePmi {
            rate: 0.01,
            extra: 100_000,
        },
        Fault::Parallels2p31Offset,
        Fault::VmwareCpuidBranchDrop { rate: 0.05 },
        Fault::ZeroCounts,
    ];

    pub fn id(&self) -> &'static str {
        match self {
            Fault::XenPmcQuirk => "xen-pmc-quirk",
            Fault::XenStatusShadow => "xen-status-shadow",
            Fault::XenLvtpcNeverMasked => "xen-lvtpc-never-masked",
            Fault::XenVmexitUndercount => "xen-vmexit-undercount",
            Fault::KvmLvtpcNeverMasked => "kvm-lvtpc-never-masked",
            Fault::KvmVmexitUndercount => "kvm-vmexit-undercount",
            Fault::KvmAmdLvtpcMasked => "kvm-amd-lvtpc-masked",
            Fault::KvmAmdStatusSetGp => "kvm-amd-status-set-gp",
            Fault::XenStatusNotSaved { .. } => "xen-status-not-saved",
            Fault::KvmInTxcpDrop => "kvm-in-txcp-drop",
            Fault::KvmPinnedStarvation { .. } => "kvm-pinned-starvation",
            Fault::KvmDuplicatePmi => "kvm-duplicate-pmi",
            Fault::LostPmi { .. } => "lost-pmi",
            Fault::LatePmi { .. } => "late-pmi",
            Fault::Parallels2p31Offset => "parallels-2^31-offset",
            Fault::VmwareCpuidBranchDrop { .. } => "vmware-cpuid-branch-drop",
            Fault::ZeroCounts => "zero-counts",
        }
    }

    /// The hypervisor a guest must run under for this fault to be the real
    /// bug (the name fingerprints give it); `None` for a fault of any
    /// hypervisor or of bare metal. The detection matrix runs it there.
    pub fn hypervisor(&self) -> Option<&'static str> {
        match self {
            Fault::XenPmcQuirk
            | Fault::XenStatusShadow
            | Fault::XenLvtpcNeverMasked
            | Fault::XenVmexitUndercount
            | Fault::XenStatusNotSaved { .. } => Some("xen"),
            Fault::KvmAmdLvtpcMasked
            | Fault::KvmAmdStatusSetGp
            | Fault::KvmLvtpcNeverMasked
            | Fault::KvmVmexitUndercount
            | Fault::KvmInTxcpDrop
            | Fault::KvmPinnedStarvation { .. }
            | Fault::KvmDuplicatePmi => Some("kvm"),
            Fault::Parallels2p31Offset => Some("parallels"),
            Fault::VmwareCpuidBranchDrop { .. } => Some("vmware"),
            Fault::LostPmi { .. } | Fault::LatePmi { .. } | Fault::ZeroCounts => None,
        }
    }

    /// Whether the bug lives only on AMD hosts (the detection matrix runs it
    /// on the AMD preset).
    pub fn amd_only(&self) -> bool {
        matches!(self, Fault::KvmAmdLvtpcMasked | Fault::KvmAmdStatusSetGp)
    }

    /// The fault with this id, with its default parameters.
    pub fn from_id(id: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.id() == id)
    }

    /// Its rate, for a fault that strikes only sometimes.
    pub fn rate(&self) -> Option<f64> {
        match *self {
            Fault::KvmPinnedStarvation { rate }
            | Fault::XenStatusNotSaved { rate }
            | Fault::LostPmi { rate }
            | Fault::LatePmi { rate, .. }
            | Fault::VmwareCpuidBranchDrop { rate } => Some(rate),
            _ => None,
        }
    }

    /// The same fault at another rate (no change for one that always strikes).
    pub fn with_rate(self, rate: f64) -> Fault {
        match self {
            Fault::KvmPinnedStarvation { .. } => Fault::KvmPinnedStarvation { rate },
            Fault::LostPmi { .. } => Fault::LostPmi { rate },
            Fault::XenStatusNotSaved { .. } => Fault::XenStatusNotSaved { rate },
            Fault::LatePmi { extra, .. } => Fault::LatePmi { rate, extra },
            Fault::VmwareCpuidBranchDrop { .. } => Fault::VmwareCpuidBranchDrop { rate },
            other => other,
        }
    }
}

/// The faults a model has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults(pub Vec<Fault>);

impl Faults {
    pub fn none() -> Faults {
        Faults(Vec::new())
    }

    pub fn has(&self, id: &str) -> bool {
        self.0.iter().any(|f| f.id() == id)
    }

    pub fn get(&self, id: &str) -> Option<Fault> {
        self.0.iter().copied().find(|f| f.id() == id)
    }

    pub fn rate(&self, id: &str) -> f64 {
        self.get(id).and_then(|f| f.rate()).unwrap_or(0.0)
    }
}

/// How often each stochastic fault had a chance to strike, over a model's
/// life: with a rate r and n opportunities, a fault that one strike makes
/// visible is caught with probability 1 − (1 − r)^n.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opportunities {
    /// PMIs raised (lost-pmi, late-pmi).
    pub pmis: u64,
    /// Counters enabled (kvm-pinned-starvation).
    pub enables: u64,
    /// Counted conditional branches between CPUIDs (vmware-cpuid-branch-drop).
    pub cpuid_branches: u64,
}

impl Opportunities {
    pub fn add(&mut self, other: &Opportunities) {
        self.pmis += other.pmis;
        self.enables += other.enables;
        self.cpuid_branches += other.cpuid_branches;
    }

    pub fn for_fault(&self, fault: &Fault) -> u64 {
        match fault {
            Fault::LostPmi { .. } | Fault::LatePmi { .. } | Fault::XenStatusNotSaved { .. } => self.pmis,
            Fault::KvmPinnedStarvation { .. } => self.enables,
            Fault::VmwareCpuidBranchDrop { .. } => self.cpuid_branches,
            _ => 0,
        }
    }
}
