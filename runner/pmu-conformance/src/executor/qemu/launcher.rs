//! Booting the probe kernel under QEMU, and what came back: the console
//! lines, how the guest exited, whether it had to be killed, how long it took.
//!
//! [`boot`] runs `qemu-system-x86_64` with the flags verified for the probe
//! kernel on QEMU 7.2 (Debian bookworm's), TCG and nested KVM:
//!
//! ```text
//! -M microvm -accel kvm -cpu host,-arch-capabilities   (or -M pc -accel tcg)
//! -m 128M -display none -no-reboot -nodefaults
//! -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04
//! -kernel <image> -append <cmdline>
//! ```
//!
//! - The console is port 0xE9 (`-debugcon stdio`): the guest's stdout is a
//!   pipe read line by line, each line timed as it arrives. `-nodefaults`
//!   leaves the guest no UART (the kernel then skips COM1) and no VGA, which
//!   halves a TCG boot under SeaBIOS.
//! - Plain `-cpu host` aborts QEMU on nested KVM hosts ("failed to set MSR
//!   0x10a", the ARCH_CAPABILITIES MSR), hence `-arch-capabilities`.
//! - isa-debug-exit makes QEMU exit with `(code << 1) | 1`; exit status 0
//!   means the guest never wrote it (under `-no-reboot`, a triple fault or a
//!   shutdown ends QEMU with 0). See [`Exit`].
//! - Nothing waits forever: past [`QemuConfig::timeout`] QEMU is killed and
//!   the [`Boot`] says `timed_out`, with whatever the guest printed.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::vocabulary::Accel;

/// The QEMU binary, found on PATH.
pub const QEMU: &str = "qemu-system-x86_64";

/// Where `cargo xtask kernel` leaves the image, relative to the target directory.
pub const IMAGE_IN_TARGET_DIR: &str = "x86_64-unknown-none/release/probe-kernel";

/// The QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// No firmware, no PCI: the fastest boot (tens of milliseconds).
    Microvm,
    /// i440FX with SeaBIOS: the classic PC, with a PIT the kernel can calibrate against.
    Pc,
    /// Q35 with SeaBIOS.
    Q35,
}

impl Machine {
    fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// The probe kernel's ELF (see [`IMAGE_IN_TARGET_DIR`]).
    pub image: PathBuf,
    pub accel: Accel,
    pub machine: Machine,
    /// QEMU's `-cpu` model; `None` is TCG's default or, under KVM, the host's
    /// CPU (`host,-arch-capabilities`).
    pub cpu: Option<String>,
    /// The guest's command line: the plan (`pmuc=…`) and `pmuc.watchdog=`.
    pub cmdline: String,
    /// How long QEMU may run before it is killed.
    pub timeout: Duration,
    /// Guest memory, MiB.
    pub memory_mib: u32,
}

impl QemuConfig {
    /// The verified configuration for `accel`: microvm under KVM, pc under
    /// TCG, 128 MiB, and a 60 s timeout (twice the kernel's default watchdog).
    pub fn new(image: impl Into<PathBuf>, accel: Accel, cmdline: impl Into<String>) -> QemuConfig {
        QemuConfig {
            image: image.into(),
            accel,
            machine: match accel {
                Accel::Kvm => Machine::Microvm,
                Accel::Tcg => Machine::Pc,
            },
            cpu: None,
            cmdline: cmdline.into(),
            timeout: Duration::from_secs(60),
            memory_mib: 128,
        }
    }

