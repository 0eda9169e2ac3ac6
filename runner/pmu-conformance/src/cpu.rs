//! Who made this CPU and which model it is, from CPUID.
//!
//! CPUID is read through [`CpuidReader`], which is either the real instruction
//! or a recorded dump. Every fingerprint can print the leaves it read
//! (`pmu-conformance env --cpuid`), and tests replay such dumps, so CPU
//! identification and event resolution are tested on CPUs we do not have.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use raw_cpuid::{CpuIdReader, CpuIdResult};
use serde::{Deserialize, Serialize};

/// Where CPUID answers come from.
#[derive(Clone)]
pub enum CpuidReader {
    /// The `cpuid` instruction, noting every leaf read so it can be dumped.
    Native(Arc<Mutex<CpuidDump>>),
    /// A recorded dump; leaves it lacks read as zero, as reserved leaves do.
    Replay(Arc<CpuidDump>),
}

impl CpuidReader {
    pub fn native() -> CpuidReader {
        CpuidReader::Native(Arc::default())
    }

    pub fn replay(dump: CpuidDump) -> CpuidReader {
        CpuidReader::Replay(Arc::new(dump))
    }

    /// One leaf as `[eax, ebx, ecx, edx]`.
    pub fn leaf(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = self.cpuid2(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    /// Every leaf read so far (native) or the replayed dump.
    pub fn dump(&self) -> CpuidDump {
        match self {
            CpuidReader::Native(seen) => seen.lock().expect("cpuid log").clone(),
            CpuidReader::Replay(dump) => (**dump).clone(),
        }
    }
}

impl CpuIdReader for CpuidReader {
    fn cpuid2(&self, leaf: u32, subleaf: u32) -> CpuIdResult {
        match self {
            CpuidReader::Native(seen) => {
                let r = raw_cpuid::native_cpuid::cpuid_count(leaf, subleaf);
                seen.lock()
                    .expect("cpuid log")
                    .leaves
                    .insert((leaf, subleaf), [r.eax, r.ebx, r.ecx, r.edx]);
                r
            }
            CpuidReader::Replay(dump) => {
                let [eax, ebx, ecx, edx] = dump.leaves.get(&(leaf, subleaf)).copied().unwrap_or_default();
                CpuIdResult { eax, ebx, ecx, edx }
            }
        }
    }
}

/// CPUID leaves by `(leaf, subleaf)`. As YAML, a list with one string per
/// non-zero leaf, `"leaf.subleaf: eax ebx ecx edx"` in hex:
/// `"00000001.0: 00a00f11 00020800 fffa3203 178bfbff"`. Leaves it lacks read as zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuidDump {
    pub leaves: BTreeMap<(u32, u32), [u32; 4]>,
}

impl Serialize for CpuidDump {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<String> = self
            .leaves
            .iter()
            .filter(|(_, r)| r.iter().any(|&v| v != 0))
            .map(|(&(leaf, sub), r)| {
                format!(
                    "{leaf:08x}.{sub:x}: {:08x} {:08x} {:08x} {:08x}",
                    r[0], r[1], r[2], r[3]
                )
            })
            .collect();
        rows.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CpuidDump {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows: Vec<String> = Vec::deserialize(d)?;
        let mut leaves = BTreeMap::new();
        for row in rows {
            let parse = || -> Option<((u32, u32), [u32; 4])> {
                let (key, regs) = row.split_once(':')?;
                let (leaf, sub) = key.trim().split_once('.')?;
                let hex = |t: &str| u32::from_str_radix(t, 16).ok();
                let regs: Vec<u32> = regs.split_whitespace().map(hex).collect::<Option<_>>()?;
                Some(((hex(leaf)?, hex(sub)?), regs.try_into().ok()?))
            };
            let (key, regs) = parse().ok_or_else(|| {
                serde::de::Error::custom(format!("`{row}` is not `leaf.subleaf: eax ebx ecx edx` in hex"))
            })?;
            leaves.insert(key, regs);
        }
        Ok(CpuidDump { leaves })
    }
}

/// A dump as a file holds it: the list `env --cpuid` prints, or a CPUID test
/// file of `tests/cpuid/` (the same list under `leaves:`, beside what the
/// runner must conclude from it).
#[derive(Deserialize)]
#[serde(untagged)]
enum DumpFile {
    Leaves(CpuidDump),
    Recorded { leaves: CpuidDump },
}

impl CpuidDump {
    /// Reads a dump from `path` (at most 1 MiB), as `env --cpuid` writes one:
    /// a user's bug report can be examined anywhere.
    pub fn load(path: &std::path::Path) -> Result<CpuidDump, crate::input_error::InputErrors> {
        use crate::input_error::{InputError, SourceText};
        let shown = path.display().to_string();
        let text = crate::input_file::read(path, crate::input_file::YAML_LIMIT)
            .map_err(|e| InputError::whole_file(&shown, format!("cannot read this CPUID dump: {e}")))?;
        let source = SourceText::new(shown, text);
        match source.parse_yaml::<DumpFile>() {
            Ok(DumpFile::Leaves(dump) | DumpFile::Recorded { leaves: dump }) => Ok(dump),
            // The untagged form says only that neither shape matched; the list's own error says where.
            Err(neither) => Err(match source.parse_yaml::<CpuidDump>() {
                Err(as_a_list) => as_a_list.into(),
                Ok(_) => neither.into(),
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    Intel,
    Amd,
    Hygon,
    Other,
}

impl Vendor {
    pub fn name(&self) -> &'static str {
        match self {
            Vendor::Intel => "intel",
            Vendor::Amd => "amd",
            Vendor::Hygon => "hygon",
            Vendor::Other => "other",
        }
    }
}

/// The CPU's identity as the event table keys it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuIdentity {
    pub vendor: Vendor,
    /// The 12-character vendor string, e.g. `GenuineIntel`.
    pub vendor_string: String,
    /// Display family: the base family plus the extended family where the base is 0xF.
    #[serde(serialize_with = "hex", deserialize_with = "from_hex")]
    pub family: u32,
    /// Display model: with the extended model where the vendor's rule says so.
    #[serde(serialize_with = "hex", deserialize_with = "from_hex")]
    pub model: u32,
    pub stepping: u32,
    /// CPUID.1:EAX, the raw signature.
    #[serde(serialize_with = "hex", deserialize_with = "from_hex")]
    pub signature: u32,
    pub brand: Option<String>,
}

/// CPUID values read best in hex, as the vendors' documents write them.
fn hex<S: serde::Serializer>(value: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:#x}"))
}

/// `"0x6"` back to 6.
fn from_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let text = String::deserialize(d)?;
    text.strip_prefix("0x")
        .and_then(|digits| u32::from_str_radix(digits, 16).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a hex number such as 0x6")))
}

impl CpuIdentity {
    pub fn read(cpuid: &CpuidReader) -> CpuIdentity {
        let [_, b, c, d] = cpuid.leaf(0, 0);
        let vendor_string: String = [b, d, c]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .map(|byte| if byte.is_ascii_graphic() { byte as char } else { ' ' })
            .collect();
        let vendor = match vendor_string.as_str() {
            "GenuineIntel" => Vendor::Intel,
            "AuthenticAMD" => Vendor::Amd,
            "HygonGenuine" => Vendor::Hygon,
            _ => Vendor::Other,
        };
        let signature = cpuid.leaf(1, 0)[0];
        let base_family = (signature >> 8) & 0xf;
        let family = if base_family == 0xf {
            base_family + ((signature >> 20) & 0xff)
        } else {
            base_family
        };
        let base_model = (signature >> 4) & 0xf;
        // Intel folds in the extended model for families 6 and 15; AMD only for 15.
        let extended = match vendor {
            Vendor::Intel => base_family == 0x6 || base_family == 0xf,
            _ => base_family == 0xf,
        };
        let model = if extended {
            ((signature >> 16) & 0xf) << 4 | base_model
        } else {
            base_model
        };
        let brand = raw_cpuid::CpuId::with_cpuid_reader(cpuid.clone())
            .get_processor_brand_string()
            .map(|b| b.as_str().trim().to_owned())
            .filter(|b| !b.is_empty());
        CpuIdentity {
            vendor,
            vendor_string,
            family,
            model,
            stepping: signature & 0xf,
            signature,
            brand,
        }
    }
}

impl fmt::Display for CpuIdentity {
    /// The form unsupported reasons quote: `GenuineIntel family 0x6 model 0xaf (CPUID.1:EAX 0x000a06f1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} family {:#x} model {:#x} (CPUID.1:EAX {:#010x})",
            self.vendor_string, self.family, self.model, self.signature
        )
    }
}

/// The CPU features PMU events depend on, beyond CPUID.0AH.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFeatures {
    /// Intel TSX: CPUID.7.0:EBX HLE (bit 4) or RTM (bit 11). Without it the
    /// IN_TX and IN_TXCP event-select bits mean nothing, and Linux drops them
    /// silently (arch/x86/events/intel/core.c, `hsw_hw_config`).
    pub tsx: bool,
}

