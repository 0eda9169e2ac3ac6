//! The runner as the init of a Linux PV dom0 under Xen (`qemu-xen-domu`
//! environments): before the run, it starts Xen's toolstack, so that the
//! run's `xl` environment can create domUs.
//!
//! The dom0's initramfs holds the toolstack from Debian's packages (no
//! shell, no Python, no init scripts), so this does what Debian's
//! `xencommons` script would: it loads the kernel's Xen device modules (all
//! that the initramfs holds under the running kernel's `drivers/xen`),
//! mounts xenfs and devpts, makes the folders the toolstack writes in, and
//! starts `xenstored`, `xen-init-dom0` and `xenconsoled`, in that order
//! (guest-boots.md, "A PVH domU through a Linux PV dom0": without devpts or
//! `/var/run/xen`, `xl create` waits 10 s for a console and fails). The
//! toolstack's folder joins `PATH`, where the `xl` executor finds `xl`.
//!
//! Each step that fails is printed and the run goes on: the `xl`
//! environment then cannot start, and says why in the report.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The kernel command-line word that makes init start the toolstack; only
/// the `qemu-xen-domu` launcher adds it.
pub const WORD: &str = "pmuc.xen-dom0";

/// The folders Xen's toolstack writes in (Debian's `XEN_RUN_DIR`,
/// `XEN_LIB_DIR`, `XEN_LOG_DIR`, and xenstored's own).
const FOLDERS: [&str; 7] = [
    "/var/run/xen",
    "/var/run/xenstored",
    "/var/lib/xen",
    "/var/lib/xenstored",
    "/var/log/xen",
    crate::executor::xl::linux_domu::CONSOLE_LOGS,
    "/dev/pts",
];

/// How long each toolstack program may take to start (or, for
/// `xen-init-dom0`, to finish).
const START: Duration = Duration::from_secs(30);

/// Whether the kernel command line asks for the toolstack.
pub fn wanted(cmdline: &str) -> bool {
    cmdline.split_ascii_whitespace().any(|w| w == WORD)
}

/// Starts the toolstack, printing each step that fails.
pub fn start_toolstack() {
    let step = |what: &str, result: Result<(), String>| {
        if let Err(e) = result {
            println!("pmu-conformance dom0: {what}: {e}");
        }
    };
    for folder in FOLDERS {
        step(folder, std::fs::create_dir_all(folder).map_err(|e| e.to_string()));
    }
    step(
        "mounting devpts",
        super::init::mount("devpts", "/dev/pts", "devpts").map_err(|e| e.to_string()),
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let modules = Path::new("/lib/modules")
        .join(release.trim())
        .join("kernel/drivers/xen");
    // Every module the initramfs holds there (`cargo xtask xen` puts in
    // xen-privcmd, xenfs, xen-evtchn, xen-gntdev and xen-gntalloc; none
    // needs another), in name order.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&modules)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "ko"));
    files.sort();
    if files.is_empty() {
        println!("pmu-conformance dom0: no Xen modules in {}", modules.display());
    }
    for module in &files {
        step(&module.display().to_string(), load_module(module));
    }
    step(
        "mounting xenfs",
        super::init::mount("xenfs", "/proc/xen", "xenfs").map_err(|e| e.to_string()),
    );
    let Some(bin) = toolstack_folder() else {
        println!("pmu-conformance dom0: no /usr/lib/xen-*/bin: the initramfs holds no toolstack");
        return;
    };
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    // SAFETY: init is single-threaded here, before the run starts any thread.
    unsafe { std::env::set_var("PATH", &path) };
    for (program, args) in [
        ("xenstored", &["--pid-file", "/var/run/xenstored.pid"][..]),
        ("xen-init-dom0", &[][..]),
        // Each guest's console to a file, where a Linux domU's report arrives.
        (
            "xenconsoled",
            &[
                "--pid-file",
                "/var/run/xenconsoled.pid",
                "--log=guest",
                "--log-dir",
                crate::executor::xl::linux_domu::CONSOLE_LOGS,
            ][..],
        ),
    ] {
        step(program, run(&bin.join(program), args));
    }
}

/// The toolstack's `usr/lib/xen-<release>/bin`.
fn toolstack_folder() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("xen-")))
        .map(|p| p.join("bin"))
        .find(|p| p.is_dir())
}

/// Loads a kernel module from its file, with no parameters.
fn load_module(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let none = CString::default();
    use std::os::fd::AsRawFd;
    // SAFETY: finit_module reads the open file and a NUL-terminated string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), none.as_ptr(), 0) };
    match rc {
        0 => Ok(()),
        _ => match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            e => Err(format!("finit_module {}: {e}", path.display())),
        },
    }
}

/// Runs a toolstack program to its exit (the daemons fork and exit once
/// they serve), within [`START`], printing what it said.
fn run(program: &Path, args: &[&str]) -> Result<(), String> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    let left =
        crate::supervised::run_leaving_daemons(command, START).map_err(|e| format!("{}: {e}", program.display()))?;
    print!("{}{}", left.stdout, left.stderr);
    match left.end {
        crate::supervised::End::Exited(0) => Ok(()),
        end => Err(format!("{} ended {end:?}", program.display())),
    }
}