    /// QEMU's arguments for this configuration.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("-M");
        push(self.machine.name());
        push("-accel");
        push(self.accel.name());
        let cpu = match (self.accel, &self.cpu) {
            (_, Some(cpu)) => Some(cpu.as_str()),
            (Accel::Kvm, None) => Some("host,-arch-capabilities"),
            (Accel::Tcg, None) => None,
        };
        if let Some(cpu) = cpu {
            push("-cpu");
            push(cpu);
        }
        push("-m");
        push(&format!("{}M", self.memory_mib));
        for a in [
            "-display",
            "none",
            "-no-reboot",
            "-nodefaults",
            "-debugcon",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ] {
            push(a);
        }
        args.push(self.image.clone().into_os_string());
        args.push("-append".into());
        args.push(self.cmdline.clone().into());
        args
    }

    /// The command as a shell would take it, for messages and reproduction.
    pub fn command_line(&self) -> String {
        let quote = |a: &OsString| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || ";&|<>()$`'\"\\*?".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        };
        std::iter::once(QEMU.to_string())
            .chain(self.args().iter().map(quote))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How QEMU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The guest wrote this code to isa-debug-exit (QEMU status `(code << 1) | 1`).
    /// The probe kernel writes 0 after its last record and 1 on every fatal path.
    Guest(u32),
    /// QEMU exited 0: the guest stopped without reaching isa-debug-exit (a
    /// triple fault or a shutdown under `-no-reboot`). Never a pass.
    NoDebugExit,
    /// QEMU failed on its own: an even status, or status 1 with an error
    /// (not a warning) on its stderr, as kvm-unit-tests tells them apart.
    Qemu(i32),
    /// Killed by this signal: by us at the timeout, or by something else.
    Signal(i32),
}

/// One boot's results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// The console (port 0xE9) line by line, without line endings.
    pub lines: Vec<String>,
    pub exit: Exit,
    /// QEMU ran past the timeout and was killed.
    pub timed_out: bool,
    /// From spawning QEMU to the last console line (to its exit, where the
    /// guest printed nothing).
    pub wall: Duration,
    /// What QEMU wrote to stderr: its warnings and errors.
    pub stderr: String,
}

impl Boot {
    /// The guest's isa-debug-exit code, where it reached one.
    pub fn guest_code(&self) -> Option<u32> {
        match self.exit {
            Exit::Guest(code) => Some(code),
            _ => None,
        }
    }
}

/// Why QEMU could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(
        "{QEMU} not found on PATH: install Debian's qemu-system-x86 \
         (`apt-get install --no-install-recommends qemu-system-x86`; `cargo xtask test` does this)"
    )]
    QemuNotFound,
    #[error("the probe kernel image {} does not exist: build it with `cargo xtask kernel`", .0.display())]
    ImageMissing(PathBuf),
    #[error("KVM was asked for, but /dev/kvm is missing or not accessible to this user: boot with TCG")]
    KvmUnusable,
    #[error("could not start {QEMU}: {0}")]
    Spawn(#[source] io::Error),
    #[error("lost track of {QEMU}: {0}")]
    Wait(#[source] io::Error),
}

/// Whether this process can run KVM guests: `/dev/kvm` opens read-write.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// How often the wait for QEMU looks at the clock.
const POLL: Duration = Duration::from_millis(1);

/// Boots the image and collects the console until QEMU exits or the
/// timeout kills it.
pub fn boot(config: &QemuConfig) -> Result<Boot, BootError> {
    if !config.image.is_file() {
        return Err(BootError::ImageMissing(config.image.clone()));
    }
    if config.accel == Accel::Kvm && !kvm_usable() {
        return Err(BootError::KvmUnusable);
    }
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(config.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BootError::QemuNotFound,
            _ => BootError::Spawn(e),
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let console = thread::spawn(move || read_lines(stdout));
    let errors = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let (status, timed_out) = wait(&mut child, start + config.timeout)?;
    let ended = Instant::now();
    // QEMU has exited, so both pipes are at end of file.
    let timed_lines = console.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    let wall = timed_lines.last().map_or(ended, |(at, _)| *at) - start;
    Ok(Boot {
        lines: timed_lines.into_iter().map(|(_, line)| line).collect(),
        exit: decode(status, &stderr),
        timed_out,
        wall,
        stderr,
    })
}

/// Waits for QEMU until `deadline`, then kills it. Returns its status and
/// whether it was killed.
fn wait(child: &mut Child, deadline: Instant) -> Result<(ExitStatus, bool), BootError> {
    loop {
        if let Some(status) = child.try_wait().map_err(BootError::Wait)? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            // It may have exited in between; either way, wait reaps it.
            let _ = child.kill();
            return Ok((child.wait().map_err(BootError::Wait)?, true));
        }
        thread::sleep(POLL);
    }
}

/// Reads the console to end of file, each line with the moment it arrived.
/// Bytes that are not UTF-8 are replaced rather than lost.
fn read_lines(stdout: impl Read) -> Vec<(Instant, String)> {
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                lines.push((Instant::now(), line.trim_end_matches(['\n', '\r']).to_string()));
            }
        }
    }
    lines
}

