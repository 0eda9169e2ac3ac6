//! The xl configuration of one probe-kernel domU (xl.cfg(5)): the probe
//! kernel as a PVH or HVM guest's kernel, the plan as its ramdisk, and a
//! domain that destroys itself however it ends, so that nothing is left
//! running.
//!
//! The probe kernel reads the first module that starts with `pmuc=` as more
//! command line (Xen's 1024-byte guest command line is shorter than a
//! suite's plan), and writes its records to port 0xE9, which Xen prints as
//! `(dN)` lines (pmu-facts.md §6.2). A PVH guest boots the kernel's PVH
//! entry directly; an HVM guest boots it through its device model's
//! `-kernel` (unverified here: this machine's dom0 has no device model).

use std::fmt::Write;
use std::path::Path;

/// How the domU is virtualized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestType {
    /// PVH: hardware virtualization with no device model; the probe kernel's PVH entry.
    Pvh,
    /// HVM: with a device model (QEMU) that loads the kernel.
    Hvm,
}

impl GuestType {
    pub fn name(self) -> &'static str {
        match self {
            GuestType::Pvh => "pvh",
            GuestType::Hvm => "hvm",
        }
    }
}

/// One domU.
#[derive(Clone, Debug)]
pub struct Domain<'a> {
    pub name: &'a str,
    pub guest: GuestType,
    pub kernel: &'a Path,
    /// The plan file, or none.
    pub ramdisk: Option<&'a Path>,
    pub cmdline: &'a str,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// Whether a domain that powers off or crashes is kept (shut down, not
    /// running) until the executor destroys it, so that xenconsoled can
    /// read the last of its console first.
    pub preserve: bool,
}

/// Why a configuration cannot be written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} `{value}` cannot be quoted in an xl configuration (it holds a quote, a backslash or a control character)"
)]
pub struct Unquotable {
    pub field: &'static str,
    pub value: String,
}

/// The configuration text for `domain`.
pub fn render(domain: &Domain) -> Result<String, Unquotable> {
    let quoted = |field: &'static str, value: &str| {
        if value.contains(['"', '\\']) || value.chars().any(char::is_control) {
            Err(Unquotable {
                field,
                value: value.to_owned(),
            })
        } else {
            Ok(format!("\"{value}\""))
        }
    };
    let mut text = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(text, "{key} = {value}");
    };
    line("name", quoted("name", domain.name)?);
    line("type", quoted("type", domain.guest.name())?);
    line("kernel", quoted("kernel", &domain.kernel.to_string_lossy())?);
    if let Some(ramdisk) = domain.ramdisk {
        line("ramdisk", quoted("ramdisk", &ramdisk.to_string_lossy())?);
    }
    line("cmdline", quoted("cmdline", domain.cmdline)?);
    line("memory", domain.memory_mib.to_string());
    line("vcpus", domain.vcpus.to_string());
    // However the guest ends, it stops: its domain goes, or stays shut down
    // for the executor to destroy; nothing is left running.
    let ended = if domain.preserve { "preserve" } else { "destroy" };
    for event in ["on_poweroff", "on_crash", "on_watchdog"] {
        line(event, quoted(event, ended)?);
    }
    line("on_reboot", quoted("on_reboot", "destroy")?);
    if domain.guest == GuestType::Hvm {
        // No display, disk or network: the records go to port 0xE9.
        line("vnc", "0".to_owned());
        line("sdl", "0".to_owned());
        line("vga", quoted("vga", "none")?);
        line("serial", quoted("serial", "none")?);
        line("boot", quoted("boot", "c")?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(guest: GuestType) -> Domain<'static> {
        Domain {
            name: "pmuc-7-1",
            guest,
            kernel: Path::new("/probe-kernel"),
            ramdisk: Some(Path::new("/tmp/pmuc-xl-1/plan")),
            cmdline: "pmuc.watchdog=9",
            memory_mib: 32,
            vcpus: 1,
            preserve: false,
        }
    }

    #[test]
    fn a_pvh_domain_boots_the_probe_kernel_with_its_plan_and_destroys_itself() {
        let text = render(&domain(GuestType::Pvh)).unwrap();
        assert_eq!(
            text,
            "name = \"pmuc-7-1\"\ntype = \"pvh\"\nkernel = \"/probe-kernel\"\nramdisk = \"/tmp/pmuc-xl-1/plan\"\n\
             cmdline = \"pmuc.watchdog=9\"\nmemory = 32\nvcpus = 1\non_poweroff = \"destroy\"\n\
             on_crash = \"destroy\"\non_watchdog = \"destroy\"\non_reboot = \"destroy\"\n"
        );
        let kept = render(&Domain {
            preserve: true,
            ..domain(GuestType::Pvh)
        })
        .unwrap();
        assert!(
            kept.contains("on_poweroff = \"preserve\"\non_crash = \"preserve\""),
            "{kept}"
        );
    }

    #[test]
    fn an_hvm_domain_has_no_display_and_a_plain_boot() {
        let text = render(&domain(GuestType::Hvm)).unwrap();
        assert!(text.contains("type = \"hvm\"\n"), "{text}");
        for line in [
            "vnc = 0\n",
            "vga = \"none\"\n",
            "serial = \"none\"\n",
            "on_crash = \"destroy\"\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        let pvh = render(&domain(GuestType::Pvh)).unwrap();
        assert!(!pvh.contains("vnc"), "{pvh}");
    }

    #[test]
    fn a_value_that_cannot_be_quoted_is_an_error_not_a_broken_file() {
        let mut d = domain(GuestType::Pvh);
        d.cmdline = "a\" kernel=\"/evil";
        assert_eq!(render(&d).unwrap_err().field, "cmdline");
        d.cmdline = "line\nbreak";
        assert!(render(&d).is_err());
    }
}
