//! The `qemu-linux` environments' executor: a Linux guest carrying the
//! runner, so the linux cases run inside the guest whose vPMU is under test.
//!
//! One boot runs every linux case. The executor packs the static runner
//! into an initramfs ([`crate::guest::initramfs`]), boots the environment's
//! kernel with it under the launcher's supervision (its own process group,
//! killed at the environment's deadline), and reads the guest's typed report
//! back from the serial console ([`crate::guest::report_stream`]). The
//! guest's fingerprint, from that report, is the environment's: each case's
//! outcome is gated on the host against `expected/<env>/<guest host class>/`.
//!
//! Time: under TCG the guest's clock counts instructions ([`ICOUNT`]), so
//! its timers do not depend on how busy the host is.
//!
//! Retries: TCG has rare flakes (a boot that sends no report, about one in
//! fifty; guest-boots.md), so a boot under TCG that sends no intact report
//! is tried once more, and the executor's description says that it was and
//! why. A boot under KVM is tried once. A guest that sends no report after
//! that is an environment that cannot start, with QEMU's words.

use std::path::{Path, PathBuf};

use super::launcher::{self, Boot, ConsolePort, QemuConfig};
use super::xen;
use crate::environment::{GuestKernel, LinuxGuest, XenDom0};
use crate::executor::StartError;
use crate::executor::reported::ReportedExecutor;
use crate::report::Report;
use crate::vocabulary::Accel;

/// Names the static runner the guest carries, ahead of the search.
pub const RUNNER_VARIABLE: &str = "PMUC_GUEST_RUNNER";
/// Names the guest kernel for `kernel: debian`, ahead of the search.
pub const KERNEL_VARIABLE: &str = "PMUC_GUEST_KERNEL";
/// Where `cargo xtask dist` leaves the static runner, under a target directory.
pub const RUNNER_IN_TARGET_DIR: &str = "x86_64-unknown-linux-musl/release/pmu-conformance";
/// Where `cargo xtask guest-kernel` leaves Debian's cloud kernel, under a target directory.
pub const KERNEL_IN_TARGET_DIR: &str = "guest/vmlinuz";
/// QEMU's instruction counting for a TCG guest: 2^4 ns of guest time per
/// instruction, never sleeping in real time while the guest idles.
pub const ICOUNT: [&str; 2] = ["-icount", "shift=4,sleep=off"];

/// The label the guest's run goes by; the host gates under its own id.
pub(crate) const GUEST_LABEL: &str = "linux-guest";
/// Where a dom0's initramfs holds the probe kernel its domUs boot.
const DOM0_PROBE_KERNEL: &str = "probe-kernel";
/// Where a dom0's initramfs holds the kernel of the Linux domU it creates.
const DOM0_DOMU_KERNEL: &str = "domu-vmlinuz";
/// Where a dom0's initramfs holds the matrix of the `xl` environment it runs.
const DOM0_MATRIX: &str = "domu.yaml";

/// Boots the guest once and keeps every case's outcome; a dom0 carries
/// `probe_kernel` (as for `run --kernel`) for its domUs.
pub fn boot(guest: &LinuxGuest, probe_kernel: Option<&Path>) -> Result<ReportedExecutor, StartError> {
    let (_, init) = runner_to_carry()?;
    let initramfs = tempfile::Builder::new()
        .prefix("pmuc-initramfs-")
        .tempfile()
        .map_err(|e| StartError::Unavailable(format!("creating the initramfs: {e}")))?;
    let (mut config, _modules) = match &guest.dom0 {
        None => (plain_guest(guest, &init, initramfs.as_file(), initramfs.path())?, None),
        Some(dom0) => {
            let (config, modules) = xen_dom0(guest, dom0, probe_kernel, &init, initramfs.as_file(), initramfs.path())?;
            (config, Some(modules))
        }
    };
    let attempts = match guest.accel {
        Accel::Tcg => 2,
        Accel::Kvm => 1,
    };
    let mut failures: Vec<String> = Vec::new();
    for attempt in 1..=attempts {
        config.purpose = format!("linux-guest-attempt-{attempt}");
        let boot = launcher::boot(&config).map_err(|e| StartError::Unavailable(e.to_string()))?;
        match report_of(&boot) {
            Ok(report) => {
                let retried = match failures.as_slice() {
                    [] => String::new(),
                    _ => format!("; attempt {attempt} of {attempts}, after: {}", failures.join("; ")),
                };
                return from_report(report, guest, &boot, &retried);
            }
            Err((why, final_word)) => {
                failures.push(why);
                if final_word {
                    break;
                }
            }
        }
    }
    let boots = failures.len();
    Err(StartError::Unavailable(format!(
        "the Linux guest sent no report in {boots} boot{} ({})",
        if boots == 1 { "" } else { "s" },
        failures.join("; ")
    )))
}

