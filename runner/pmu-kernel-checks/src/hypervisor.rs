//! Which hypervisor the guest runs under, from CPUID's hypervisor leaves.
//!
//! CPUID.01H:ECX[31] says there is one; its signature is in EBX:ECX:EDX of
//! leaf 0x40000000, with the largest leaf of its range in EAX. A hypervisor
//! may expose more than one interface: Xen with Viridian enabled puts
//! "Microsoft Hv" at 0x40000000 and its own leaves at 0x40000100, so Xen is
//! looked for at every multiple of 0x100 up to 0x40010000, as Linux's
//! `hypervisor_cpuid_base` does. Without the hypervisor bit these leaves are
//! not defined (Intel returns the highest basic leaf's data), so they are
//! not read.
//!
//! Both sides read it: the probe kernel to say what it runs on, and the
//! checks to say which hypervisor refused a vPMU ([`crate::refusal`]).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypervisor {
    /// "bare", or the hypervisor's short name ("kvm", "tcg", "xen", …).
    pub name: &'static str,
    /// The base leaf of Xen's range, where Xen is found at all.
    pub xen_leaf: Option<u32>,
    /// The base leaf of KVM's range (kvmclock, the timing leaf).
    pub kvm_leaf: Option<u32>,
    /// The base leaf and the largest leaf of the first interface, where
    /// there is one (the VMware/KVM timing leaf 0x40000010 lives there).
    pub first: Option<(u32, u32)>,
}

const FIRST_LEAF: u32 = 0x4000_0000;
const LAST_LEAF: u32 = 0x4001_0000;
const STEP: u32 = 0x100;

const SIGNATURES: &[(&[u8; 12], &str)] = &[
    (b"XenVMMXenVMM", "xen"),
    (b"KVMKVMKVM\0\0\0", "kvm"),
    (b"TCGTCGTCGTCG", "tcg"),
    (b"Microsoft Hv", "hyper-v"),
    (b"VMwareVMware", "vmware"),
    (b"bhyve bhyve ", "bhyve"),
    (b"ACRNACRNACRN", "acrn"),
    (b" lrpepyh  vr", "parallels"),
];

fn signature(regs: [u32; 4]) -> [u8; 12] {
    let mut sig = [0; 12];
    sig[..4].copy_from_slice(&regs[1].to_le_bytes());
    sig[4..8].copy_from_slice(&regs[2].to_le_bytes());
    sig[8..].copy_from_slice(&regs[3].to_le_bytes());
    sig
}

/// Identifies the hypervisor through `cpuid(leaf, subleaf)`.
pub fn identify(mut cpuid: impl FnMut(u32, u32) -> [u32; 4]) -> Hypervisor {
    let mut found = Hypervisor {
        name: "bare",
        xen_leaf: None,
        kvm_leaf: None,
        first: None,
    };
    if cpuid(1, 0)[2] & (1 << 31) == 0 {
        return found;
    }
    found.name = "unknown-hypervisor";
    let mut leaf = FIRST_LEAF;
    while leaf <= LAST_LEAF {
        let regs = cpuid(leaf, 0);
        let sig = signature(regs);
        let known = SIGNATURES.iter().find(|(s, _)| **s == sig).map(|(_, name)| *name);
        // EAX is the largest leaf of the range, which starts here.
        let max = regs[0];
        if let Some(name) = known.filter(|_| (leaf..leaf + STEP).contains(&max)) {
            if found.first.is_none() {
                found.first = Some((leaf, max));
                found.name = name;
            }
            match name {
                "xen" => {
                    found.xen_leaf = Some(leaf);
                    found.name = "xen";
                }
                "kvm" => found.kvm_leaf = found.kvm_leaf.or(Some(leaf)),
                _ => {}
            }
        }
        leaf += STEP;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(max: u32, sig: &[u8; 12]) -> [u32; 4] {
        let word = |i: usize| u32::from_le_bytes(sig[i..i + 4].try_into().unwrap());
        [max, word(0), word(4), word(8)]
    }

    /// A CPUID with the hypervisor bit as given and these ranges.
    fn machine(hypervisor_bit: bool, ranges: &[(u32, u32, &'static [u8; 12])]) -> impl FnMut(u32, u32) -> [u32; 4] {
        let ranges = ranges.to_vec();
        move |leaf, _| {
            if leaf == 1 {
                return [0, 0, u32::from(hypervisor_bit) << 31, 0];
            }
            ranges
                .iter()
                .find(|(base, _, _)| *base == leaf)
                .map(|&(_, max, sig)| regs(max, sig))
                // Out-of-range leaves: what Intel does, the highest basic leaf's data.
                .unwrap_or([0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69])
        }
    }

    #[test]
    fn without_the_hypervisor_bit_it_is_bare_metal_and_no_leaf_is_trusted() {
        let hv = identify(machine(false, &[(FIRST_LEAF, 0x4000_0005, b"KVMKVMKVM\0\0\0")]));
        assert_eq!(hv.name, "bare");
        assert_eq!(hv.kvm_leaf, None);
    }

    #[test]
    fn kvm_and_tcg_are_named() {
        let hv = identify(machine(true, &[(FIRST_LEAF, 0x4000_0001, b"KVMKVMKVM\0\0\0")]));
        assert_eq!((hv.name, hv.kvm_leaf, hv.xen_leaf), ("kvm", Some(FIRST_LEAF), None));
        let hv = identify(machine(true, &[(FIRST_LEAF, 0x4000_0001, b"TCGTCGTCGTCG")]));
        assert_eq!(hv.name, "tcg");
    }

    #[test]
    fn xen_behind_viridian_is_found_at_its_shifted_base() {
        let hv = identify(machine(
            true,
            &[
                (FIRST_LEAF, 0x4000_0006, b"Microsoft Hv"),
                (0x4000_0100, 0x4000_0105, b"XenVMMXenVMM"),
            ],
        ));
        assert_eq!(hv.name, "xen");
        assert_eq!(hv.xen_leaf, Some(0x4000_0100));
        assert_eq!(hv.first, Some((FIRST_LEAF, 0x4000_0006)));
    }

    #[test]
    fn an_unknown_signature_is_still_a_hypervisor() {
        let hv = identify(machine(true, &[(FIRST_LEAF, 0x4000_0001, b"SomethingNew")]));
        assert_eq!(hv.name, "unknown-hypervisor");
    }
}
