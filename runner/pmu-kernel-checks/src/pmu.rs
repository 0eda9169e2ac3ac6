//! The PMU as CPUID describes it, and the MSRs that drive it.
//!
//! Sources: Intel SDM Vol. 3B ch. 20 (21 in older editions) and Vol. 4;
//! AMD APM Vol. 2 §13.2; `kvm-unit-tests:lib/x86/pmu.c`.

use alloc::format;

use crate::hardware::{Fault, Hardware};
use crate::reason::{Reason, ReasonCode};

/// Intel MSRs.
pub mod intel {
    pub const PMC0: u32 = 0xc1;
    /// Full-width counter aliases, present iff PERF_CAPABILITIES[13].
    pub const A_PMC0: u32 = 0x4c1;
    pub const PERFEVTSEL0: u32 = 0x186;
    pub const FIXED_CTR0: u32 = 0x309;
    pub const FIXED_CTR_CTRL: u32 = 0x38d;
    pub const PERF_GLOBAL_STATUS: u32 = 0x38e;
    pub const PERF_GLOBAL_CTRL: u32 = 0x38f;
    pub const PERF_GLOBAL_OVF_CTRL: u32 = 0x390;
    /// Version 4 and later.
    pub const PERF_GLOBAL_STATUS_SET: u32 = 0x391;
    pub const PERF_CAPABILITIES: u32 = 0x345;
    pub const DEBUGCTL: u32 = 0x1d9;
    pub const DEBUGCTL_FREEZE_PERFMON_ON_PMI: u64 = 1 << 12;
    /// GLOBAL_STATUS bit 59 (v4): counters frozen by a PMI.
    pub const STATUS_CTR_FRZ: u64 = 1 << 59;
}

/// AMD MSRs.
pub mod amd {
    /// The four legacy (K7) counters.
    pub const PERFEVTSEL0_LEGACY: u32 = 0xc001_0000;
    pub const PERFCTR0_LEGACY: u32 = 0xc001_0004;
    /// The six core counters (PerfCtrExtCore), interleaved: CTL at +2i, CTR at +2i+1.
    pub const PERF_CTL0: u32 = 0xc001_0200;
    pub const PERF_CTR0: u32 = 0xc001_0201;
    /// PerfMonV2.
    pub const GLOBAL_STATUS: u32 = 0xc000_0300;
    pub const GLOBAL_CTL: u32 = 0xc000_0301;
    pub const GLOBAL_STATUS_CLR: u32 = 0xc000_0302;
    pub const GLOBAL_STATUS_SET: u32 = 0xc000_0303;
}

/// Event select bits common to Intel and AMD.
pub mod evtsel {
    pub const USR: u64 = 1 << 16;
    pub const OS: u64 = 1 << 17;
    pub const INT: u64 = 1 << 20;
    pub const EN: u64 = 1 << 22;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Other,
}

/// Which counter a check uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Gp(u8),
    Fixed(u8),
}

/// The architectural events the kernel checks count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchEvent {
    Instructions,
    Branches,
}

/// The global control and status MSRs (Intel v2+, AMD PerfMonV2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globals {
    pub status: u32,
    pub ctrl: u32,
    /// Write 1s to clear STATUS bits (Intel GLOBAL_OVF_CTRL, AMD GlobalStatusClr).
    pub status_clear: u32,
    /// Write 1s to set STATUS bits (Intel v4+, AMD PerfMonV2).
    pub status_set: Option<u32>,
}

/// CPUID leaf 0xA, decoded as the SDM lays it out (Vol. 3B 18.2.2). The
/// probe kernel and the host's fingerprint both read it through this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leaf0a {
    pub version: u8,
    pub gp: u8,
    pub width: u8,
    /// Length of the EBX vector: how many architectural events it describes.
    pub events_described: u8,
    /// EBX: bit i set means architectural event i is *not* available.
    pub unavailable_events: u32,
    pub fixed: u8,
    pub fixed_width: u8,
}

