//! The PVH start-of-day structure the loader leaves for us, and the command
//! line it points to.
//!
//! `struct hvm_start_info` (Xen `public/arch-x86/hvm/start_info.h`): magic
//! 0x336ec578 at offset 0, `flags` (u32, the `SIF_*` flags of
//! `public/xen.h`) at offset 8, `cmdline_paddr` (u64) at offset 24, the
//! physical address of a NUL-terminated string, or 0 for none. QEMU puts the
//! `-append` text there; Xen the domain config's `cmdline`/`extra`, or for
//! its hardware domain the module line after the file name.
//!
//! `nr_modules` (u32) at offset 12 and `modlist_paddr` (u64) at 16 list the
//! modules: `struct hvm_modlist_entry` is 32 bytes, `paddr` then `size`. Xen
//! copies its hardware domain's command line into a buffer of
//! `MAX_GUEST_CMDLINE` (1024) bytes (`public/xen.h`), too short for a
//! suite's plan, so the launcher can hand the plan over as a module instead:
//! a module whose bytes begin `pmuc=` is read as more command line
//! ([`plan_module`]).

const MAGIC: u32 = 0x336e_c578;
const FLAGS: usize = 8;
const NR_MODULES: usize = 12;
const MODLIST_PADDR: usize = 16;
const CMDLINE_PADDR: usize = 24;
const MODLIST_ENTRY_BYTES: usize = 32;
/// More modules than any loader passes us; the rest are not looked at.
const MODULES_MAX: u32 = 16;
/// The largest plan module read; a bigger one is ignored and the plan is
/// then missing, which the hello reports.
const PLAN_MODULE_MAX: u64 = 1 << 20;
const PLAN_PREFIX: &[u8] = b"pmuc=";
/// `SIF_INITDOMAIN`: this is Xen's initial (hardware) domain, dom0. Linux
/// reads it from the same field for a PVH dom0 (`xen_pvh_init`,
/// arch/x86/xen/enlighten_pvh.c: `xen_start_flags = pvh_start_info.flags`).
const SIF_INITDOMAIN: u32 = 1 << 1;
/// Longer than any command line a loader passes (Linux's x86 limit is 2 KiB).
const CMDLINE_MAX: usize = 64 * 1024;

/// Whether Xen started us as its hardware domain (dom0). QEMU leaves the
/// flags 0. Call after [`cmdline`], which checks the structure's magic.
pub fn initial_domain(start_info: u32) -> bool {
    // SAFETY: [`cmdline`] found the PVH magic at this identity-mapped address.
    let flags = unsafe { core::ptr::read_volatile((start_info as usize + FLAGS) as *const u32) };
    flags & SIF_INITDOMAIN != 0
}

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

/// The first module whose bytes begin `pmuc=`, as text (up to its first NUL
/// or invalid UTF-8, trailing whitespace trimmed), or "" where there is
/// none. Call after [`cmdline`], which checks the structure's magic.
pub fn plan_module(start_info: u32) -> &'static str {
    let base = start_info as usize;
    // SAFETY: [`cmdline`] found the PVH magic at this identity-mapped
    // address; the fields read are inside the structure's first 56 bytes.
    let (count, list) = unsafe {
        (
            core::ptr::read_volatile((base + NR_MODULES) as *const u32),
            core::ptr::read_unaligned((base + MODLIST_PADDR) as *const u64),
        )
    };
    if list == 0 || list >= 1 << 32 {
        return "";
    }
    for i in 0..count.min(MODULES_MAX) as u64 {
        let entry = list + i * MODLIST_ENTRY_BYTES as u64;
        if entry + MODLIST_ENTRY_BYTES as u64 > 1 << 32 {
            break;
        }
        // SAFETY: the loader wrote `count` entries at `list`, below 4 GiB
        // (checked), inside the identity map.
        let (paddr, size) = unsafe {
            (
                core::ptr::read_unaligned(entry as *const u64),
                core::ptr::read_unaligned((entry + 8) as *const u64),
            )
        };
        if paddr == 0 || size < PLAN_PREFIX.len() as u64 || size > PLAN_MODULE_MAX || paddr + size > 1 << 32 {
            continue;
        }
        // SAFETY: the loader placed `size` bytes at `paddr`, below 4 GiB (checked).
        let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, size as usize) };
        if !bytes.starts_with(PLAN_PREFIX) {
            continue;
        }
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
        let text = match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        };
        return text.trim_end();
    }
    ""
}
