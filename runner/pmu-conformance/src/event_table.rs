//! The event table (`events.yaml`): abstract events, the microarchitectures
//! they are encoded for, and the resolution of an event for one CPU.
//!
//! Resolution is pure data lookup. An [`EventTable`] is loaded and validated
//! once; [`EventTable::resolve`] then turns an event name and a
//! [`CpuIdentity`] into a [`ResolvedEvent`], or into the reason it cannot be
//! counted here, which becomes an `unsupported` verdict.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::cpu::{ArchitecturalPmu, CpuFeatures, CpuIdentity, Vendor};
use crate::input_error::{InputErrors, SourceText};
use crate::outcome::{Reason, ReasonCode};
use crate::workload::Quantity;

/// The table compiled into the binary.
pub const BUILTIN_PATH: &str = "runner/pmu-conformance/events.yaml";
pub const BUILTIN_TEXT: &str = include_str!("../events.yaml");

#[derive(Clone, Debug)]
pub struct EventTable {
    pub microarchitectures: Vec<Microarchitecture>,
    pub events: BTreeMap<String, EventDef>,
}

#[derive(Clone, Debug)]
pub struct Microarchitecture {
    pub name: String,
    pub vendor: Vendor,
    pub family: u32,
    /// `None` matches every model of the family.
    pub models: Option<Vec<u32>>,
    pub skid: u64,
    /// rr marks the CPU PMU_SKID_UNBOUNDED: its skid budget is not a bound.
    pub skid_unbounded: bool,
    /// Where this entry comes from, if not rr's table (the file's header).
    pub source: Option<String>,
    /// What of this entry no source bears out.
    pub unverified: Option<String>,
    /// A hybrid part's other core types: the Linux PMU that drives them
    /// (`cpu_atom`, `cpu_lowpower`) and the microarchitecture they are. The
    /// entry itself is the P-cores' (`cpu_core`).
    pub core_types: BTreeMap<String, String>,
}

/// The PMU name Linux gives a uniform machine's cores, and a hybrid part's P-cores.
pub const MAIN_CORES: [&str; 2] = ["cpu", "cpu_core"];

impl Microarchitecture {
    fn matches(&self, cpu: &CpuIdentity) -> bool {
        self.vendor == cpu.vendor
            && self.family == cpu.family
            && self.models.as_ref().is_none_or(|m| m.contains(&cpu.model))
    }
}

#[derive(Clone, Debug)]
pub struct EventDef {
    pub name: String,
    pub about: String,
    /// The workload quantity this event counts, if it counts one.
    pub counts: Option<Quantity>,
    pub exactness: Exactness,
    pub source: EventSource,
    pub rearm: Rearm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exactness {
    Exact,
    /// Not exact, and why: cases on it must state a tolerance.
    Inexact(String),
}

#[derive(Clone, Debug)]
pub enum EventSource {
    /// A PMU event, encoded per microarchitecture or vendor.
    Hardware(Vec<HardwareEncoding>),
    /// An event Linux provides without a PMU; `skid` is its notification
    /// budget, which timers (relative re-arm) do not have.
    Software { event: SoftwareEvent, skid: Option<u64> },
}

#[derive(Clone, Debug)]
pub struct HardwareEncoding {
    /// Microarchitecture names, or the vendor names `intel` and `amd`.
    pub on: Vec<String>,
    pub form: EncodingForm,
}

#[derive(Clone, Debug)]
pub enum EncodingForm {
    /// A raw PERF_TYPE_RAW config; `architectural` is the Intel CPUID.0AH EBX
    /// bit that must advertise it; `requires_tsx` that it sets IN_TX or
    /// IN_TXCP, which mean something only where CPUID reports TSX.
    Raw {
        config: u64,
        architectural: Option<u8>,
        requires_tsx: bool,
    },
    /// This CPU has no such event, and why.
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SoftwareEvent {
    /// PERF_TYPE_BREAKPOINT, HW_BREAKPOINT_X on the workload's marker.
    BreakpointExecute,
    /// PERF_COUNT_SW_PAGE_FAULTS.
    PageFaults,
    /// PERF_COUNT_SW_TASK_CLOCK.
    TaskClock,
}

impl SoftwareEvent {
    const ALL: [SoftwareEvent; 3] = [
        SoftwareEvent::BreakpointExecute,
        SoftwareEvent::PageFaults,
        SoftwareEvent::TaskClock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SoftwareEvent::BreakpointExecute => "breakpoint-execute",
            SoftwareEvent::PageFaults => "page-faults",
            SoftwareEvent::TaskClock => "task-clock",
        }
    }
}

/// Where the next overflow boundary lies after a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rearm {
    /// At the next multiple of the period: counters keep the events past the
    /// boundary (Linux's `period_left`).
    Absolute,
    /// One period after the notification was raised: timer-driven events.
    Relative,
}

