//! The runner as a Linux guest's PID 1.
//!
//! There is no shell and no other program in the guest. Init mounts what
//! the linux cases read (proc, sysfs, devtmpfs, a tmpfs), gives the serial
//! console a size (it has none, and a table would render one column wide),
//! runs the suites with the arguments that follow `--` on the kernel
//! command line, writes the report to the console as framed chunks, and
//! powers the guest off. A failure anywhere is printed and still ends in a
//! power-off, so the host never waits on a guest that gave up.

use std::ffi::CString;

use super::{ARGUMENTS_AFTER, report_stream};

/// Where the guest's run writes its report before it is streamed.
const REPORT: &str = "/tmp/report.json";

/// Whether this process is the init of a guest.
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Runs as init: never returns.
pub fn run(main: impl FnOnce(Vec<String>) -> std::process::ExitCode) -> ! {
    for (source, target, fs) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ] {
        if let Err(e) = mount(source, target, fs) {
            println!("pmu-conformance init: mounting {target}: {e}");
        }
    }
    set_console_size(50, 160);
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if super::dom0::wanted(&cmdline) {
        super::dom0::start_toolstack();
    }
    let mut args: Vec<String> = vec!["pmu-conformance".to_owned()];
    args.extend(
        cmdline
            .split_whitespace()
            .skip_while(|w| *w != ARGUMENTS_AFTER)
            .skip(1)
            .map(str::to_owned),
    );
    println!("pmu-conformance init: running {}", args[1..].join(" "));
    let status = report_stream::run_then_stream(main, args, std::path::Path::new(REPORT));
    println!("pmu-conformance init: the run ended ({status:?}); powering off");
    // SAFETY: tcdrain, sync and reboot take no pointers; as PID 1 in a guest
    // that is done, powering off is the intent. tcdrain waits until the
    // console has sent what was written to it (a Xen PV console's last
    // frames would otherwise die with the domain).
    unsafe {
        libc::tcdrain(1);
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    // reboot(2) returns only on failure; init must not exit (the kernel panics).
    loop {
        std::thread::park();
    }
}

pub(super) fn mount(source: &str, target: &str, fs: &str) -> std::io::Result<()> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    let (source, target, fs) = (c(source), c(target), c(fs));
    // SAFETY: NUL-terminated strings that outlive the call; no data.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_console_size(rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe { libc::ioctl(1, libc::TIOCSWINSZ, &size) };
}