impl Leaf0a {
    pub fn decode([a, b, _, d]: [u32; 4]) -> Leaf0a {
        let version = (a & 0xff) as u8;
        Leaf0a {
            version,
            gp: (a >> 8 & 0xff) as u8,
            width: (a >> 16 & 0xff) as u8,
            events_described: (a >> 24) as u8,
            unavailable_events: b,
            // EDX describes fixed counters only from version 2.
            fixed: if version > 1 { (d & 0x1f) as u8 } else { 0 },
            fixed_width: if version > 1 { (d >> 5 & 0xff) as u8 } else { 0 },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pmu {
    pub vendor: Vendor,
    /// CPUID.1:EAX, for errata that name CPU models ([`crate::errata`]).
    pub signature: u32,
    /// The hypervisor CPUID names ("bare", "kvm", "xen", …), for the
    /// reasons a vPMU is refused ([`crate::refusal`]).
    pub hypervisor: &'static str,
    /// Intel: CPUID.0AH's version (0: no architectural PMU). AMD: 2 with
    /// PerfMonV2, else 1 where core counters exist.
    pub version: u8,
    pub gp: u8,
    pub width: u8,
    pub fixed: u8,
    pub fixed_width: u8,
    pub globals: Option<Globals>,
    /// Counters take full-width writes (Intel PERF_CAPABILITIES[13]; all of AMD's).
    pub full_width_writes: bool,
    /// Intel CPUID.0AH EBX: bit i set = architectural event i unavailable.
    unavailable_events: u32,
    events_described: u8,
    amd_extended_counters: bool,
}

impl Pmu {
    /// Reads CPUID (and PERF_CAPABILITIES where PDCM says it exists).
    pub fn detect(hw: &mut dyn Hardware) -> Pmu {
        let [max_leaf, b, c, d] = hw.cpuid(0, 0);
        let vendor = match (b, d, c) {
            (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => Vendor::Intel,
            (0x6874_7541, 0x6974_6e65, 0x444d_4163) => Vendor::Amd,
            _ => Vendor::Other,
        };
        let none = Pmu {
            vendor,
            signature: if max_leaf >= 1 { hw.cpuid(1, 0)[0] } else { 0 },
            hypervisor: crate::hypervisor::identify(|leaf, sub| hw.cpuid(leaf, sub)).name,
            version: 0,
            gp: 0,
            width: 0,
            fixed: 0,
            fixed_width: 0,
            globals: None,
            full_width_writes: false,
            unavailable_events: 0,
            events_described: 0,
            amd_extended_counters: false,
        };
        match vendor {
            Vendor::Intel if max_leaf >= 0xa => {
                let leaf = Leaf0a::decode(hw.cpuid(0xa, 0));
                let version = leaf.version;
                let pdcm = hw.cpuid(1, 0)[2] & (1 << 15) != 0;
                let full_width_writes = pdcm
                    && hw
                        .rdmsr(intel::PERF_CAPABILITIES)
                        .is_ok_and(|caps| caps & (1 << 13) != 0);
                Pmu {
                    version,
                    gp: leaf.gp,
                    width: leaf.width,
                    events_described: leaf.events_described,
                    unavailable_events: leaf.unavailable_events,
                    fixed: leaf.fixed,
                    fixed_width: leaf.fixed_width,
                    globals: (version > 1).then_some(Globals {
                        status: intel::PERF_GLOBAL_STATUS,
                        ctrl: intel::PERF_GLOBAL_CTRL,
                        status_clear: intel::PERF_GLOBAL_OVF_CTRL,
                        status_set: (version > 3).then_some(intel::PERF_GLOBAL_STATUS_SET),
                    }),
                    full_width_writes,
                    ..none
                }
            }
            Vendor::Amd => {
                let max_extended = hw.cpuid(0x8000_0000, 0)[0];
                let extended = max_extended >= 0x8000_0001 && hw.cpuid(0x8000_0001, 0)[2] & (1 << 23) != 0;
                let v2 = max_extended >= 0x8000_0022 && hw.cpuid(0x8000_0022, 0)[0] & 1 != 0;
                let gp = if v2 {
                    (hw.cpuid(0x8000_0022, 0)[1] & 0xf) as u8
                } else if extended {
                    6
                } else {
                    4
                };
                Pmu {
                    version: if v2 { 2 } else { 1 },
                    gp,
                    width: 48,
                    globals: v2.then_some(Globals {
                        status: amd::GLOBAL_STATUS,
                        ctrl: amd::GLOBAL_CTL,
                        status_clear: amd::GLOBAL_STATUS_CLR,
                        status_set: Some(amd::GLOBAL_STATUS_SET),
                    }),
                    full_width_writes: true,
                    amd_extended_counters: extended,
                    ..none
                }
            }
            _ => none,
        }
    }

    /// Why this PMU cannot run kernel checks at all, if it cannot.
    pub fn missing(&self) -> Option<Reason> {
        let (family, model) = crate::errata::family_model(self.signature);
        let refused = |seen: &str| crate::refusal::no_pmu(seen, self.hypervisor, true, family, model);
        match self.vendor {
            Vendor::Other => Some(Reason::new(ReasonCode::NoPmu, "the CPU is neither Intel nor AMD")),
            Vendor::Intel if self.version == 0 => Some(refused("CPUID.0AH: PMU version 0 (no architectural PMU)")),
            Vendor::Intel if self.gp == 0 => Some(refused("CPUID.0AH: no general-purpose counters")),
            _ => None,
        }
    }

    pub fn has(&self, counter: Counter) -> bool {
        match counter {
            Counter::Gp(i) => i < self.gp,
            Counter::Fixed(i) => i < self.fixed,
        }
    }

    /// The event select MSR of GP counter `i` (whether or not it exists).
    pub fn evtsel(&self, i: u8) -> u32 {
        match (self.vendor, self.amd_extended_counters) {
            (Vendor::Amd, true) => amd::PERF_CTL0 + 2 * u32::from(i),
            (Vendor::Amd, false) => amd::PERFEVTSEL0_LEGACY + u32::from(i),
            _ => intel::PERFEVTSEL0 + u32::from(i),
        }
    }

    /// The MSR through which a counter is read and written.
    pub fn counter_msr(&self, counter: Counter) -> u32 {
        match (counter, self.vendor, self.amd_extended_counters) {
            (Counter::Fixed(i), _, _) => intel::FIXED_CTR0 + u32::from(i),
            (Counter::Gp(i), Vendor::Amd, true) => amd::PERF_CTR0 + 2 * u32::from(i),
            (Counter::Gp(i), Vendor::Amd, false) => amd::PERFCTR0_LEGACY + u32::from(i),
            (Counter::Gp(i), _, _) if self.full_width_writes => intel::A_PMC0 + u32::from(i),
            (Counter::Gp(i), _, _) => intel::PMC0 + u32::from(i),
        }
    }

    pub fn counter_width(&self, counter: Counter) -> u8 {
        match counter {
            Counter::Gp(_) => self.width,
            Counter::Fixed(_) => self.fixed_width,
        }
    }

    /// The value to write so the counter overflows after `events` more
    /// events: 2^W − events. Through Intel's legacy alias only the low 32
    /// bits are written and bit 31 is sign-extended, which gives the same
    /// value for any `events` below 2^31.
    pub fn preset(&self, counter: Counter, events: u64) -> u64 {
        let width = self.counter_width(counter);
        let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        events.wrapping_neg() & mask
    }

    /// This counter's bit in GLOBAL_STATUS and GLOBAL_CTRL.
    pub fn bit(&self, counter: Counter) -> u64 {
        match counter {
            Counter::Gp(i) => 1 << i,
            Counter::Fixed(i) => 1 << (32 + u32::from(i)),
        }
    }

    /// The event select encoding (event | umask) of an architectural event,
    /// or why this CPU does not count it.
    pub fn encoding(&self, event: ArchEvent) -> Result<u64, Reason> {
        let (intel_bit, intel, amd) = match event {
            ArchEvent::Instructions => (1, 0x00c0, 0xc0),
            ArchEvent::Branches => (5, 0x00c4, 0xc2),
        };
        match self.vendor {
            Vendor::Amd => Ok(amd),
            Vendor::Intel if intel_bit < self.events_described && self.unavailable_events & (1 << intel_bit) == 0 => {
                Ok(intel)
            }
            Vendor::Intel => Err(Reason::new(
                ReasonCode::EventNotAdvertised,
                format!(
                    "CPUID.0AH does not advertise {} (architectural event {intel_bit}; EBX length {}, EBX {:#x})",
                    crate::plan::event_name(event),
                    self.events_described,
                    self.unavailable_events
                ),
            )),
            Vendor::Other => Err(Reason::new(ReasonCode::NoEncoding, "not an Intel or AMD CPU")),
        }
    }

    /// Programs GP counter `i` to count `encoding` in kernel mode (the checks
    /// run at CPL0), with INT as asked, and sets its value. It does not start
    /// counting: [`Pmu::start_stop`] gives the window's bracket.
    pub fn program(
        &self,
        hw: &mut dyn Hardware,
        counter: Counter,
        encoding: u64,
        int: bool,
        value: u64,
    ) -> Result<(), Fault> {
        self.stop_all(hw)?;
        match counter {
            Counter::Gp(i) => {
                let int_bit = if int { evtsel::INT } else { 0 };
                // Without global controls, EN in the event select is the bracket itself.
                let en = if self.globals.is_some() { evtsel::EN } else { 0 };
                hw.wrmsr(self.evtsel(i), encoding | evtsel::OS | int_bit | en)?;
            }
            Counter::Fixed(i) => {
                // One nibble per fixed counter: bit 0 OS, bit 3 PMI.
                let nibble: u64 = 0b0001 | if int { 0b1000 } else { 0 };
                hw.wrmsr(intel::FIXED_CTR_CTRL, nibble << (4 * u32::from(i)))?;
            }
        }
        hw.wrmsr(self.counter_msr(counter), value)
    }

    /// The window's bracket for `counter`: (msr, value that starts, value that stops).
    pub fn start_stop(&self, hw: &mut dyn Hardware, counter: Counter) -> Result<(u32, u64, u64), Fault> {
        match (self.globals, counter) {
            (Some(g), _) => Ok((g.ctrl, self.bit(counter), 0)),
            (None, Counter::Gp(i)) => {
                let selected = hw.rdmsr(self.evtsel(i))?;
                Ok((self.evtsel(i), selected | evtsel::EN, selected & !evtsel::EN))
            }
            (None, Counter::Fixed(_)) => Err(Fault::GP),
        }
    }

    /// Stops every counter and clears every event select.
    pub fn stop_all(&self, hw: &mut dyn Hardware) -> Result<(), Fault> {
        if let Some(g) = self.globals {
            hw.wrmsr(g.ctrl, 0)?;
        }
        for i in 0..self.gp {
            hw.wrmsr(self.evtsel(i), 0)?;
        }
        if self.fixed > 0 {
            hw.wrmsr(intel::FIXED_CTR_CTRL, 0)?;
        }
        Ok(())
    }
}