fn decode(status: ExitStatus, stderr: &str) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Exit::NoDebugExit,
        (Some(1), _) if qemu_error(stderr) => Exit::Qemu(1),
        (Some(code), _) if code & 1 == 1 => Exit::Guest((code >> 1) as u32),
        (Some(code), _) => Exit::Qemu(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Signal(0),
    }
}

/// QEMU reports its own failures as `qemu-system-x86_64: <message>` (its
/// loaders as `qemu: <message>`), and its warnings as `…: warning: …`.
fn qemu_error(stderr: &str) -> bool {
    stderr.lines().any(|line| {
        line.strip_prefix(QEMU)
            .or_else(|| line.strip_prefix("qemu"))
            .and_then(|rest| rest.strip_prefix(": "))
            .is_some_and(|message| !message.starts_with("warning:") && !message.contains(": warning:"))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn exit_statuses_decode_as_kvm_unit_tests_reads_them() {
        assert_eq!(decode(status(1), ""), Exit::Guest(0));
        assert_eq!(decode(status(3), ""), Exit::Guest(1));
        assert_eq!(decode(status(0), ""), Exit::NoDebugExit);
        assert_eq!(decode(status(2), ""), Exit::Qemu(2));
        assert_eq!(decode(ExitStatus::from_raw(9), ""), Exit::Signal(9));
    }

    #[test]
    fn status_1_is_qemu_failing_when_qemu_said_so() {
        let kvm = "qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: Permission denied\n";
        assert_eq!(decode(status(1), kvm), Exit::Qemu(1));
        let warning = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.80000001H:ECX.svm\n";
        assert_eq!(decode(status(1), warning), Exit::Guest(0));
        let option_warning = "qemu-system-x86_64: -cpu host: warning: something\n";
        assert_eq!(decode(status(1), option_warning), Exit::Guest(0));
        // What QEMU 7.2 says when -kernel is not a kernel.
        assert_eq!(decode(status(1), "qemu: invalid kernel header\n"), Exit::Qemu(1));
    }

    #[test]
    fn the_command_line_has_the_verified_flags() {
        let config = QemuConfig::new("/tmp/probe-kernel", Accel::Kvm, "pmuc=k/a,ovf-ack pmuc.watchdog=5");
        assert_eq!(
            config.command_line(),
            "qemu-system-x86_64 -M microvm -accel kvm -cpu host,-arch-capabilities -m 128M -display none \
             -no-reboot -nodefaults -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /tmp/probe-kernel -append 'pmuc=k/a,ovf-ack pmuc.watchdog=5'"
        );
        let tcg = QemuConfig::new("/tmp/probe-kernel", Accel::Tcg, "pmuc=k/a,ovf-ack");
        assert!(
            tcg.command_line()
                .starts_with("qemu-system-x86_64 -M pc -accel tcg -m 128M ")
        );
    }

    #[test]
    fn a_missing_image_is_named() {
        let config = QemuConfig::new("/nonexistent/probe-kernel", Accel::Tcg, "");
        let err = boot(&config).unwrap_err();
        assert!(matches!(err, BootError::ImageMissing(_)));
        assert!(err.to_string().contains("cargo xtask kernel"), "{err}");
    }

    #[test]
    fn console_lines_lose_their_endings_and_keep_bad_bytes_visible() {
        let lines = read_lines(&b"one\r\ntwo\n\xffthree"[..]);
        let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(text, ["one", "two", "\u{fffd}three"]);
    }
}