/// An event as it will be opened on this CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedEvent {
    /// The abstract name, or `raw 0x…` for a raw config.
    pub name: String,
    pub encoding: Encoding,
    pub counts: Option<Quantity>,
    pub exactness: Exactness,
    /// The notification budget on this CPU, if one is known.
    pub skid: Option<u64>,
    /// The budget is rr's, but rr treats this CPU's skid as unbounded
    /// (PMU_SKID_UNBOUNDED): lateness is reported, not judged.
    pub skid_unbounded: bool,
    pub rearm: Rearm,
    /// A published erratum by which this CPU overcounts the event, so exact
    /// checks relax to "at least" ([`pmu_kernel_checks::errata`]).
    pub erratum: Option<&'static pmu_kernel_checks::errata::Erratum>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Raw(u64),
    Software(SoftwareEvent),
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::Raw(config) => write!(f, "raw {config:#x}"),
            Encoding::Software(event) => f.write_str(event.name()),
        }
    }
}

impl EventTable {
    /// The table compiled into the binary. It is checked by this crate's tests,
    /// so failing to load it is a bug, not an input error.
    pub fn builtin() -> EventTable {
        EventTable::load(&SourceText::new(BUILTIN_PATH, BUILTIN_TEXT))
            .unwrap_or_else(|errors| panic!("the built-in event table is invalid:\n{errors}"))
    }

