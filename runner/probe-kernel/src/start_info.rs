//! The PVH start-of-day structure the loader leaves for us, and the command
//! line it points to.
//!
//! `struct hvm_start_info` (Xen `public/arch-x86/hvm/start_info.h`): magic
//! 0x336ec578 at offset 0, `cmdline_paddr` (u64) at offset 24, the physical
//! address of a NUL-terminated string, or 0 for none. QEMU puts the
//! `-append` text there; Xen the domain config's `cmdline`/`extra`.

const MAGIC: u32 = 0x336e_c578;
const CMDLINE_PADDR: usize = 24;
/// Longer than any command line a loader passes (Linux's x86 limit is 2 KiB).
const CMDLINE_MAX: usize = 64 * 1024;

/// The command line, or "" where there is none. A start_info without the
/// PVH magic means we were not entered through PVH, and the guest stops.
pub fn cmdline(start_info: u32) -> &'static str {
    let base = start_info as usize;
    if base == 0 {
        crate::exit::fatal(format_args!("no hvm_start_info (EBX was 0): not entered through PVH"));
    }
    // SAFETY: the loader passed this physical address, and the first 4 GiB
    // are identity-mapped; the structure is at least 56 bytes.
    let magic = unsafe { core::ptr::read_volatile(base as *const u32) };
    if magic != MAGIC {
        crate::exit::fatal(format_args!(
            "hvm_start_info at {base:#x} has magic {magic:#x}, not {MAGIC:#x}: not entered through PVH"
        ));
    }
    // SAFETY: as above.
    let paddr = unsafe { core::ptr::read_unaligned((base + CMDLINE_PADDR) as *const u64) };
    if paddr == 0 {
        return "";
    }
    if paddr >= 1 << 32 {
        crate::exit::fatal(format_args!(
            "the command line at {paddr:#x} is above the 4 GiB this kernel maps"
        ));
    }
    let start = paddr as *const u8;
    // SAFETY: the loader wrote a NUL-terminated string here; reading stops at
    // the NUL or after CMDLINE_MAX bytes, inside the identity map.
    let bytes = unsafe {
        let mut len = 0;
        while len < CMDLINE_MAX && *start.add(len) != 0 {
            len += 1;
        }
        core::slice::from_raw_parts(start, len)
    };
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        // Keep what is valid: the plan's syntax is ASCII anyway.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}
