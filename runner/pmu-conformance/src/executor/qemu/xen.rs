//! Xen under QEMU, with the probe kernel as its PVH dom0 (`qemu-xen-dom0`
//! environments): which Xen, how QEMU boots it, and what Xen said about
//! itself on the way.
//!
//! QEMU's `-kernel` boots an uncompressed Xen directly (a multiboot1 ELF;
//! Xen's own CI boots its XTF tests the same way, guest-boots.md). The
//! `-initrd` argument lists the multiboot modules, comma-separated, each
//! `path words`: Xen builds its dom0 from the first and strips the file name
//! from its line, so the probe kernel's words follow it. Xen copies that
//! line into a 1024-byte buffer (`MAX_GUEST_CMDLINE`, Xen `public/xen.h`),
//! shorter than a suite's plan, so the plan goes as the second module, which
//! Xen hands dom0 as its initrd and the probe kernel reads as more command
//! line. QEMU ends a module's path at its first space and reads `,,` as a
//! literal comma, so both modules are links with plain names in a folder of
//! their own, and every comma in the words is doubled.
//!
//! The probe kernel, as the hardware domain, writes whole lines through
//! Xen's `console_io` hypercall, which Xen prints among its own `(XEN)`
//! lines on COM1 (`-serial stdio`); the transcript reader skips the
//! latter. Xen halts the machine rather than powering it off when dom0
//! shuts down, so the launcher adds `pmuc.qemu-exit`, and the probe kernel
//! writes isa-debug-exit before its shutdown hypercall.
//!
//! Under TCG, Xen needs a CPU with SVM and nested paging: `-cpu EPYC` works,
//! any Intel model fails to build dom0 (TCG emulates no VMX), and `qemu64`
//! lacks HAP (guest-boots.md). TCG has no counters, so with or without
//! `vpmu=1` the cases are unsupported; what such a boot proves is Xen's
//! boot, the plan, the console, the protocol and the shutdown path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::environment::{XenBoot, XenImage};
use crate::executor::StartError;
use crate::fingerprint::XenFacts;
use crate::outcome::{Outcome, Verdict};

/// Names the Xen for `xen: debian`, ahead of the search.
pub const XEN_VARIABLE: &str = "PMUC_XEN";
/// Where `cargo xtask xen` leaves the Xen it fetched, under a target
/// directory: `xen/<package version>/xen`, with `current` linking to the
/// newest.
pub const XEN_IN_TARGET_DIR: &str = "xen/current/xen";

/// Xen's command line before the environment's `xen_args`: its console on
/// COM1 with every level of message (the dom0's among them), no reboot on a
/// crash (QEMU runs with `-no-reboot`), and a PVH dom0 of one vCPU and
/// 64 MiB with no IOMMU (QEMU gives none). The same as Xen's CI's
/// `automation/scripts/qemu-smoke-x86-64.sh`, with a PVH dom0.
pub const COMMAND_LINE: [&str; 9] = [
    "console=com1",
    "com1=115200,8n1",
    "loglvl=all",
    "guest_loglvl=all",
    "noreboot",
    "dom0=pvh",
    "dom0-iommu=none",
    "dom0_mem=64M",
    "dom0_max_vcpus=1",
];

/// Xen's command line for a Linux PV dom0 (`qemu-xen-domu`), before the
/// environment's `xen_args`: the same console, and a PV dom0 of 512 MiB
/// (guest-boots.md, "A PVH domU through a Linux PV dom0"), with a console
/// ring of 1 MiB, so that no domU line is lost between two reads of it.
pub const DOM0_COMMAND_LINE: [&str; 8] = [
    "console=com1",
    "com1=115200,8n1",
    "loglvl=all",
    "guest_loglvl=all",
    "noreboot",
    "dom0_mem=512M",
    "dom0_max_vcpus=1",
    "conring_size=1M",
];

/// QEMU's `-cpu` for Xen with a Linux PV dom0 under TCG: EPYC without SMAP
/// and SMEP (else the PV dom0 dies at its first exception) and without
/// MONITOR (else Xen's idle loop uses MWAIT, which TCG does not emulate,
/// and Xen panics in `mwait_idle_with_hints`; guest-boots.md), and without
/// RDTSCP: TCG's SVM has no NRIP save, so Xen decodes a trapped
/// instruction's length itself, fails on a Linux domU's RDTSCP (`SVM Insn
/// len emulation failed ... 0f 01 f9`, seen here) and the domU dies.
pub const DOM0_TCG_CPU: &str = "EPYC,-smap,-smep,-monitor,-rdtscp";

/// Where `cargo xtask xen` leaves the Linux PV dom0's kernel, under a target
/// directory; its `root/` (the toolstack) is beside it.
pub const DOM0_KERNEL_IN_TARGET_DIR: &str = "xen/current/dom0/vmlinuz";
/// Names the dom0 kernel, ahead of the search; its `root/` is beside it.
pub const DOM0_VARIABLE: &str = "PMUC_XEN_DOM0_KERNEL";