    pub fn load(source: &SourceText) -> Result<EventTable, InputErrors> {
        let raw: RawTable = source.parse_yaml()?;
        let mut errors = InputErrors::default();
        let raw_core_types: Vec<(String, Spanned<String>)> = raw
            .microarchitectures
            .iter()
            .flat_map(|u| u.core_types.iter().map(|(p, n)| (p.clone(), n.clone())))
            .collect();

        let microarchitectures: Vec<Microarchitecture> = raw
            .microarchitectures
            .into_iter()
            .filter_map(|u| {
                let vendor = match u.vendor.value.as_str() {
                    "intel" => Vendor::Intel,
                    "amd" => Vendor::Amd,
                    "hygon" => Vendor::Hygon,
                    other => {
                        errors.push(
                            source.error_at(&u.vendor, format!("unknown vendor `{other}`; use intel, amd or hygon")),
                        );
                        return None;
                    }
                };
                if let Some(s) = &u.source
                    && let Err(why) = crate::known_bugs::check_source(&s.value)
                {
                    errors.push(source.error_at(s, why));
                }
                Some(Microarchitecture {
                    name: u.name,
                    vendor,
                    family: u.family,
                    models: u.models,
                    skid: u.skid,
                    skid_unbounded: u.skid_unbounded,
                    source: u.source.map(|s| s.value),
                    unverified: u.unverified,
                    core_types: u
                        .core_types
                        .into_iter()
                        .map(|(pmu, uarch)| (pmu, uarch.value))
                        .collect(),
                })
            })
            .collect();
        // A core type names a microarchitecture of this table.
        for (pmu, uarch) in raw_core_types {
            if !microarchitectures.iter().any(|u| u.name == uarch.value) {
                errors.push(source.error_at(
                    &uarch,
                    format!(
                        "core type `{pmu}` names no microarchitecture of this table: `{}`",
                        uarch.value
                    ),
                ));
            }
        }

        let mut events = BTreeMap::new();
        for e in raw.events {
            let name = e.name.value.clone();
            let counts = e.counts.as_ref().and_then(|c| {
                let q = Quantity::from_name(&c.value);
                if q.is_none() {
                    let known: Vec<_> = Quantity::ALL.iter().map(|q| q.name()).collect();
                    errors.push(source.error_at(
                        c,
                        format!("unknown quantity `{}`; known: {}", c.value, known.join(", ")),
                    ));
                }
                q
            });
            let exactness = match (e.exact, e.inexact) {
                (Some(true), None) => Exactness::Exact,
                (None, Some(reason)) => Exactness::Inexact(reason),
                _ => {
                    errors.push(source.error_at(&e.name, "state either `exact: true` or `inexact: <reason>`"));
                    Exactness::Exact
                }
            };
            let rearm = match e.rearm.as_ref().map(|r| r.value.as_str()) {
                None | Some("absolute") => Rearm::Absolute,
                Some("relative") => Rearm::Relative,
                Some(other) => {
                    let at = e.rearm.as_ref().expect("matched Some");
                    errors.push(source.error_at(at, format!("unknown rearm `{other}`; use absolute or relative")));
                    Rearm::Absolute
                }
            };
            let event_source = match (e.encodings, e.software, e.skid) {
                (Some(encodings), None, None) => {
                    let mut out = Vec::new();
                    for enc in encodings {
                        for target in &enc.on.value {
                            let known = ["intel", "amd", "hygon"].contains(&target.as_str())
                                || microarchitectures.iter().any(|u| &u.name == target);
                            if !known {
                                errors.push(source.error_at(&enc.on, format!("unknown microarchitecture `{target}`")));
                            }
                        }
                        if let Some(r) = &enc.requires
                            && r.value != "tsx"
                        {
                            errors.push(source.error_at(r, format!("unknown requirement `{}`; known: tsx", r.value)));
                        }
                        let form = match (enc.raw, enc.unsupported) {
                            (Some(config), None) => EncodingForm::Raw {
                                config,
                                architectural: enc.architectural,
                                requires_tsx: enc.requires.is_some(),
                            },
                            (None, Some(reason)) => EncodingForm::Unsupported(reason),
                            _ => {
                                errors.push(source.error_at(
                                    &enc.on,
                                    "an encoding has either `raw: <config>` or `unsupported: <reason>`",
                                ));
                                continue;
                            }
                        };
                        out.push(HardwareEncoding { on: enc.on.value, form });
                    }
                    EventSource::Hardware(out)
                }
                (None, Some(software), skid) => {
                    let Some(event) = SoftwareEvent::ALL.into_iter().find(|s| s.name() == software.value) else {
                        let known: Vec<_> = SoftwareEvent::ALL.iter().map(|s| s.name()).collect();
                        errors.push(source.error_at(
                            &software,
                            format!(
                                "unknown software event `{}`; known: {}",
                                software.value,
                                known.join(", ")
                            ),
                        ));
                        continue;
                    };
                    // Counters have a skid budget; timers fire when the host lets them.
                    match (rearm, skid) {
                        (Rearm::Absolute, None) => {
                            errors.push(source.error_at(&software, "a counting event needs its `skid` budget"))
                        }
                        (Rearm::Relative, Some(_)) => errors.push(source.error_at(
                            &software,
                            "a timer (rearm: relative) has no skid budget: when it fires is the host's scheduling",
                        )),
                        _ => {}
                    }
                    EventSource::Software { event, skid }
                }
                _ => {
                    errors.push(source.error_at(&e.name, "an event has either `encodings` or `software`"));
                    continue;
                }
            };
            let def = EventDef {
                name: name.clone(),
                about: e.about,
                counts,
                exactness,
                source: event_source,
                rearm,
            };
            if events.insert(name.clone(), def).is_some() {
                errors.push(source.error_at(&e.name, format!("event `{name}` is defined twice")));
            }
        }
        errors.or_ok(EventTable {
            microarchitectures,
            events,
        })
    }

