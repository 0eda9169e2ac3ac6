//! The CPUID leaves the host builds a fingerprint from, as the guest sees
//! them: the probe kernel sends them in its hello, so a QEMU or Xen
//! environment is fingerprinted from inside the guest, not from the host
//! that booted it.
//!
//! In the hello they are one field, `cpuid`: comma-separated entries
//! `leaf.subleaf:eax:ebx:ecx:edx` in hex, non-zero leaves only (a leaf that
//! is absent reads as zero, as reserved leaves do).

use alloc::string::String;
use alloc::vec::Vec;

use crate::hardware::Hardware;

/// `((leaf, subleaf), [eax, ebx, ecx, edx])`.
pub type Leaf = ((u32, u32), [u32; 4]);

/// Vendor, signature, structured features (TSX), the architectural PMU
/// leaf, AMD's extended features and PerfMonV2 leaf, and the brand string.
const FIXED: [u32; 10] = [
    0,
    1,
    7,
    0xa,
    0x8000_0000,
    0x8000_0001,
    0x8000_0002,
    0x8000_0003,
    0x8000_0004,
    0x8000_0022,
];

/// The leaves, read now. Hypervisor bases are read from 0x40000000 in steps
/// of 0x100 while they carry a signature (Xen behind Viridian, KVM behind
/// Hyper-V sit at 0x40000100), each with the leaf after it (Xen's version).
/// The host scans to 0x40010000 as Linux does; absent leaves read as zero
/// there, so stopping at the first empty base loses nothing it would find,
/// and saves up to 250 CPUID exits (about 90 ms in a nested guest).
pub fn read(hw: &mut dyn Hardware) -> Vec<Leaf> {
    let mut leaves: Vec<Leaf> = FIXED.iter().map(|&leaf| ((leaf, 0), hw.cpuid(leaf, 0))).collect();
    if hw.cpuid(1, 0)[2] & (1 << 31) != 0 {
        for base in (0x4000_0000u32..=0x4001_0000).step_by(0x100) {
            let regs = hw.cpuid(base, 0);
            if regs[1..].iter().all(|&r| r == 0) || regs[0] < base {
                break;
            }
            leaves.push(((base, 0), regs));
            leaves.push(((base + 1, 0), hw.cpuid(base + 1, 0)));
        }
    }
    leaves.retain(|(_, regs)| regs.iter().any(|&r| r != 0));
    leaves
}

/// By hand rather than with `format!`: where guest code is emulated, as in
/// a nested PVM guest, `core::fmt` took 40 ms over these dozen leaves.
pub fn encode(leaves: &[Leaf]) -> String {
    fn hex(out: &mut String, value: u32, digits: u32) {
        for shift in (0..digits).rev() {
            let nibble = (value >> (4 * shift)) & 0xf;
            out.push(char::from_digit(nibble, 16).unwrap_or('?'));
        }
    }
    let mut out = String::with_capacity(leaves.len() * 48);
    for (n, ((leaf, sub), regs)) in leaves.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        hex(&mut out, *leaf, 8);
        out.push('.');
        // The subleaf without leading zeros, as `{:x}` writes it.
        let digits = (1..=8).rev().find(|&d| sub >> (4 * (d - 1)) != 0).unwrap_or(1);
        hex(&mut out, *sub, digits);
        for &reg in regs {
            out.push(':');
            hex(&mut out, reg, 8);
        }
    }
    out
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
        assert_eq!(decode(&encode(&leaves)), Some(leaves.clone()));
        assert_eq!(
            encode(&leaves[1..]),
            "40000001.0:00000001:00000002:00000003:00000004",
            "the same text `format!` would write"
        );
        assert!(encode(&[((0xa, 0x1f), [0; 4])]).starts_with("0000000a.1f:"));
        assert_eq!(decode(""), Some(alloc::vec![]));
        assert_eq!(decode("00000000.0:1:2:3"), None);
        assert_eq!(decode("00000000.0:1:2:3:4:5"), None);
        assert_eq!(decode("zz.0:1:2:3:4"), None);
    }
}
