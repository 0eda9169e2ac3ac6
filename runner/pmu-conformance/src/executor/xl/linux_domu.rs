//! From a Xen dom0: a Linux domU carrying the runner, so that the linux
//! cases (rr's probe among them) run inside a Xen guest, against its vPMU.
//!
//! The runner packs itself into an initramfs (as for a QEMU Linux guest,
//! [`crate::guest::initramfs`]), creates one domain with the environment's
//! kernel and that ramdisk (`xl create`), and waits for the domain to go.
//! Inside, the runner is PID 1 and streams its typed report over `hvc0`,
//! the domU's PV console, which xenconsoled writes to
//! `/var/log/xen/console/guest-<name>.log` when it runs with `--log=guest`
//! (the `qemu-xen-domu` dom0 starts it so). A domain still running at the
//! environment's deadline is destroyed; a report that did not arrive whole
//! is an environment that cannot start, with the console's last line.

use std::path::Path;
use std::time::{Duration, Instant};

use super::config::{self, Domain};
use crate::environment::XlDomain;
use crate::executor::StartError;
use crate::executor::reported::ReportedExecutor;

/// Names the Linux domU's kernel for `kernel: debian`, ahead of the search
/// (Debian's generic kernel, which `cargo xtask xen` fetches for the dom0).
pub const KERNEL_VARIABLE: &str = "PMUC_XEN_DOMU_KERNEL";
/// Where xenconsoled writes a guest's console with `--log=guest` (its default `--log-dir`).
pub const CONSOLE_LOGS: &str = "/var/log/xen/console";
/// What each line of the domU's console carries when it is printed here.
const DOMU_PREFIX: &str = "domU| ";
/// How often the executor asks whether the domain is still there.
const POLL: Duration = Duration::from_millis(500);
/// The longest the executor waits for xenconsoled to finish a shut-down
/// domain's console.
const DRAIN: Duration = Duration::from_secs(10);

/// Creates the domain, waits for it, and keeps every case's outcome.
pub fn boot(domain: &XlDomain, kernel: &Path) -> Result<ReportedExecutor, StartError> {
    let unavailable = StartError::Unavailable;
    if !kernel.is_file() {
        return Err(StartError::Argument(format!(
            "the domU kernel {} is not a file",
            kernel.display()
        )));
    }
    let (_, init) = crate::executor::qemu::linux_guest::runner_to_carry()?;
    let dir = tempfile::Builder::new()
        .prefix("pmuc-xl-linux-")
        .tempdir()
        .map_err(|e| unavailable(format!("creating the domain's folder: {e}")))?;
    let initramfs = dir.path().join("initramfs");
    let file = std::fs::File::create(&initramfs).map_err(|e| unavailable(format!("creating the initramfs: {e}")))?;
    crate::guest::initramfs::write(&mut std::io::BufWriter::new(file), &init)
        .map_err(|e| unavailable(format!("writing the initramfs: {e}")))?;
    let name = format!("pmuc-{}-linux", std::process::id());
    let cmdline = format!(
        "console=hvc0 panic=-1 quiet cryptomgr.notests {} run --label {}",
        crate::guest::ARGUMENTS_AFTER,
        crate::executor::qemu::linux_guest::GUEST_LABEL
    );
    let text = config::render(&Domain {
        name: &name,
        guest: domain.guest,
        kernel,
        ramdisk: Some(&initramfs),
        cmdline: &cmdline,
        memory_mib: domain.memory_mib,
        vcpus: domain.vcpus,
        preserve: true,
    })
    .map_err(|e| unavailable(e.to_string()))?;
    let cfg = dir.path().join("domain.cfg");
    std::fs::write(&cfg, text).map_err(|e| unavailable(format!("writing the domain's configuration: {e}")))?;
    let log = Path::new(CONSOLE_LOGS).join(format!("guest-{name}.log"));
    let _ = std::fs::remove_file(&log);
    let start = Instant::now();
    super::xl(&["create", "-q", &cfg.to_string_lossy()]).map_err(unavailable)?;
    let ended = loop {
        std::thread::sleep(POLL);
        match state(&name) {
            Err(why) if super::xl(&["domid", &name]).is_err() => break format!("its domain went ({why})"),
            // `xl list` failed, yet the domain is there: ask again.
            Err(_) => {}
            Ok(s) if s.contains('c') => break "it crashed".to_owned(),
            Ok(s) if s.contains('s') => break "it powered off".to_owned(),
            Ok(_) => {}
        }
        if start.elapsed() >= domain.deadline {
            break "it was still running at its deadline, so it was destroyed".to_owned();
        }
    };
    let wall = start.elapsed();
    // The domain is kept until xenconsoled has written the last of its
    // console: until the log stops growing, for at most DRAIN.
    let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    let drained = Instant::now();
    let mut last = size();
    while drained.elapsed() < DRAIN {
        std::thread::sleep(POLL);
        let now = size();
        if now == last {
            break;
        }
        last = now;
    }
    let _ = super::xl(&["destroy", &name]);
    let console = crate::input_file::read_bytes(&log, crate::supervised::LEFT_LIMIT).map_err(|e| {
        unavailable(format!(
            "the Linux domU's console {} cannot be read ({e}): xenconsoled must run with --log=guest; {ended}",
            log.display()
        ))
    })?;
    let console = String::from_utf8_lossy(&console);
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    // The domU's console, on this runner's own, where a dom0 under QEMU
    // keeps it with the host's consoles; its report's frames are counted,
    // not printed, so that they never mix with this runner's own report.
    let mut frames = 0;
    for line in &lines {
        match pmu_kernel_checks::protocol::decode(line) {
            Some(_) => frames += 1,
            None => println!("{DOMU_PREFIX}{line}"),
        }
    }
    println!("{DOMU_PREFIX}({frames} report frames)");
    let report = crate::guest::report_stream::read(lines.iter().copied())
        .map_err(|e| e.to_string())
        .and_then(|text| crate::report::json::parse("the Linux domU's report", &text).map_err(|e| e.to_string()))
        .map_err(|why| {
            unavailable(format!(
                "the Linux domU sent no report ({why}); {ended} after {} ms; its last line: {:?}",
                wall.as_millis(),
                lines.iter().rev().find(|l| !l.trim().is_empty()).unwrap_or(&"")
            ))
        })?;
    ReportedExecutor::new(
        report,
        "the Linux domU",
        format!(
            "Linux as a {} domU (xl create) carrying the runner, one domain for every case ({} ms)",
            domain.guest.name(),
            wall.as_millis()
        ),
    )
}

/// The domain's state in `xl list NAME` (`r-----`, `---s--`, ...), or
/// what `xl` said.
fn state(name: &str) -> Result<String, String> {
    let list = super::xl(&["list", name])?;
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(4))
        .map(str::to_owned)
        .ok_or_else(|| format!("`xl list {name}` has no row for it: {list:?}"))
}