/// A plain Linux guest's boot: its kernel, and the runner as the initramfs's init.
fn plain_guest(
    guest: &LinuxGuest,
    init: &[u8],
    file: &std::fs::File,
    initramfs: &Path,
) -> Result<QemuConfig, StartError> {
    let kernel = match &guest.kernel {
        GuestKernel::Path(p) if p.is_file() => p.clone(),
        GuestKernel::Path(p) => {
            return Err(StartError::Argument(format!(
                "the guest kernel {} is not a file",
                p.display()
            )));
        }
        GuestKernel::Debian => super::image::named_or_in_target_dirs(
            KERNEL_VARIABLE,
            KERNEL_IN_TARGET_DIR,
            "`cargo xtask guest-kernel` fetches Debian's cloud kernel with apt-get download",
        )?,
    };
    crate::guest::initramfs::write(&mut std::io::BufWriter::new(file), init)
        .map_err(|e| StartError::Unavailable(format!("writing the initramfs: {e}")))?;
    Ok(config(guest, &kernel, initramfs))
}

/// Xen's boot with Debian's Linux as its PV dom0: the dom0's initramfs holds
/// the runner as its init, Xen's toolstack, the probe kernel, and the `xl`
/// environment it runs as a one-environment matrix.
fn xen_dom0(
    guest: &LinuxGuest,
    dom0: &XenDom0,
    probe_kernel: Option<&Path>,
    init: &[u8],
    file: &std::fs::File,
    initramfs: &Path,
) -> Result<(QemuConfig, xen::Modules), StartError> {
    let hypervisor = xen::find(&dom0.xen.hypervisor)?;
    let (kernel, root) = xen::find_dom0()?;
    let image = super::image::find(probe_kernel)?;
    let image = crate::input_file::read_bytes(&image, super::image::IMAGE_LIMIT)
        .map_err(|e| StartError::Unavailable(format!("reading the probe kernel {}: {e}", image.display())))?;
    let matrix = dom0.domu.matrix(&dom0.runs, &format!("/{DOM0_DOMU_KERNEL}"));
    let mut files = vec![(DOM0_PROBE_KERNEL, image.as_slice()), (DOM0_MATRIX, matrix.as_bytes())];
    // A Linux domU's kernel: Debian's is the dom0's own bzImage.
    let domu_kernel = match &dom0.domu.linux {
        None => None,
        Some(GuestKernel::Path(p)) => Some(p.clone()),
        Some(GuestKernel::Debian) => Some(
            Some(kernel.with_file_name("vmlinuz"))
                .filter(|p| p.is_file())
                .unwrap_or(kernel.clone()),
        ),
    };
    let domu_kernel = domu_kernel
        .map(|p| {
            crate::input_file::read_bytes(&p, super::image::IMAGE_LIMIT)
                .map_err(|e| StartError::Unavailable(format!("reading the domU's kernel {}: {e}", p.display())))
        })
        .transpose()?;
    if let Some(bytes) = &domu_kernel {
        files.push((DOM0_DOMU_KERNEL, bytes));
    }
    let extra = crate::guest::initramfs::Extra {
        tree: Some(&root),
        files,
    };
    crate::guest::initramfs::write_with(&mut std::io::BufWriter::new(file), init, &extra)
        .map_err(|e| StartError::Unavailable(format!("writing the dom0's initramfs: {e}")))?;
    let words = format!(
        "console=hvc0 panic=-1 quiet cryptomgr.notests {} {} run --matrices /{DOM0_MATRIX} --env {} --kernel /{DOM0_PROBE_KERNEL}",
        crate::guest::dom0::WORD,
        crate::guest::ARGUMENTS_AFTER,
        dom0.runs
    );
    let modules = xen::dom0_modules(&kernel, &words, initramfs)
        .map_err(|e| StartError::Unavailable(format!("preparing Xen's modules: {e}")))?;
    let cpu = guest.cpu.clone().unwrap_or_else(|| match guest.accel {
        Accel::Tcg => xen::DOM0_TCG_CPU.to_owned(),
        Accel::Kvm => xen::default_cpu(Accel::Kvm).to_owned(),
    });
    let config = QemuConfig {
        notes: vec![format!("the dom0 runs: {}", dom0.runs)],
        ..serial_config(
            guest,
            QemuConfig::new(
                hypervisor,
                guest.accel,
                xen::command_line(&xen::DOM0_COMMAND_LINE, &dom0.xen),
            ),
            modules.initrd.clone(),
            cpu,
            false,
        )
    };
    Ok((config, modules))
}

