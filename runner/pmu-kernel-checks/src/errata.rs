//! Published errata that make a correct system miscount a check's window,
//! so the checks relax rather than raise a false alarm, and say why.
//!
//! One list, used by the probe kernel's checks and the host's alike (the
//! runner's event resolution reads it too), so a model is never relaxed in
//! one place and judged exactly in another.

use crate::pmu::ArchEvent;

/// An erratum, and the Intel family-6 parts it affects.
#[derive(Debug, PartialEq, Eq)]
pub struct Erratum {
    pub id: &'static str,
    pub about: &'static str,
    /// In known-bugs.yaml's source forms.
    pub source: &'static str,
    pub parts: &'static [Part],
}

/// One affected model, and which events it overcounts.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub model: u32,
    pub name: &'static str,
    pub instructions: bool,
    pub branches: bool,
}

/// Intel Atom erratum SRF7: retired instructions and branches overcount on
/// VM entry and exit, far transfers and IRET. kvm-unit-tests detects it for
/// these models and relaxes its exact checks to "at least".
pub const SRF7: Erratum = Erratum {
    id: "SRF7",
    about: "Intel Atom erratum SRF7: retired instructions and branches overcount on VM entry and exit, \
            far transfers and IRET",
    source: "kvm-unit-tests/kvm-unit-tests@1da1819e:lib/x86/pmu.c:5-37",
    parts: &[
        Part {
            model: 0xaf,
            name: "Sierra Forest",
            instructions: true,
            branches: true,
        },
        Part {
            model: 0x4d,
            name: "Avoton",
            instructions: true,
            branches: true,
        },
        Part {
            model: 0x5f,
            name: "Denverton",
            instructions: true,
            branches: true,
        },
        Part {
            model: 0x86,
            name: "Jacobsville",
            instructions: true,
            branches: true,
        },
        Part {
            model: 0xdd,
            name: "Clearwater Forest",
            instructions: true,
            branches: false,
        },
    ],
};

/// Every erratum the checks know.
pub const ALL: [&Erratum; 1] = [&SRF7];

/// The display family and model of CPUID.1:EAX `signature` (SDM Vol. 2A, CPUID).
pub fn family_model(signature: u32) -> (u32, u32) {
    let base_family = (signature >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((signature >> 20) & 0xff)
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        ((signature >> 4) & 0xf) | (((signature >> 16) & 0xf) << 4)
    } else {
        (signature >> 4) & 0xf
    };
    (family, model)
}

/// The erratum that makes `event` overcount on an Intel CPU of this
/// family and model, if one does.
pub fn affecting(intel: bool, family: u32, model: u32, event: ArchEvent) -> Option<&'static Erratum> {
    if !intel || family != 6 {
        return None;
    }
    ALL.into_iter().find(|e| {
        e.parts.iter().any(|p| {
            p.model == model
                && match event {
                    ArchEvent::Instructions => p.instructions,
                    ArchEvent::Branches => p.branches,
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srf7_names_kvm_unit_tests_parts() {
        // Sierra Forest, CPUID.1:EAX 0x000a06f1: family 6, model 0xaf.
        assert_eq!(family_model(0x000a_06f1), (6, 0xaf));
        assert_eq!(affecting(true, 6, 0xaf, ArchEvent::Branches), Some(&SRF7));
        // Clearwater Forest: instructions only.
        assert_eq!(affecting(true, 6, 0xdd, ArchEvent::Instructions), Some(&SRF7));
        assert_eq!(affecting(true, 6, 0xdd, ArchEvent::Branches), None);
        // Skylake, and AMD, are not affected.
        assert_eq!(affecting(true, 6, 0x5e, ArchEvent::Instructions), None);
        assert_eq!(affecting(false, 6, 0xaf, ArchEvent::Instructions), None);
        assert_eq!(family_model(0x00a0_0f11), (0x19, 0x01));
    }
}