    /// The microarchitecture this CPU is, if the table knows it.
    pub fn microarchitecture(&self, cpu: &CpuIdentity) -> Option<&Microarchitecture> {
        self.microarchitectures.iter().find(|u| u.matches(cpu))
    }

    /// The microarchitecture of this CPU's cores that Linux's PMU `core_type`
    /// drives (`cpu` or `cpu_core`: the CPU's own; `cpu_atom`: a hybrid
    /// part's E-cores, as its entry's `core_types` say), or why it is not known.
    pub fn core_microarchitecture(
        &self,
        cpu: &CpuIdentity,
        core_type: &str,
    ) -> Result<Option<&Microarchitecture>, Reason> {
        let uarch = self.microarchitecture(cpu);
        if MAIN_CORES.contains(&core_type) {
            return Ok(uarch);
        }
        let named = uarch.and_then(|u| u.core_types.get(core_type));
        match named.and_then(|n| self.microarchitectures.iter().find(|u| &u.name == n)) {
            Some(u) => Ok(Some(u)),
            None => Err(Reason::new(
                ReasonCode::NoEncoding,
                format!(
                    "the event table does not say which microarchitecture the `{core_type}` cores of {} are",
                    uarch.map_or_else(|| cpu.to_string(), |u| u.name.clone())
                ),
            )),
        }
    }

    /// The event `name` as this CPU encodes it, or why it cannot be counted here.
    pub fn resolve(
        &self,
        name: &str,
        cpu: &CpuIdentity,
        pmu: &ArchitecturalPmu,
        features: &CpuFeatures,
    ) -> Result<ResolvedEvent, Reason> {
        self.resolve_on_core(name, cpu, MAIN_CORES[0], pmu, features)
    }

    /// [`EventTable::resolve`] for the cores Linux's PMU `core_type` drives.
    pub fn resolve_on_core(
        &self,
        name: &str,
        cpu: &CpuIdentity,
        core_type: &str,
        pmu: &ArchitecturalPmu,
        features: &CpuFeatures,
    ) -> Result<ResolvedEvent, Reason> {
        let def = self
            .events
            .get(name)
            .ok_or_else(|| Reason::new(ReasonCode::Internal, format!("unknown event `{name}`")))?;
        let uarch = self.core_microarchitecture(cpu, core_type)?;
        let (encoding, skid) = match &def.source {
            EventSource::Software { event, skid } => (Encoding::Software(*event), *skid),
            EventSource::Hardware(encodings) => {
                let applies = |e: &&HardwareEncoding| {
                    e.on.iter()
                        .any(|t| Some(t.as_str()) == uarch.map(|u| u.name.as_str()) || t == cpu.vendor.name())
                };
                let encoding = encodings.iter().find(applies).ok_or_else(|| {
                    let message = match uarch {
                        Some(u) => format!("the event table has no encoding of `{name}` for {}", u.name),
                        None => format!("the event table has no encoding of `{name}` for this CPU: {cpu}"),
                    };
                    Reason::new(ReasonCode::NoEncoding, message)
                })?;
                match &encoding.form {
                    EncodingForm::Unsupported(reason) => {
                        return Err(Reason::new(ReasonCode::NoEncoding, format!("`{name}`: {reason}")));
                    }
                    EncodingForm::Raw {
                        config,
                        architectural,
                        requires_tsx,
                    } => {
                        if *requires_tsx && !features.tsx {
                            return Err(Reason::new(
                                ReasonCode::NoTsx,
                                format!(
                                    "`{name}` needs Intel TSX, which CPUID.7.0:EBX does not report here (neither HLE \
                                 nor RTM): Linux would drop its IN_TX/IN_TXCP bit silently and count as if it \
                                 were not set, so the case would test nothing"
                                ),
                            ));
                        }
                        if let Some(bit) = architectural
                            && cpu.vendor == Vendor::Intel
                            && !pmu.has_event(*bit)
                        {
                            return Err(Reason::new(
                                ReasonCode::EventNotAdvertised,
                                format!(
                                    "`{name}` is architectural event {bit}, which CPUID.0AH does not advertise \
                                     (version {}, EBX length {}, EBX {:#x})",
                                    pmu.version, pmu.events_described, pmu.unavailable_events
                                ),
                            ));
                        }
                        (Encoding::Raw(*config), uarch.map(|u| u.skid))
                    }
                }
            }
        };
        let erratum = match def.counts {
            Some(Quantity::Instructions) => Some(pmu_kernel_checks::pmu::ArchEvent::Instructions),
            Some(Quantity::Branches) => Some(pmu_kernel_checks::pmu::ArchEvent::Branches),
            _ => None,
        }
        .and_then(|event| {
            pmu_kernel_checks::errata::affecting(cpu.vendor == Vendor::Intel, cpu.family, cpu.model, event)
        });
        Ok(ResolvedEvent {
            name: name.to_owned(),
            encoding,
            counts: def.counts,
            exactness: def.exactness.clone(),
            skid,
            skid_unbounded: matches!(def.source, EventSource::Hardware(_)) && uarch.is_some_and(|u| u.skid_unbounded),
            rearm: def.rearm,
            erratum,
        })
    }