/// The Linux PV dom0's kernel, and the toolstack's root tree beside it.
/// The ELF `vmlinux` beside a `vmlinuz`, where there is one, is the kernel:
/// Xen takes about 6 s under TCG to unpack a bzImage itself.
pub fn find_dom0() -> Result<(PathBuf, PathBuf), StartError> {
    let bzimage = super::image::named_or_in_target_dirs(
        DOM0_VARIABLE,
        DOM0_KERNEL_IN_TARGET_DIR,
        "Debian's dom0 kernel and Xen's toolstack are not fetched: `cargo xtask xen` fetches them with apt-get download",
    )?;
    let kernel = Some(bzimage.with_file_name("vmlinux"))
        .filter(|elf| bzimage.file_name().is_some_and(|n| n == "vmlinuz") && elf.is_file())
        .unwrap_or(bzimage);
    let root = kernel.with_file_name("root");
    if !root.is_dir() {
        return Err(StartError::Unavailable(format!(
            "{} has no toolstack beside it ({} is missing): run `cargo xtask xen` again",
            kernel.display(),
            root.display()
        )));
    }
    Ok((kernel, root))
}

/// QEMU's `-cpu` for Xen where the environment names none: under TCG a
/// model with SVM and NPT, under KVM the host's.
pub fn default_cpu(accel: crate::vocabulary::Accel) -> &'static str {
    match accel {
        crate::vocabulary::Accel::Tcg => "EPYC",
        crate::vocabulary::Accel::Kvm => "host,-arch-capabilities",
    }
}

/// The Xen to boot, or what to do to get one.
pub fn find(image: &XenImage) -> Result<PathBuf, StartError> {
    match image {
        XenImage::Path(path) if path.is_file() => Ok(path.clone()),
        XenImage::Path(path) => Err(StartError::Argument(format!(
            "the Xen hypervisor {} is not a file",
            path.display()
        ))),
        XenImage::Debian => super::image::named_or_in_target_dirs(
            XEN_VARIABLE,
            XEN_IN_TARGET_DIR,
            "Debian's Xen is not fetched: `cargo xtask xen` fetches it with apt-get download; `xen: PATH` names another",
        ),
    }
}

