//! The probe kernel's counted window, traced under QEMU's TCG: the guest
//! runs the window once with a harmless MSR for its bracket
//! (`pmuc.window-trace=`), and QEMU, one instruction per translation block
//! (`-singlestep`), logs every instruction it executes there (`-d
//! exec,nochain`, filtered to the window's addresses with `-dfilter`). Each
//! logged address is decoded from the image and counted by the suite's
//! convention ([`crate::counting`]), from the instruction after the
//! starting WRMSR to the stopping WRMSR, inclusive: what the kernel
//! listing (`pmu_kernel_checks::window::LISTING`) says is counted.
//!
//! Two boots: the first learns where the window is (the guest says), the
//! second logs it. Neither needs a PMU, so this runs on any host with QEMU.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::launcher::{self, Exit, QemuConfig};
use crate::counting::Executed;
use crate::vocabulary::Accel;
use crate::workload::Counts;

/// The window's code fits in this many bytes from its entry.
const WINDOW_BYTES: u64 = 0x100;

/// The most log this reads: a line per instruction, a few passes each.
const LOG_LIMIT: u64 = 64 << 20;

/// What the kernel window retired over `passes` loop passes, traced.
pub fn trace(image: &Path, passes: u64) -> Result<Counts, String> {
    let cmdline = format!("pmuc.window-trace={passes} pmuc.watchdog=20");
    let first = QemuConfig {
        timeout: Duration::from_secs(30),
        ..QemuConfig::new(image, Accel::Tcg, cmdline.clone())
    };
    let boot = launcher::boot(&first).map_err(|e| e.to_string())?;
    let entry = window_entry(&boot.lines, passes).ok_or_else(|| {
        format!(
            "the guest did not say it ran the window (`{}`): {}",
            first.command_line(),
            boot.lines.join(" | ")
        )
    })?;

    let log = tempfile::NamedTempFile::new().map_err(|e| format!("a file for QEMU's log: {e}"))?;
    let mut extra: Vec<OsString> = ["-singlestep", "-d", "exec,nochain", "-dfilter"]
        .into_iter()
        .map(OsString::from)
        .collect();
    extra.push(format!("{entry:#x}+{WINDOW_BYTES:#x}").into());
    extra.push("-D".into());
    extra.push(log.path().as_os_str().to_owned());
    let second = QemuConfig {
        extra_args: extra,
        ..first.clone()
    };
    let boot = launcher::boot(&second).map_err(|e| e.to_string())?;
    if boot.exit != Exit::Guest(0) || window_entry(&boot.lines, passes) != Some(entry) {
        return Err(format!(
            "the traced boot (`{}`) did not run the window as the first did: {:?}, {}",
            second.command_line(),
            boot.exit,
            boot.lines.join(" | ")
        ));
    }
    let mut text = String::new();
    std::fs::File::open(log.path())
        .and_then(|f| f.take(LOG_LIMIT).read_to_string(&mut text))
        .map_err(|e| format!("reading QEMU's log: {e}"))?;
    let code = std::fs::read(image).map_err(|e| format!("reading {}: {e}", image.display()))?;
    count(&logged_addresses(&text), entry, &code)
}

/// `probe-kernel: window traced: N passes from 0x…`, the guest's word.
fn window_entry(lines: &[String], passes: u64) -> Option<u64> {
    let prefix = format!("probe-kernel: window traced: {passes} passes from 0x");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// The guest addresses of QEMU 7.2's `Trace N: HOST [CS_BASE/PC/FLAGS/CFLAGS]` lines.
fn logged_addresses(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.starts_with("Trace "))
        .filter_map(|l| {
            let fields = l.split_once('[')?.1.split_once(']')?.0;
            u64::from_str_radix(fields.split('/').nth(1)?, 16).ok()
        })
        .collect()
}

/// Counts the executed `addresses` from the window's entry to its `ret`:
/// from after its first WRMSR through its second.
fn count(addresses: &[u64], entry: u64, image: &[u8]) -> Result<Counts, String> {
    let start = addresses
        .iter()
        .position(|&a| a == entry)
        .ok_or_else(|| format!("QEMU's log never reached the window at {entry:#x}"))?;
    let mut wrmsrs = 0;
    let mut counted = Counts::ZERO;
    for &address in &addresses[start..] {
        let bytes =
            bytes_at(image, address).ok_or_else(|| format!("{address:#x} is not in the image's loaded segments"))?;
        let executed =
            Executed::decode(address, bytes).ok_or_else(|| format!("undecodable instruction at {address:#x}"))?;
        if wrmsrs == 1 {
            counted = counted + executed.counts(executed.is_nop());
        }
        if executed.wrmsr() {
            wrmsrs += 1;
        }
        if executed.ret {
            return match wrmsrs {
                2 => Ok(counted),
                n => Err(format!("the window ran {n} WRMSRs, not its two")),
            };
        }
    }
    Err("QEMU's log ends inside the window".into())
}

/// Up to 16 bytes at virtual `address` in the ELF `image`'s PT_LOAD segments.
fn bytes_at(image: &[u8], address: u64) -> Option<&[u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(image.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(image.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(image.get(o..o + 8)?.try_into().ok()?));
    if image.get(..4)? != b"\x7fELF" || image.get(4)? != &2 {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (size, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..count).find_map(|i| {
        let ph = phoff + i * size;
        const PT_LOAD: u32 = 1;
        if u32_at(ph)? != PT_LOAD {
            return None;
        }
        let (offset, vaddr, filesz) = (u64_at(ph + 8)?, u64_at(ph + 16)?, u64_at(ph + 32)?);
        let within = address.checked_sub(vaddr).filter(|&d| d < filesz)?;
        let from = usize::try_from(offset + within).ok()?;
        let to = usize::try_from((offset + filesz).min(offset + within + 16)).ok()?;
        image.get(from..to)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_gives_the_guest_addresses() {
        let log = "Trace 0: 0x7f9a3c000100 [00000000ffff0000/00000000fffffff0/00000040/ff000201] \n\
                   garbage\n\
                   Trace 0: 0x7f9a3c000240 [00000000000f0000/000000000010ff38/00000040/ff000201] sym\n";
        assert_eq!(logged_addresses(log), vec![0xfffffff0, 0x10ff38]);
    }

    #[test]
    fn the_guest_says_where_the_window_is() {
        let lines = vec!["probe-kernel: window traced: 5 passes from 0x10ff38".to_owned()];
        assert_eq!(window_entry(&lines, 5), Some(0x10ff38));
        assert_eq!(window_entry(&lines, 6), None);
    }
}