impl CpuFeatures {
    pub fn read(cpuid: &CpuidReader) -> CpuFeatures {
        // A leaf above the maximum reads as the highest basic leaf on Intel.
        if cpuid.leaf(0, 0)[0] < 7 {
            return CpuFeatures::default();
        }
        let ebx = cpuid.leaf(7, 0)[1];
        CpuFeatures {
            tsx: ebx & (1 << 4 | 1 << 11) != 0,
        }
    }
}

/// CPUID leaf 0xA: the architectural PMU as the CPU (or hypervisor) describes it.
/// AMD leaves 0xA reserved, so there it reads as version 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchitecturalPmu {
    pub version: u8,
    pub gp_counters: u8,
    pub gp_width: u8,
    /// Length of the EBX vector: how many architectural events it describes.
    pub events_described: u8,
    /// EBX: bit i set means architectural event i is *not* available.
    pub unavailable_events: u32,
    pub fixed_counters: u8,
    pub fixed_width: u8,
}

impl ArchitecturalPmu {
    pub fn read(cpuid: &CpuidReader) -> ArchitecturalPmu {
        if cpuid.leaf(0, 0)[0] < 0xa {
            return ArchitecturalPmu::default();
        }
        let leaf = pmu_kernel_checks::pmu::Leaf0a::decode(cpuid.leaf(0xa, 0));
        ArchitecturalPmu {
            version: leaf.version,
            gp_counters: leaf.gp,
            gp_width: leaf.width,
            events_described: leaf.events_described,
            unavailable_events: leaf.unavailable_events,
            fixed_counters: leaf.fixed,
            fixed_width: leaf.fixed_width,
        }
    }