fn from_report(report: Report, guest: &LinuxGuest, boot: &Boot, retried: &str) -> Result<ReportedExecutor, StartError> {
    ReportedExecutor::new(
        report,
        "the Linux guest",
        format!(
            "Linux guest under QEMU ({}, -M {}), one boot for every case ({} ms{retried})",
            guest.accel.name(),
            guest.machine.name(),
            boot.wall.as_millis()
        ),
    )
}

/// The boot: the kernel, its initramfs, ttyS0 as the console, and the
/// runner's arguments after `--`.
fn config(guest: &LinuxGuest, kernel: &Path, initramfs: &Path) -> QemuConfig {
    // `cryptomgr.notests`: the kernel's crypto self-tests cost about 0.45 s
    // of a TCG boot (measured under -icount), and nothing in the guest uses
    // the kernel's crypto.
    let cmdline = format!(
        "console=ttyS0 panic=-1 quiet cryptomgr.notests {} run --label {GUEST_LABEL}",
        crate::guest::ARGUMENTS_AFTER
    );
    let cpu = guest.cpu.clone().unwrap_or_else(|| match guest.accel {
        Accel::Tcg => "max".to_owned(),
        Accel::Kvm => "host".to_owned(),
    });
    // Under TCG the guest's clock follows its instructions (16 ns each), not
    // the host's: a host whose CPUs are busy elsewhere then cannot starve the
    // guest's timers, which otherwise fire late and several periods at once
    // (the task clock's self-check failed so under load, and passed 8 of 8
    // with this). It costs about 0.9 s of boot.
    let icount = guest.accel == Accel::Tcg;
    serial_config(
        guest,
        QemuConfig::new(kernel, guest.accel, cmdline),
        initramfs.as_os_str().to_owned(),
        cpu,
        icount,
    )
}

/// `base` (the image and its command line) as `guest` boots it: its
/// `initrd`, the serial console, its machine, `cpu`, memory, vCPUs and
/// deadline, instruction counting where asked ([`ICOUNT`]), and its extra
/// arguments last.
fn serial_config(
    guest: &LinuxGuest,
    base: QemuConfig,
    initrd: std::ffi::OsString,
    cpu: String,
    icount: bool,
) -> QemuConfig {
    let mut extra_args: Vec<std::ffi::OsString> = vec!["-smp".into(), guest.vcpus.to_string().into()];
    if icount {
        extra_args.extend(ICOUNT.map(Into::into));
    }
    extra_args.extend(guest.extra_args.iter().map(Into::into));
    QemuConfig {
        initrd: Some(initrd),
        console: ConsolePort::Serial,
        machine: guest.machine,
        cpu: Some(cpu),
        memory_mib: guest.memory_mib,
        timeout: guest.deadline,
        extra_args,
        ..base
    }
}

/// The guest's report, or why there is none, with what QEMU and the guest
/// said; `Err((why, true))` where the guest's runner itself said why (its
/// `error:` line), which another boot would only repeat.
fn report_of(boot: &Boot) -> Result<Report, (String, bool)> {
    let said = boot
        .lines
        .iter()
        .rev()
        .find(|l| l.starts_with("error: "))
        .map(|l| l.trim_start_matches("error: ").to_owned());
    let text = crate::guest::report_stream::read(boot.lines.iter().map(String::as_str)).map_err(|e| {
        if let Some(said) = &said {
            return (format!("{e}; the guest's runner said: {said}"), true);
        }
        let last = boot.lines.iter().rev().find(|l| !l.trim().is_empty());
        let kvm = boot
            .stderr
            .contains("KVM internal error")
            .then_some("; this host's KVM cannot run a Linux guest (QEMU: KVM internal error, emulation failure)");
        let why = format!(
            "{e}; the boot ended {:?} after {} ms{}{}",
            boot.ending,
            boot.elapsed.as_millis(),
            last.map_or(String::new(), |l| format!("; the guest's last line: {l:?}")),
            kvm.unwrap_or_default()
        );
        (why, false)
    })?;
    crate::report::json::parse("the Linux guest's report", &text).map_err(|e| (e.to_string(), false))
}

/// The static runner a guest or a remote machine gets, and its bytes (see
/// [`crate::guest::static_runner`]): this executable where it is static (a
/// `cargo xtask dist` build carries itself), else `$PMUC_GUEST_RUNNER`, else
/// the dist build under a target directory.
pub(crate) fn runner_to_carry() -> Result<(PathBuf, Vec<u8>), StartError> {
    if let Ok(me) = std::env::current_exe()
        && let Ok(bytes) = crate::guest::static_runner(&me)
    {
        return Ok((me, bytes));
    }
    let runner = super::image::named_or_in_target_dirs(
        RUNNER_VARIABLE,
        RUNNER_IN_TARGET_DIR,
        "`cargo xtask dist` builds the static runner",
    )?;
    let bytes = crate::guest::static_runner(&runner).map_err(StartError::Unavailable)?;
    Ok((runner, bytes))
}
