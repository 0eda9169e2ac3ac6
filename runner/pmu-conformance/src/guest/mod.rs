//! Linux guests carrying the runner: the linux cases run inside the guest
//! whose vPMU is under test, and the host gates what they report.
//!
//! The host packs the static runner into an initramfs ([`initramfs`]) as
//! the guest's `/init`, boots a Linux kernel with it, and reads the guest's
//! typed report back from the serial console ([`report_stream`]). Inside,
//! the runner is PID 1 ([`init`]): it mounts what Linux cases need, runs
//! them, streams the report and powers the guest off.

pub mod dom0;
pub mod init;
pub mod initramfs;
pub mod report_stream;

/// The kernel command-line word after which the guest's runner arguments follow.
pub const ARGUMENTS_AFTER: &str = "--";

/// The bytes of the runner at `path`, if it can be a guest's init: an ELF
/// with no program interpreter, so it needs no libc in the guest. Without
/// the probe kernel image a dist build carries: a guest or a remote runs
/// linux cases only, and 1.7 MB less initramfs is a faster boot under TCG.
pub fn static_runner(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    bytes.truncate(crate::executor::qemu::image::without_appended(&bytes).len());
    let elf = elf_has_interpreter(&bytes).ok_or_else(|| format!("{}: not a 64-bit ELF executable", path.display()))?;
    if elf {
        return Err(format!(
            "{} is dynamically linked, so it cannot be a guest's init; `cargo xtask dist` builds the static \
             runner (target/x86_64-unknown-linux-musl/release/pmu-conformance)",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Whether a 64-bit little-endian ELF has a PT_INTERP program header
/// (`None` if it is not such an ELF).
fn elf_has_interpreter(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = (u64_at(0x20)? as usize, u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    Some((0..phnum).any(|i| u32_at(phoff + i * phentsize) == Some(PT_INTERP)))
}
