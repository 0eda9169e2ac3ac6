//! The CPUID leaves the host builds a fingerprint from, as the guest sees
//! them: the probe kernel sends them in its hello, so a QEMU or Xen
//! environment is fingerprinted from inside the guest, not from the host
//! that booted it.
//!
//! In the hello they are one field, `cpuid`: comma-separated entries
//! `leaf.subleaf:eax:ebx:ecx:edx` in hex, non-zero leaves only (a leaf that
//! is absent reads as zero, as reserved leaves do).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::hardware::Hardware;

/// `((leaf, subleaf), [eax, ebx, ecx, edx])`.
pub type Leaf = ((u32, u32), [u32; 4]);

/// Vendor, signature, the architectural PMU leaf, AMD's extended features
/// and PerfMonV2 leaf, and the brand string.
const FIXED: [u32; 9] = [
    0,
    1,
    0xa,
    0x8000_0000,
    0x8000_0001,
    0x8000_0002,
    0x8000_0003,
    0x8000_0004,
    0x8000_0022,
];

/// The leaves, read now. Hypervisor leaves are scanned as Linux scans them
/// (0x40000000–0x40010000 in steps of 0x100); a base that carries a
/// signature is sent with the leaf after it (Xen's version).
pub fn read(hw: &mut dyn Hardware) -> Vec<Leaf> {
    let mut leaves: Vec<Leaf> = FIXED.iter().map(|&leaf| ((leaf, 0), hw.cpuid(leaf, 0))).collect();
    if hw.cpuid(1, 0)[2] & (1 << 31) != 0 {
        for base in (0x4000_0000u32..=0x4001_0000).step_by(0x100) {
            let regs = hw.cpuid(base, 0);
            if regs[1..].iter().any(|&r| r != 0) && regs[0] >= base {
                leaves.push(((base, 0), regs));
                leaves.push(((base + 1, 0), hw.cpuid(base + 1, 0)));
            }
        }
    }
    leaves.retain(|(_, regs)| regs.iter().any(|&r| r != 0));
    leaves
}

pub fn encode(leaves: &[Leaf]) -> String {
    let entries: Vec<String> = leaves
        .iter()
        .map(|((leaf, sub), [a, b, c, d])| format!("{leaf:08x}.{sub:x}:{a:08x}:{b:08x}:{c:08x}:{d:08x}"))
        .collect();
    entries.join(",")
}

/// The leaves back from [`encode`]'s text; `None` if any entry is malformed.
pub fn decode(text: &str) -> Option<Vec<Leaf>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|entry| {
            let (at, regs) = entry.split_once(':')?;
            let (leaf, sub) = at.split_once('.')?;
            let hex = |s: &str| u32::from_str_radix(s, 16).ok();
            let mut values = regs.split(':').map(hex);
            let regs = [values.next()??, values.next()??, values.next()??, values.next()??];
            if values.next().is_some() {
                return None;
            }
            Some(((hex(leaf)?, hex(sub)?), regs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_survive_the_hello() {
        let leaves = alloc::vec![
            ((0, 0), [0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69]),
            ((0x4000_0001, 0), [1, 2, 3, 4])
        ];
        assert_eq!(decode(&encode(&leaves)), Some(leaves));
        assert_eq!(decode(""), Some(alloc::vec![]));
        assert_eq!(decode("00000000.0:1:2:3"), None);
        assert_eq!(decode("00000000.0:1:2:3:4:5"), None);
        assert_eq!(decode("zz.0:1:2:3:4"), None);
    }
}