/// Xen's command line for `xen`, after `base` ([`COMMAND_LINE`] or [`DOM0_COMMAND_LINE`]).
pub fn command_line(base: &[&str], xen: &XenBoot) -> String {
    base.iter()
        .map(|w| w.to_string())
        .chain(xen.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One boot's multiboot modules, in a folder that lives as long as this does.
pub struct Modules {
    _dir: tempfile::TempDir,
    /// QEMU's `-initrd` argument.
    pub initrd: OsString,
}

/// The modules for a boot of `probe_kernel` with `words` on its line and
/// `plan` (the `pmuc=` word, or "") as the second module.
pub fn modules(probe_kernel: &Path, words: &str, plan: &str) -> std::io::Result<Modules> {
    let (dir, mut initrd) = first_module(probe_kernel, "probe-kernel", words)?;
    if !plan.is_empty() {
        let file = dir.path().join("plan");
        std::fs::write(&file, format!("{plan}\n"))?;
        initrd.push(',');
        initrd.push_str(&file.to_string_lossy());
    }
    Ok(Modules {
        _dir: dir,
        initrd: initrd.into(),
    })
}

/// The modules for a boot of a Linux dom0 `kernel` with `words` on its
/// line and `initramfs` as its initrd.
pub fn dom0_modules(kernel: &Path, words: &str, initramfs: &Path) -> std::io::Result<Modules> {
    let (dir, mut initrd) = first_module(kernel, "vmlinuz", words)?;
    let link = dir.path().join("initramfs");
    std::os::unix::fs::symlink(std::path::absolute(initramfs)?, &link)?;
    initrd.push(',');
    initrd.push_str(&link.to_string_lossy());
    Ok(Modules {
        _dir: dir,
        initrd: initrd.into(),
    })
}

/// A folder of plain names for one boot's modules, with `kernel` linked in
/// it as `name`, and the first module's text: the link and `words`, its
/// commas doubled.
fn first_module(kernel: &Path, name: &str, words: &str) -> std::io::Result<(tempfile::TempDir, String)> {
    let dir = tempfile::Builder::new().prefix("pmuc-xen-").tempdir()?;
    let plain = |p: &Path| {
        let s = p.to_string_lossy();
        !s.contains([' ', ',', '\t', '\n'])
    };
    if !plain(dir.path()) {
        return Err(std::io::Error::other(format!(
            "the temporary folder {} has a space or comma in its path, which QEMU's -initrd cannot take; \
             set TMPDIR to another",
            dir.path().display()
        )));
    }
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(std::path::absolute(kernel)?, &link)?;
    let initrd = format!("{} {}", link.display(), words.replace(',', ",,"));
    Ok((dir, initrd))
}

/// What Xen printed about itself: its version line, its command line, and
/// what it said about its vPMU. `None` where no Xen banner is in `lines`.
pub fn facts<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<XenFacts> {
    let mut version = None;
    let mut command_line = None;
    let mut said = Vec::new();
    for line in lines {
        let Some(text) = line.strip_prefix("(XEN) ") else {
            continue;
        };
        if let Some(v) = text.strip_prefix("Xen version ") {
            // `4.17.5 (Debian 4.17.5+72-g01140da4e8-1) (maintainer) (compiler) debug=n date`
            let end = v.find(") (").map_or(v.len(), |at| at + 1);
            version.get_or_insert_with(|| v[..end].to_owned());
        } else if let Some(c) = text.strip_prefix("Command line: ") {
            command_line.get_or_insert_with(|| c.trim().to_owned());
        } else if text.contains("VPMU") || text.contains("vPMU") {
            said.push(text.trim().to_owned());
        }
    }
    let version = version?;
    let command_line = command_line.unwrap_or_default();
    let vpmu = vpmu_mode(&command_line);
    Some(XenFacts {
        version,
        vpmu,
        vpmu_said: said,
        command_line,
    })
}

/// The vPMU mode Xen's command line asks for: the last `vpmu=` word, or
/// `off` (Xen's default: docs/misc/xen-command-line.pandoc, `vpmu`).
pub(crate) fn vpmu_mode(command_line: &str) -> String {
    command_line
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("vpmu="))
        .next_back()
        .map_or_else(|| "off".to_owned(), |v| v.to_owned())
}

/// An unsupported case under a Xen whose vPMU is off says so, beside the
/// probe kernel's own reason: Xen gives an HVM or PVH guest no vPMU unless
/// its command line asks (`vpmu`, docs/misc/xen-command-line.pandoc).
pub fn with_xens_word(xen: Option<&XenFacts>, mut outcome: Outcome) -> Outcome {
    let Some(xen) = xen else { return outcome };
    if outcome.verdict == Verdict::Unsupported
        && matches!(xen.vpmu.as_str(), "off" | "0" | "no" | "false")
        && let Some(reason) = outcome.reason.as_mut()
    {
        reason.message = format!(
            "{}; and Xen's vPMU is off (its command line has no vpmu=1)",
            reason.message
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xens_banner_gives_its_version_command_line_and_vpmu() {
        let lines = [
            "(XEN) Xen version 4.17.5 (Debian 4.17.5+72-g01140da4e8-1) (pkg-xen-devel@lists.alioth.debian.org) \
             (x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0) debug=n Sat Nov 29 13:52:25 UTC 2025",
            "(XEN) build-id: 39a640e6f1412319235087391df9f1c5e13ae920",
            "(XEN) Command line: console=com1 noreboot dom0=pvh vpmu=0 vpmu=1",
            "(XEN) VPMU: version 0.1",
            "@pmuc1 16 7f49e79d kind=end cases=0",
        ];
        let facts = facts(lines).expect("a banner");
        assert_eq!(facts.version, "4.17.5 (Debian 4.17.5+72-g01140da4e8-1)");
        assert_eq!(facts.command_line, "console=com1 noreboot dom0=pvh vpmu=0 vpmu=1");
        assert_eq!(facts.vpmu, "1");
        assert_eq!(facts.vpmu_said, ["VPMU: version 0.1"]);
        let off = super::facts(["(XEN) Xen version 4.17.5", "(XEN) Command line: dom0=pvh"]).unwrap();
        assert_eq!((off.version.as_str(), off.vpmu.as_str()), ("4.17.5", "off"));
        assert!(super::facts(["probe-kernel: booted (x2apic, xen)"]).is_none());
    }

    #[test]
    fn modules_are_plain_links_with_the_words_commas_doubled_and_the_plan_second() {
        let kernel = tempfile::NamedTempFile::new().unwrap();
        let m = modules(kernel.path(), "pmuc.watchdog=9 a,b", "pmuc=x/y,check,int=1").unwrap();
        let initrd = m.initrd.to_string_lossy().into_owned();
        let (first, plan) = initrd.rsplit_once(',').unwrap();
        assert!(first.ends_with("/probe-kernel pmuc.watchdog=9 a,,b"), "{initrd}");
        let link = first.split(' ').next().unwrap();
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            std::path::absolute(kernel.path()).unwrap()
        );
        assert_eq!(std::fs::read_to_string(plan).unwrap(), "pmuc=x/y,check,int=1\n");
        let dir = Path::new(link).parent().unwrap().to_path_buf();
        drop(m);
        assert!(!dir.exists(), "the folder goes with the boot");
    }
}
