//! The environment fingerprint: everything about this machine that decides
//! what its PMU can do, printed by `pmu-conformance env` and embedded in
//! every report.
//!
//! CPUID parts come through a [`CpuidReader`], so they can be replayed from
//! dumps; the Linux parts come from /proc and /sys and are absent when a
//! fingerprint is built from a dump alone.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cpu::{ArchitecturalPmu, CpuFeatures, CpuIdentity, CpuidReader, Vendor};
use crate::event_table::EventTable;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The environment id derived from this fingerprint (`--env` overrides it for runs).
    pub derived_id: String,
    pub cpu: CpuFacts,
    pub hypervisor: Option<Hypervisor>,
    pub pmu: PmuFacts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<LinuxFacts>,
    /// What Xen said about itself, where the runner watched it boot (Xen
    /// under QEMU): the Xen under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xen: Option<XenFacts>,
}

/// Xen as its boot banner describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XenFacts {
    /// `4.17.5 (Debian 4.17.5+72-g01140da4e8-1)`: the release and the build.
    pub version: String,
    /// The vPMU mode Xen's command line asks for: `off` without a `vpmu=`
    /// word (Xen's default), else its value (`1`, `bts`, `ipc`, `arch`).
    pub vpmu: String,
    /// What Xen printed about its vPMU (`VPMU: version 0.1`, or why not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpmu_said: Vec<String>,
    pub command_line: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFacts {
    #[serde(flatten)]
    pub identity: CpuIdentity,
    /// The event table's name for it, if it has one.
    pub microarchitecture: Option<String>,
    pub features: CpuFeatures,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hypervisor {
    /// kvm, xen, hyper-v, vmware, tcg, … or `unknown`.
    pub name: String,
    pub signature: String,
    /// The CPUID leaf the signature was found at (Xen moves to 0x40000100 under Viridian).
    pub leaf: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xen_version: Option<String>,
    /// Every signature found, when there is more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmuFacts {
    /// CPUID leaf 0xA.
    pub architectural: ArchitecturalPmu,
    /// CPUID 0x80000001 ECX bit 23: six core counters.
    pub amd_perfctr_ext_core: bool,
    /// CPUID 0x80000022 EAX bit 0.
    pub amd_perfmon_v2: bool,
    /// CPUID 0x80000022 EBX bits 3:0, where PerfMonV2 is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd_core_counters: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxFacts {
    pub kernel: String,
    /// /sys/bus/event_source/devices: `cpu` (or `cpu_core`/`cpu_atom` on hybrids) is the core PMU.
    pub event_sources: Vec<String>,
    pub perf_event_paranoid: Option<i64>,
    pub nmi_watchdog: Option<i64>,
    /// /sys/hypervisor/pmu/pmu_mode on Xen guests: off, self, hv or all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xen_pmu_mode: Option<String>,
    /// /sys/hypervisor/pmu/pmu_features on Xen guests, as Linux prints it
    /// (`0x00000002`: vpmu=ipc; `0x00000004`: vpmu=arch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xen_pmu_features: Option<String>,
    /// /sys/bus/event_source/devices/cpu/rdpmc: 0 never, 1 while a counter is mmapped, 2 always.
    pub rdpmc: String,
}

impl LinuxFacts {
    pub fn read() -> LinuxFacts {
        let sources = "/sys/bus/event_source/devices";
        let mut event_sources: Vec<String> = fs::read_dir(sources)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        event_sources.sort();
        let core_pmu = ["cpu", "cpu_core"]
            .into_iter()
            .find(|p| event_sources.iter().any(|s| s == p));
        let rdpmc = match core_pmu {
            Some(pmu) => read_trimmed(format!("{sources}/{pmu}/rdpmc")).unwrap_or_else(|| "unknown".into()),
            None => "unavailable: no core PMU event source".into(),
        };
        LinuxFacts {
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            event_sources,
            perf_event_paranoid: read_trimmed("/proc/sys/kernel/perf_event_paranoid").and_then(|s| s.parse().ok()),
            nmi_watchdog: read_trimmed("/proc/sys/kernel/nmi_watchdog").and_then(|s| s.parse().ok()),
            xen_pmu_mode: read_trimmed("/sys/hypervisor/pmu/pmu_mode"),
            xen_pmu_features: read_trimmed("/sys/hypervisor/pmu/pmu_features"),
            rdpmc,
        }
    }

    /// Xen's vPMU feature flags, where Xen shows them.
    pub fn xen_pmu_features(&self) -> Option<u32> {
        let text = self.xen_pmu_features.as_deref()?;
        u32::from_str_radix(text.trim_start_matches("0x"), 16).ok()
    }

    /// Whether a core PMU event source exists at all.
    pub fn has_core_pmu(&self) -> bool {
        self.event_sources.iter().any(|s| s == "cpu" || s == "cpu_core")
    }
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Hypervisor signatures at CPUID 0x40000000 + k·0x100.
const SIGNATURES: [(&str, &str); 10] = [
    ("KVMKVMKVM\0\0\0", "kvm"),
    ("XenVMMXenVMM", "xen"),
    ("Microsoft Hv", "hyper-v"),
    ("VMwareVMware", "vmware"),
    ("TCGTCGTCGTCG", "tcg"),
    ("bhyve bhyve ", "bhyve"),
    (" lrpepyh  vr", "parallels"),
    ("VBoxVBoxVBox", "virtualbox"),
    ("ACRNACRNACRN", "acrn"),
    ("QNXQVMBSQG\0\0", "qnx"),
];

impl Hypervisor {
    /// Scans 0x40000000–0x40010000 in steps of 0x100, as Linux does, when
    /// CPUID.1:ECX bit 31 says a hypervisor is present.
    pub fn detect(cpuid: &CpuidReader) -> Option<Hypervisor> {
        if cpuid.leaf(1, 0)[2] & (1 << 31) == 0 {
            return None;
        }
        let mut found: Vec<(u32, String, &str)> = Vec::new();
        for leaf in (0x4000_0000u32..=0x4001_0000).step_by(0x100) {
            let [_, b, c, d] = cpuid.leaf(leaf, 0);
            let bytes: Vec<u8> = [b, c, d].iter().flat_map(|r| r.to_le_bytes()).collect();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((_, name)) = SIGNATURES.iter().find(|(sig, _)| sig.as_bytes() == bytes.as_slice()) {
                found.push((leaf, text.trim_end_matches('\0').to_owned(), name));
            }
        }
        // Xen with Viridian shows Hyper-V's signature first; the real host is Xen.
        let primary = found.iter().position(|f| f.2 == "xen").unwrap_or(0);
        let Some((leaf, signature, name)) = found.get(primary).cloned() else {
            return Some(Hypervisor {
                name: "unknown".into(),
                signature: String::new(),
                leaf: "none".into(),
                xen_version: None,
                also: Vec::new(),
            });
        };
        let xen_version = (name == "xen").then(|| {
            let eax = cpuid.leaf(leaf + 1, 0)[0];
            format!("{}.{}", eax >> 16, eax & 0xffff)
        });
        let also = if found.len() > 1 {
            found.iter().map(|f| format!("{} at {:#x}", f.1, f.0)).collect()
        } else {
            Vec::new()
        };
        Some(Hypervisor {
            name: name.into(),
            signature,
            leaf: format!("{leaf:#x}"),
            xen_version,
            also,
        })
    }
}

impl PmuFacts {
    pub fn read(cpuid: &CpuidReader) -> PmuFacts {
        let max_extended = cpuid.leaf(0x8000_0000, 0)[0];
        let ext_core = max_extended >= 0x8000_0001 && cpuid.leaf(0x8000_0001, 0)[2] & (1 << 23) != 0;
        let (v2, counters) = if max_extended >= 0x8000_0022 {
            let [a, b, _, _] = cpuid.leaf(0x8000_0022, 0);
            let v2 = a & 1 != 0;
            (v2, v2.then_some((b & 0xf) as u8))
        } else {
            (false, None)
        };
        PmuFacts {
            architectural: ArchitecturalPmu::read(cpuid),
            amd_perfctr_ext_core: ext_core,
            amd_perfmon_v2: v2,
            amd_core_counters: counters,
        }
    }
}

impl Fingerprint {
    /// This machine, as seen from here.
    pub fn here(table: &EventTable, cpuid: &CpuidReader) -> Fingerprint {
        Fingerprint::from_parts(table, cpuid, Some(LinuxFacts::read()))
    }

    pub fn from_parts(table: &EventTable, cpuid: &CpuidReader, linux: Option<LinuxFacts>) -> Fingerprint {
        let identity = CpuIdentity::read(cpuid);
        let microarchitecture = table.microarchitecture(&identity).map(|u| u.name.clone());
        let hypervisor = Hypervisor::detect(cpuid);
        let pmu = PmuFacts::read(cpuid);
        let mut fingerprint = Fingerprint {
            derived_id: String::new(),
            cpu: CpuFacts {
                identity,
                microarchitecture,
                features: CpuFeatures::read(cpuid),
            },
            hypervisor,
            pmu,
            linux,
            xen: None,
        };
        fingerprint.derived_id = fingerprint.derive_id();
        fingerprint
    }

    /// `<hypervisor or bare>-<microarchitecture><pmu>`, e.g.
    /// `kvm-amd-zen-nopmu`: the environment id of this machine, and the host
    /// class its expectations are recorded under. A CPU the event table does
    /// not name is `<vendor>-<family>h-m<model>` in hex, as AMD writes
    /// families (`amd-1ah-m02`).
    ///
    /// `<pmu>` comes from Linux where the fingerprint has Linux's view:
    /// `-nopmu` when no core PMU event source exists. A guest or a model has
    /// only CPUID, so there it is what CPUID describes: on Intel `-nopmu` for
    /// CPUID.0AH version 0 (no architectural PMU: SDM Vol. 3B, "Architectural
    /// Performance Monitoring") or
    /// `-pmu-v<N>`; on AMD `-perfmon-v2` (CPUID 0x80000022 EAX[0]),
    /// `-core6` (PerfCtrExtCore, 0x80000001 ECX[23]) or `-legacy` (only the
    /// four K7 counters, which may or may not count: the probe kernel says).
    fn derive_id(&self) -> String {
        let host = self.hypervisor.as_ref().map_or("bare", |h| h.name.as_str());
        let i = &self.cpu.identity;
        let cpu = self
            .cpu
            .microarchitecture
            .clone()
            .unwrap_or_else(|| format!("{}-{:02x}h-m{:02x}", i.vendor.name(), i.family, i.model));
        let pmu = match (&self.linux, &i.vendor) {
            (Some(linux), _) if !linux.has_core_pmu() => "-nopmu".to_owned(),
            (Some(_), _) => String::new(),
            (None, Vendor::Intel | Vendor::Other) => match self.pmu.architectural.version {
                0 => "-nopmu".to_owned(),
                v => format!("-pmu-v{v}"),
            },
            (None, Vendor::Amd | Vendor::Hygon) if self.pmu.amd_perfmon_v2 => "-perfmon-v2".to_owned(),
            (None, Vendor::Amd | Vendor::Hygon) if self.pmu.amd_perfctr_ext_core => "-core6".to_owned(),
            (None, Vendor::Amd | Vendor::Hygon) => "-legacy".to_owned(),
        };
        format!("{host}-{cpu}{pmu}")
    }

    /// A warning for a guest whose CPU model may not be its host's: it
    /// reports an Intel model that encodes all conditional branches as
    /// 0x5101c4, which on an Ice Lake or later host counts only the taken
    /// ones, and KVM passes a guest's raw event to the host unchanged (rr
    /// #2610). Only for KVM guests, which QEMU gives named CPU models; `None`
    /// elsewhere, and where the encoding does not apply.
    pub fn cpu_model_warning(&self, table: &EventTable) -> Option<String> {
        // QEMU/KVM guests are the ones given named CPU models.
        let hypervisor = self.hypervisor.as_ref().filter(|h| h.name == "kvm")?;
        let event = table
            .resolve(
                "retired-conditional-branches",
                &self.cpu.identity,
                &self.pmu.architectural,
                &self.cpu.features,
            )
            .ok()?;
        (event.encoding == crate::event_table::Encoding::Raw(0x5101c4)).then(|| {
            format!(
                "warning: this {} guest reports a CPU older than Ice Lake ({}), so conditional branches are \
                 programmed as 0x5101c4; if the host is Ice Lake or later that counts only the taken ones \
                 (rr #2610). Give the guest the host's CPU model; exact-counts/conditional-branches-never-taken \
                 tells the two apart.",
                hypervisor.name,
                self.cpu.microarchitecture.as_deref().unwrap_or("unknown")
            )
        })
    }

    /// Why there is no PMU here, `seen` being what showed it: the
    /// hypervisor's own refusal where its rules and this CPU name one
    /// ([`pmu_kernel_checks::refusal`]).
    pub fn no_pmu(&self, seen: &str) -> crate::outcome::Reason {
        let hypervisor = self.hypervisor.as_ref().map_or("bare", |h| h.name.as_str());
        let id = &self.cpu.identity;
        pmu_kernel_checks::refusal::no_pmu(
            seen,
            hypervisor,
            id.vendor == crate::cpu::Vendor::Intel,
            id.family,
            id.model,
        )
    }

    /// The facts that explain a missing hardware PMU, for unsupported reasons:
    /// `hypervisor KVM, CPUID.0AH version 0, no cpu event source`.
    pub fn pmu_context(&self) -> String {
        let mut parts = Vec::new();
        match &self.hypervisor {
            Some(h) => parts.push(format!("hypervisor {}", h.name.to_uppercase())),
            None => parts.push("bare metal".to_owned()),
        }
        parts.push(format!("CPUID.0AH version {}", self.pmu.architectural.version));
        if let Some(linux) = &self.linux {
            if !linux.has_core_pmu() {
                parts.push("no cpu event source".to_owned());
            }
            if let Some(mode) = &linux.xen_pmu_mode {
                parts.push(format!("xen pmu_mode {mode}"));
            }
        }
        parts.join(", ")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a fingerprint always serialises")
    }
}