    /// Whether architectural event `bit` is advertised: the version is non-zero,
    /// EBX's vector is long enough to describe it, and its bit is clear.
    pub fn has_event(&self, bit: u8) -> bool {
        self.version > 0 && bit < self.events_described && self.unavailable_events & (1 << bit) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_signature(vendor: &str, eax: u32) -> CpuidReader {
        let v = vendor.as_bytes();
        let word = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        let mut dump = CpuidDump::default();
        dump.leaves.insert((0, 0), [0x16, word(0), word(8), word(4)]);
        dump.leaves.insert((1, 0), [eax, 0, 0, 0]);
        CpuidReader::replay(dump)
    }

    #[test]
    fn intel_models_fold_in_the_extended_model() {
        // Skylake client: family 6, model 0x5e, stepping 3.
        let cpu = CpuIdentity::read(&with_signature("GenuineIntel", 0x000506e3));
        assert_eq!(
            (cpu.vendor.clone(), cpu.family, cpu.model, cpu.stepping),
            (Vendor::Intel, 6, 0x5e, 3)
        );
    }

    #[test]
    fn amd_families_add_the_extended_family() {
        // Zen 3 (Milan): family 0x19, model 0x01.
        let cpu = CpuIdentity::read(&with_signature("AuthenticAMD", 0x00a00f11));
        assert_eq!((cpu.vendor.clone(), cpu.family, cpu.model), (Vendor::Amd, 0x19, 0x01));
        // Turin: family 0x1a model 0x02, which rr mistakes for family 15h.
        let turin = CpuIdentity::read(&with_signature("AuthenticAMD", 0x00b00f21));
        assert_eq!((turin.family, turin.model), (0x1a, 0x02));
        assert_eq!(
            turin.to_string(),
            "AuthenticAMD family 0x1a model 0x2 (CPUID.1:EAX 0x00b00f21)"
        );
    }

    #[test]
    fn dumps_round_trip_through_yaml() {
        let mut dump = CpuidDump::default();
        dump.leaves.insert((0xa, 0), [0x07300404, 0, 0, 0x603]);
        let text = serde_saphyr::to_string(&dump).unwrap();
        let back: CpuidDump = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, dump);
    }
}