    /// A raw config named directly by a case. Its skid budget is the CPU's, if known.
    pub fn resolve_raw(&self, config: u64, cpu: &CpuIdentity) -> ResolvedEvent {
        ResolvedEvent {
            name: format!("raw {config:#x}"),
            encoding: Encoding::Raw(config),
            counts: None,
            exactness: Exactness::Exact,
            skid: self.microarchitecture(cpu).map(|u| u.skid),
            skid_unbounded: self.microarchitecture(cpu).is_some_and(|u| u.skid_unbounded),
            rearm: Rearm::Absolute,
            erratum: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    microarchitectures: Vec<RawMicroarchitecture>,
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMicroarchitecture {
    name: String,
    vendor: Spanned<String>,
    family: u32,
    models: Option<Vec<u32>>,
    skid: u64,
    #[serde(default)]
    skid_unbounded: bool,
    source: Option<Spanned<String>>,
    unverified: Option<String>,
    #[serde(default)]
    core_types: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    name: Spanned<String>,
    about: String,
    counts: Option<Spanned<String>>,
    exact: Option<bool>,
    inexact: Option<String>,
    encodings: Option<Vec<RawEncoding>>,
    software: Option<Spanned<String>>,
    skid: Option<u64>,
    rearm: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncoding {
    on: Spanned<Vec<String>>,
    raw: Option<u64>,
    architectural: Option<u8>,
    /// `tsx`: the CPU must report Intel TSX (for IN_TX / IN_TXCP configs).
    requires: Option<Spanned<String>>,
    unsupported: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{CpuidDump, CpuidReader};

    /// A CPU with the given vendor string and CPUID.1:EAX, and leaf 0xA as given.
    fn cpu(vendor: &str, eax: u32, leaf_a: [u32; 4]) -> (CpuIdentity, ArchitecturalPmu) {
        let v = vendor.as_bytes();
        let word = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        let mut dump = CpuidDump::default();
        dump.leaves.insert((0, 0), [0x16, word(0), word(8), word(4)]);
        dump.leaves.insert((1, 0), [eax, 0, 0, 0]);
        dump.leaves.insert((0xa, 0), leaf_a);
        let reader = CpuidReader::replay(dump);
        (CpuIdentity::read(&reader), ArchitecturalPmu::read(&reader))
    }

    /// Leaf 0xA of a PMU v4 with 8 counters of 48 bits and all 7 events.
    const INTEL_V4: [u32; 4] = [0x07300804, 0, 0, 0x0603];

    fn rcb(eax: u32, vendor: &str) -> Result<ResolvedEvent, Reason> {
        let (c, p) = cpu(vendor, eax, INTEL_V4);
        EventTable::builtin().resolve("retired-conditional-branches", &c, &p, &CpuFeatures::default())
    }

    #[test]
    fn the_builtin_table_loads() {
        let table = EventTable::builtin();
        assert!(table.events.contains_key("retired-conditional-branches"));
    }

    #[test]
    fn a_hybrid_parts_core_types_resolve_each_to_their_own_microarchitecture() {
        let table = EventTable::builtin();
        let on = |eax, core: &str| {
            let (c, p) = cpu("GenuineIntel", eax, INTEL_V4);
            table
                .resolve_on_core("retired-conditional-branches", &c, core, &p, &CpuFeatures::default())
                .map(|e| (e.encoding, e.skid))
        };
        // Alder Lake: Golden Cove P-cores, Gracemont E-cores.
        assert_eq!(on(0x00090672, "cpu_core"), Ok((Encoding::Raw(0x5111c4), Some(125))));
        assert_eq!(on(0x00090672, "cpu_atom"), Ok((Encoding::Raw(0x517ec4), Some(100))));
        // Arrow Lake: Lion Cove, Skymont, and Crestmont low-power E-cores.
        assert_eq!(on(0x000c0662, "cpu_atom"), Ok((Encoding::Raw(0x517ec4), Some(100))));
        assert_eq!(on(0x000c0662, "cpu_lowpower"), Ok((Encoding::Raw(0x517ec4), Some(100))));
        // A core type the table does not know for this part is a reason, not a guess.
        let unknown = on(0x00090672, "cpu_lowpower").unwrap_err();
        assert_eq!(unknown.code, ReasonCode::NoEncoding);
        assert!(
            unknown.message.contains("`cpu_lowpower` cores of intel-alder-lake"),
            "{unknown}"
        );
        // A uniform part's own PMU is `cpu`; Skymont has no model of its own.
        assert_eq!(on(0x000506e3, "cpu"), Ok((Encoding::Raw(0x5101c4), Some(100))));
        assert!(table.microarchitectures.iter().any(|u| u.name == "intel-skymont"));
    }

    #[test]
    fn a_core_type_must_name_a_microarchitecture_of_the_table() {
        let text = "microarchitectures:\n  - {name: a, vendor: intel, family: 6, models: [1], skid: 1, core_types: {cpu_atom: nowhere}}\nevents: []\n";
        let errors = EventTable::load(&SourceText::new("e.yaml", text))
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("core type `cpu_atom` names no microarchitecture of this table: `nowhere`"),
            "{errors}"
        );
    }

    #[test]
    fn rcb_follows_rrs_table() {
        let raw = |eax, vendor| rcb(eax, vendor).map(|e| (e.encoding, e.skid));
        // Skylake 0x5e, Ice Lake 0x7e, Alder Lake 0x97, Arrow Lake 0xc6, Gracemont 0xbe.
        assert_eq!(
            raw(0x000506e3, "GenuineIntel"),
            Ok((Encoding::Raw(0x5101c4), Some(100)))
        );
        assert_eq!(
            raw(0x000706e5, "GenuineIntel"),
            Ok((Encoding::Raw(0x5111c4), Some(100)))
        );
        assert_eq!(
            raw(0x00090672, "GenuineIntel"),
            Ok((Encoding::Raw(0x5111c4), Some(125)))
        );
        assert_eq!(
            raw(0x000c0662, "GenuineIntel"),
            Ok((Encoding::Raw(0x100005111c4), Some(125)))
        );
        assert_eq!(
            raw(0x000b06e0, "GenuineIntel"),
            Ok((Encoding::Raw(0x517ec4), Some(100)))
        );
        // Zen 2 (17h), Zen 3 (19h), Zen 5 Turin (1Ah m02, which rr mistakes for 15h).
        for eax in [0x00830f10, 0x00a00f11, 0x00b00f21] {
            assert_eq!(
                raw(eax, "AuthenticAMD"),
                Ok((Encoding::Raw(0x5100d1), Some(10000))),
                "{eax:#x}"
            );
        }
    }

    #[test]
    fn cpus_without_the_event_are_unsupported_with_a_reason() {
        // Diamond Rapids (family 19 model 1) is not in the table: the reason quotes the signature.
        let err = rcb(0x00400f01, "GenuineIntel").unwrap_err();
        assert!(err.message.contains("(CPUID.1:EAX 0x00400f01)"), "{err}");
        // Penryn has no exact event at all.
        let err = rcb(0x00010676, "GenuineIntel").unwrap_err();
        assert!(
            err.message.contains("no exact retired-conditional-branch event"),
            "{err}"
        );
        // Piledriver (15h m02).
        let err = rcb(0x00600f20, "AuthenticAMD").unwrap_err();
        assert!(err.message.contains("far transfers"), "{err}");
    }

    #[test]
    fn architectural_events_need_cpuid_to_advertise_them() {
        let table = EventTable::builtin();
        let (c, p) = cpu("GenuineIntel", 0x000506e3, INTEL_V4);
        assert_eq!(
            table
                .resolve("instructions", &c, &p, &CpuFeatures::default())
                .unwrap()
                .encoding,
            Encoding::Raw(0x5100c0)
        );
        // Version 0: a guest without a vPMU.
        let (c, p) = cpu("GenuineIntel", 0x000506e3, [0; 4]);
        let err = table
            .resolve("instructions", &c, &p, &CpuFeatures::default())
            .unwrap_err();
        assert!(err.message.contains("CPUID.0AH does not advertise (version 0"), "{err}");
        // EBX bit 5 set: branches unavailable (as Xen's `ipc` vPMU mode shows it).
        let (c, p) = cpu("GenuineIntel", 0x000506e3, [0x07300804, 1 << 5, 0, 0x603]);
        assert!(table.resolve("branches", &c, &p, &CpuFeatures::default()).is_err());
        assert!(table.resolve("instructions", &c, &p, &CpuFeatures::default()).is_ok());
        // AMD ignores leaf 0xA.
        let (c, p) = cpu("AuthenticAMD", 0x00a00f11, [0; 4]);
        assert_eq!(
            table
                .resolve("branches", &c, &p, &CpuFeatures::default())
                .unwrap()
                .encoding,
            Encoding::Raw(0x5100c2)
        );
    }

    #[test]
    fn software_events_resolve_on_any_cpu() {
        let (c, p) = cpu("SomeOtherCPU", 0x1, [0; 4]);
        let table = EventTable::builtin();
        let bp = table
            .resolve("breakpoint-marker", &c, &p, &CpuFeatures::default())
            .unwrap();
        assert_eq!(
            (bp.encoding, bp.skid, bp.counts),
            (
                Encoding::Software(SoftwareEvent::BreakpointExecute),
                Some(0),
                Some(Quantity::MarkerHits)
            )
        );
        let timer = table.resolve("task-clock", &c, &p, &CpuFeatures::default()).unwrap();
        assert_eq!((timer.rearm, timer.skid), (Rearm::Relative, None));
    }

    #[test]
    fn bad_tables_are_located_errors() {
        let text = "microarchitectures:\n  - {name: x, vendor: via, family: 6, skid: 1}\nevents:\n  - name: e\n    about: a\n    exact: true\n    software: teleport\n    skid: 0\n  - name: f\n    about: a\n    exact: true\n    software: page-faults\n";
        let errors = EventTable::load(&SourceText::new("t.yaml", text)).unwrap_err();
        let lines: Vec<_> = errors.0.iter().map(|e| (e.line, e.column, e.message.clone())).collect();
        assert_eq!(
            lines[0],
            (2, 23, "unknown vendor `via`; use intel, amd or hygon".into())
        );
        assert_eq!(lines[1].0, 7);
        assert!(lines[1].2.starts_with("unknown software event `teleport`"));
        assert_eq!(lines[2], (12, 15, "a counting event needs its `skid` budget".into()));
    }
}
