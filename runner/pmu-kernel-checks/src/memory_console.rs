//! The console in guest memory: where a guest's every console write costs
//! a VM exit (a byte at a time to a port, about 50 µs each under a software
//! virtualizer such as kvm_pvm, where a plan's records are 10 KB), the
//! probe kernel writes its console into a region of its own RAM instead,
//! and the host, which backs that RAM with a file it shares with QEMU
//! (`memory-backend-file,share=on`), reads it from the file as the guest
//! writes it. No exit at all; the text is the same lines and records the
//! port would have carried.
//!
//! The host asks for it with `pmuc.memcon=<base>,<length>` (hexadecimal
//! guest-physical address and length of the region, header included); the
//! guest takes it only if it is page-aligned, above its own image and
//! below 4 GiB (what it maps), and at least [`MIN_BYTES`] long.
//!
//! The region, little-endian: [`MAGIC`] at 0, the bytes of text written so
//! far at [`WRITTEN`], the bytes that did not fit at [`DROPPED`], the text
//! from [`HEADER_BYTES`]. The guest writes text before it raises the count
//! (x86 keeps stores in order), so a reader that reads the count first
//! never reads text not yet written. The magic is written last of the
//! header, so a region that holds it was initialised by this guest.

/// "PMUCMEM1", as the first eight bytes of the region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PMUCMEM1");
/// Offset of the count of text bytes written.
pub const WRITTEN: usize = 8;
/// Offset of the count of text bytes that did not fit.
pub const DROPPED: usize = 16;
/// Where the text starts.
pub const HEADER_BYTES: usize = 64;
/// The smallest region the guest takes: a page.
pub const MIN_BYTES: u64 = 4096;
/// The command-line word's prefix.
pub const WORD: &str = "pmuc.memcon=";

/// A region: its guest-physical base and its length, header included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub len: u64,
}

impl Region {
    /// The command-line word that asks for this region.
    pub fn word(&self) -> alloc::string::String {
        alloc::format!("{WORD}{:#x},{:#x}", self.base, self.len)
    }

    /// Text bytes the region holds after its header.
    pub fn capacity(&self) -> u64 {
        self.len.saturating_sub(HEADER_BYTES as u64)
    }
}

/// The region the command line asks for: `Ok(None)` without the word,
/// `Err(value)` for one that is not `<hex base>,<hex length>` with a
/// page-aligned base, at least [`MIN_BYTES`], and an end at or below 4 GiB.
/// The last word wins.
pub fn parse(cmdline: &str) -> Result<Option<Region>, &str> {
    let Some(value) = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(WORD))
        .next_back()
    else {
        return Ok(None);
    };
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    let region = value
        .split_once(',')
        .and_then(|(base, len)| {
            Some(Region {
                base: hex(base)?,
                len: hex(len)?,
            })
        })
        .filter(|r| {
            r.base % 4096 == 0 && r.len >= MIN_BYTES && r.base.checked_add(r.len).is_some_and(|end| end <= 1 << 32)
        });
    region.map(Some).ok_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_round_trips_through_its_word() {
        let region = Region {
            base: 0x400_0000,
            len: 0x40_1000,
        };
        assert_eq!(region.word(), "pmuc.memcon=0x4000000,0x401000");
        let line = alloc::format!("pmuc=k/a,ovf-ack {} pmuc.watchdog=5", region.word());
        assert_eq!(parse(&line), Ok(Some(region)));
        assert_eq!(region.capacity(), 0x40_1000 - 64);
        assert_eq!(parse("pmuc=k/a,ovf-ack"), Ok(None));
    }

    #[test]
    fn a_region_the_guest_cannot_use_is_refused_with_its_value() {
        for bad in [
            "pmuc.memcon=0x4000800,0x1000",            // not page-aligned
            "pmuc.memcon=0x4000000,0x800",             // shorter than a page
            "pmuc.memcon=0xfffff000,0x2000",           // past 4 GiB
            "pmuc.memcon=4000000,1000",                // not 0x-prefixed
            "pmuc.memcon=0x4000000",                   // no length
            "pmuc.memcon=0xffffffffffff000,0x1000000", // overflows
        ] {
            let value = bad.strip_prefix(WORD).unwrap();
            assert_eq!(parse(bad), Err(value), "{bad}");
        }
        assert_eq!(
            parse("pmuc.memcon=0x800,0x1000 pmuc.memcon=0x100000,0x1000"),
            Ok(Some(Region {
                base: 0x10_0000,
                len: 0x1000
            })),
            "the last word wins"
        );
    }
}
