//! Booting the probe kernel under QEMU, supervised, and what came back: the
//! console lines, how the guest exited, how the boot ended, how long it took.
//!
//! [`boot`] runs `qemu-system-x86_64` (or `$PMUC_QEMU`) with the flags
//! verified for the probe kernel on QEMU 7.2 (Debian bookworm's), TCG and
//! nested KVM:
//!
//! ```text
//! -M microvm -accel kvm -cpu host,-arch-capabilities   (or -M pc -accel tcg [-cpu MODEL])
//! -m 128M -display none -no-reboot -nodefaults
//! -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04
//! -kernel <image> -append <cmdline>
//! ```
//!
//! - The console is port 0xE9 (`-debugcon stdio`): the guest's stdout is a
//!   pipe read line by line, each line timed as it arrives. Or, where the
//!   configuration asks ([`QemuConfig::memory_console`], as the qemu
//!   environments do), guest RAM is a shared file and the kernel writes its
//!   console there (`pmuc.memcon=`, [`super::memory_console`]), read at each
//!   poll: no VM exit per byte. `-nodefaults`
//!   leaves the guest no UART (the kernel then skips COM1) and no VGA, which
//!   halves a TCG boot under SeaBIOS.
//! - Plain `-cpu host` aborts QEMU on nested KVM hosts ("failed to set MSR
//!   0x10a", the ARCH_CAPABILITIES MSR), hence `-arch-capabilities`.
//! - isa-debug-exit makes QEMU exit with `(code << 1) | 1`; exit status 0
//!   means the guest never wrote it (under `-no-reboot`, a triple fault or a
//!   shutdown ends QEMU with 0). See [`Exit`].
//!
//! Supervision: nothing outlives its deadline or the runner, and no guest
//! can make the runner wait or grow without bound.
//!
//! - QEMU runs in a process group of its own, with `PR_SET_PDEATHSIG`, so
//!   the runner's death (even `kill -9`) kills it, and killing the group
//!   kills whatever it started. [`kill_every_guest`] ends every live one (the
//!   runner's SIGINT and SIGTERM handling calls it).
//! - One thread polls both pipes and the child. At the deadline the group is
//!   killed; the console is capped at [`CONSOLE_LIMIT`] bytes (a guest that
//!   floods it is killed) and stderr at [`STDERR_LIMIT`]; a process that keeps
//!   the console open after QEMU exits (a wrapper's child) gets
//!   [`PIPE_GRACE`], then the group is killed. Each way of ending is an
//!   [`Ending`] that failure messages name.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::memory_console::{self, MemoryConsole};
use crate::vocabulary::Accel;

/// The QEMU binary, found on PATH.
pub const QEMU: &str = "qemu-system-x86_64";

/// The environment variable that names another QEMU binary (a wrapper, say).
pub const QEMU_VARIABLE: &str = "PMUC_QEMU";

/// The most console output one boot may produce: a plan's records take a
/// few kilobytes; a guest past this is flooding, and is killed.
pub const CONSOLE_LIMIT: usize = 4 << 20;

/// The longest console line kept whole; the rest of a longer one is dropped.
pub const LINE_LIMIT: usize = 64 << 10;

/// How much of QEMU's stderr is kept.
pub const STDERR_LIMIT: usize = 64 << 10;

/// How long the console may stay open after QEMU exits before whatever holds
/// it is killed.
pub const PIPE_GRACE: Duration = Duration::from_millis(300);

/// How often supervision looks at the child and the clock.
const POLL: Duration = Duration::from_millis(10);

/// The QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// No firmware, no PCI: the fastest boot (tens of milliseconds).
    Microvm,
    /// i440FX with SeaBIOS: the classic PC, with a PIT the kernel can calibrate against.
    Pc,
    /// Q35 with SeaBIOS: what a Linux guest boots on (guest-boots.md).
    Q35,
}

/// Where the guest writes what the launcher reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsolePort {
    /// Port 0xE9 (QEMU's debugcon): the probe kernel's.
    DebugPort,
    /// The first serial port (ttyS0): a Linux guest's.
    Serial,
}

impl Machine {
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// The QEMU binary: `$PMUC_QEMU`, else [`QEMU`] on PATH.
    pub program: OsString,
    /// The kernel: the probe kernel's ELF (see `image::find`), a Linux bzImage, or Xen.
    pub image: PathBuf,
    /// QEMU's `-initrd`: an initramfs's path for a Linux kernel; for a
    /// multiboot kernel (Xen) its modules, each `path words`, joined by
    /// commas (see [`super::xen`]).
    pub initrd: Option<OsString>,
    pub console: ConsolePort,
    pub accel: Accel,
    pub machine: Machine,
    /// QEMU's `-cpu` model; `None` is TCG's default or, under KVM, the host's
    /// CPU (`host,-arch-capabilities`).
    pub cpu: Option<String>,
    /// The guest's command line: the plan (`pmuc=…`) and `pmuc.watchdog=`.
    pub cmdline: String,
    /// How long QEMU may run before its process group is killed.
    pub timeout: Duration,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// Arguments added after the verified ones, each one argument (never
    /// split by a shell).
    pub extra_args: Vec<OsString>,
    /// What the boot is for (a case id, `hello`), naming its console file
    /// where consoles are kept ([`keep_consoles_in`]).
    pub purpose: String,
    /// Lines for the kept console, after the command: what the files it
    /// names held, where they do not outlive the boot.
    pub notes: Vec<String>,
    /// The probe kernel's console in guest memory rather than on the debug
    /// port ([`super::memory_console`]), where the guest has the RAM for it.
    pub memory_console: bool,
}

impl QemuConfig {
    /// The verified configuration for `accel`: microvm under KVM, pc under
    /// TCG, 128 MiB, and a 60 s timeout (twice the kernel's default watchdog).
    pub fn new(image: impl Into<PathBuf>, accel: Accel, cmdline: impl Into<String>) -> QemuConfig {
        QemuConfig {
            program: std::env::var_os(QEMU_VARIABLE)
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| QEMU.into()),
            image: image.into(),
            initrd: None,
            console: ConsolePort::DebugPort,
            accel,
            machine: match accel {
                Accel::Kvm => Machine::Microvm,
                Accel::Tcg => Machine::Pc,
            },
            cpu: None,
            cmdline: cmdline.into(),
            timeout: Duration::from_secs(60),
            memory_mib: 128,
            extra_args: Vec::new(),
            purpose: "boot".to_owned(),
            notes: Vec::new(),
            memory_console: false,
        }
    }

    /// QEMU's arguments for this configuration, with the console on the
    /// debug port.
    pub fn args(&self) -> Vec<OsString> {
        self.args_with(None)
    }

    /// QEMU's arguments, with the guest's RAM in `memory`'s file and the
    /// word that tells the kernel to write its console there, where given.
    fn args_with(&self, memory: Option<&MemoryConsole>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("-M");
        match memory {
            Some(_) => push(&format!("{},{}", self.machine.name(), memory_console::backend())),
            None => push(self.machine.name()),
        }
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
        if let Some(memory) = memory {
            args.extend(memory.object_args(self.memory_mib));
        }
        let mut push = |a: &str| args.push(a.into());
        let console = match self.console {
            ConsolePort::DebugPort => "-debugcon",
            ConsolePort::Serial => "-serial",
        };
        for a in [
            "-display",
            "none",
            "-no-reboot",
            "-nodefaults",
            console,
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ] {
            push(a);
        }
        args.push(self.image.clone().into_os_string());
        if let Some(initrd) = &self.initrd {
            args.push("-initrd".into());
            args.push(initrd.clone());
        }
        args.push("-append".into());
        match memory {
            Some(_) => args.push(format!("{} {}", self.cmdline, memory_console::REGION.word()).into()),
            None => args.push(self.cmdline.clone().into()),
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The command as a shell would take it, for messages and reproduction.
    pub fn command_line(&self) -> String {
        self.shell_line(&self.args())
    }

    fn shell_line(&self, args: &[OsString]) -> String {
        let quote = |a: &OsString| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || ";&|<>()$`'\"\\*?".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        };
        std::iter::once(quote(&self.program))
            .chain(args.iter().map(quote))
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
    /// QEMU exited 0 after the guest spoke: the guest stopped without
    /// reaching isa-debug-exit (a triple fault or a shutdown under
    /// `-no-reboot`). Never a pass.
    NoDebugExit,
    /// QEMU failed on its own: an even status, status 1 with an error (not a
    /// warning) on its stderr, as kvm-unit-tests tells them apart, or any
    /// status before the guest printed anything (only a running guest can
    /// write isa-debug-exit, and the probe kernel speaks first).
    Qemu(i32),
    /// Killed by this signal: by us (see [`Ending`]), or by something else.
    Signal(i32),
}

/// Why supervision stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited and its console closed.
    Exited,
    /// The deadline passed; QEMU's process group was killed.
    Deadline,
    /// The guest wrote more than [`CONSOLE_LIMIT`] bytes; the group was killed.
    Flooded,
    /// QEMU exited but something kept its console open past [`PIPE_GRACE`];
    /// the group was killed.
    ConsoleHeld,
}

/// One boot's results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// The console (port 0xE9) line by line, without line endings.
    pub lines: Vec<String>,
    /// When each line arrived, from spawning QEMU.
    pub arrived: Vec<Duration>,
    pub exit: Exit,
    pub ending: Ending,
    /// From spawning QEMU to the last console line (to its exit, where the
    /// guest printed nothing).
    pub wall: Duration,
    /// From spawning QEMU to the end of supervision.
    pub elapsed: Duration,
    /// What QEMU wrote to stderr (its warnings and errors), up to [`STDERR_LIMIT`].
    pub stderr: String,
    /// How much of the console came through guest memory rather than the port.
    pub memory_bytes: usize,
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
    #[error("could not start {}: {error}", .program.to_string_lossy())]
    Spawn {
        program: OsString,
        #[source]
        error: io::Error,
    },
    #[error("lost track of QEMU: {0}")]
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

/// The process groups of every QEMU this process is supervising.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Kills every QEMU (and all it started) that a boot in this process is
/// supervising. Their supervisors then see them die and end their boots.
pub fn kill_every_guest() {
    let live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for &group in live.iter() {
        // SAFETY: a plain kill of a process group we created.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

/// How many boots are being supervised right now.
pub fn live_guests() -> usize {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
}

/// Boots the image and supervises QEMU until it exits, floods, outlives its
/// console or reaches `config.timeout`.
pub fn boot(config: &QemuConfig) -> Result<Boot, BootError> {
    if !config.image.is_file() {
        return Err(BootError::ImageMissing(config.image.clone()));
    }
    if config.accel == Accel::Kvm && !kvm_usable() {
        return Err(BootError::KvmUnusable);
    }
    // Where no file can be made for the guest's RAM, the console stays on
    // the port: slower under a hypervisor that exits per byte, never lost.
    let mut memory = if config.memory_console && config.memory_mib >= memory_console::MIN_MEMORY_MIB {
        MemoryConsole::create(config.memory_mib).ok()
    } else {
        None
    };
    let args = config.args_with(memory.as_ref());
    let start = Instant::now();
    let mut command = Command::new(&config.program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::supervised::own_group_dying_with_us(&mut command);
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound && config.program == QEMU {
            BootError::QemuNotFound
        } else {
            BootError::Spawn {
                program: config.program.clone(),
                error: e,
            }
        }
    })?;
    let group = child.id() as i32;
    LIVE.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(group);
    let result = supervise(&mut child, start, start + config.timeout, memory.as_mut());
    if let Ok(boot) = &result {
        keep_console(config, &config.shell_line(&args), boot);
    }
    // Whatever QEMU left behind in its group goes with it.
    // SAFETY: a plain kill of the process group we created.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    LIVE.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&group);
    result
}

/// Where each boot's console goes, and how many boots have gone there.
static CONSOLES: Mutex<Option<(PathBuf, u32)>> = Mutex::new(None);

/// Keeps every later boot's console, with its command, its ending and
/// QEMU's stderr, as `DIR/<n>-<purpose>.log` (`matrix run`'s artifacts):
/// each line as `[   123 ms] text`, timed from QEMU's start.
pub fn keep_consoles_in(dir: PathBuf) {
    *CONSOLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((dir, 0));
}

fn keep_console(config: &QemuConfig, command: &str, boot: &Boot) {
    let mut consoles = CONSOLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some((dir, count)) = consoles.as_mut() else { return };
    *count += 1;
    let name: String = config
        .purpose
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let path = dir.join(format!("{count:03}-{name}.log"));
    let mut text = format!("# {command}\n");
    for note in &config.notes {
        text.push_str(&format!("# {note}\n"));
    }
    if boot.memory_bytes > 0 {
        text.push_str(&format!(
            "# {} bytes of the console were read from the guest's RAM (pmuc.memcon=, its file removed \
             since); without -object, memory-backend= and that word they go to -debugcon\n",
            boot.memory_bytes
        ));
    }
    text.push_str(&format!(
        "# ended {:?}, exit {:?}, after {} ms\n",
        boot.ending,
        boot.exit,
        boot.elapsed.as_millis()
    ));
    for (line, at) in boot.lines.iter().zip(&boot.arrived) {
        text.push_str(&format!("[{:>6} ms] {line}\n", at.as_millis()));
    }
    if !boot.stderr.is_empty() {
        text.push_str("# QEMU's stderr:\n");
        text.push_str(&boot.stderr);
    }
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("warning: cannot keep the console in {}: {e}", path.display());
    }
}

/// The console, split into timed lines, within [`CONSOLE_LIMIT`] and [`LINE_LIMIT`].
#[derive(Debug, Default)]
struct Console {
    lines: Vec<(Instant, String)>,
    partial: Vec<u8>,
    total: usize,
}

impl Console {
    /// Takes `bytes` as they arrived; false once the guest has flooded.
    fn take(&mut self, bytes: &[u8], at: Instant) -> bool {
        self.total += bytes.len();
        for &b in bytes {
            if b == b'\n' {
                self.end_line(at);
            } else if self.partial.len() < LINE_LIMIT {
                self.partial.push(b);
            }
        }
        self.total <= CONSOLE_LIMIT
    }

    fn end_line(&mut self, at: Instant) {
        let line = String::from_utf8_lossy(&self.partial);
        self.lines.push((at, line.trim_end_matches('\r').to_owned()));
        self.partial.clear();
    }

    /// The lines, a last unterminated one included.
    fn finish(mut self, at: Instant) -> Vec<(Instant, String)> {
        if !self.partial.is_empty() {
            self.end_line(at);
        }
        self.lines
    }
}

/// One pipe being read without blocking.
struct Pipe<R: Read + AsRawFd> {
    reader: Option<R>,
}

impl<R: Read + AsRawFd> Pipe<R> {
    fn new(reader: Option<R>) -> Pipe<R> {
        if let Some(r) = &reader {
            // SAFETY: fcntl on a pipe we own.
            unsafe {
                let flags = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(r.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Pipe { reader }
    }

    fn open(&self) -> bool {
        self.reader.is_some()
    }

    fn pollfd(&self) -> libc::pollfd {
        libc::pollfd {
            fd: self.reader.as_ref().map_or(-1, |r| r.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        }
    }

    /// Reads what is there now (at most a MiB, so a writer that never stops
    /// cannot keep supervision here) into `each`; closes the pipe at end of file.
    fn drain(&mut self, mut each: impl FnMut(&[u8])) {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..64 {
            let Some(reader) = &mut self.reader else { return };
            match reader.read(&mut buf) {
                Ok(0) => self.reader = None,
                Ok(n) => each(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.reader = None,
            }
        }
    }
}

/// Watches `child` and its two pipes until it ends, one way or another.
fn supervise(
    child: &mut Child,
    start: Instant,
    deadline: Instant,
    mut memory: Option<&mut MemoryConsole>,
) -> Result<Boot, BootError> {
    let mut stdout: Pipe<ChildStdout> = Pipe::new(child.stdout.take());
    let mut stderr: Pipe<ChildStderr> = Pipe::new(child.stderr.take());
    let mut console = Console::default();
    // The memory console's lines, apart from the port's until they are
    // merged by arrival (a fault handler may print to the port mid-line).
    let mut in_memory = Console::default();
    let mut errors: Vec<u8> = Vec::new();
    let mut status: Option<(ExitStatus, Instant)> = None;
    let kill_group = |child: &Child| {
        // SAFETY: a plain kill of the process group we created.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    };
    let ending = loop {
        let mut fds = [stdout.pollfd(), stderr.pollfd()];
        // SAFETY: polls two descriptors (-1 entries are ignored).
        unsafe { libc::poll(fds.as_mut_ptr(), 2, POLL.as_millis() as i32) };
        let now = Instant::now();
        let mut flooded = false;
        stdout.drain(|bytes| flooded |= !console.take(bytes, now));
        if let Some(memory) = memory.as_deref_mut() {
            flooded |= memory.drain(|bytes| flooded |= !in_memory.take(bytes, now)) > 0;
        }
        stderr.drain(|bytes| {
            let room = STDERR_LIMIT.saturating_sub(errors.len());
            errors.extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
        if flooded {
            kill_group(child);
            break Ending::Flooded;
        }
        if status.is_none()
            && let Some(s) = child.try_wait().map_err(BootError::Wait)?
        {
            status = Some((s, now));
        }
        match status {
            Some(_) if !stdout.open() && !stderr.open() => break Ending::Exited,
            Some((_, exited)) if now >= exited + PIPE_GRACE => {
                kill_group(child);
                break Ending::ConsoleHeld;
            }
            _ if now >= deadline => {
                kill_group(child);
                break Ending::Deadline;
            }
            _ => {}
        }
    };
    let status = match status {
        Some((s, _)) => s,
        None => child.wait().map_err(BootError::Wait)?,
    };
    let ended = Instant::now();
    if ending != Ending::Flooded {
        // What the guest wrote just before it was killed is still in the pipe.
        stdout.drain(|bytes| {
            console.take(bytes, ended);
        });
        if let Some(memory) = memory {
            memory.drain(|bytes| {
                in_memory.take(bytes, ended);
            });
        }
    }
    let memory_bytes = in_memory.total;
    let mut lines = console.finish(ended);
    lines.extend(in_memory.finish(ended));
    // Stable: each console's own order is kept.
    lines.sort_by_key(|(at, _)| *at);
    let stderr = String::from_utf8_lossy(&errors).into_owned();
    let spoke = lines
        .iter()
        .any(|(_, l)| l.starts_with("probe-kernel:") || l.starts_with("@pmuc"));
    let wall = lines.last().map_or(ended, |(at, _)| *at) - start;
    Ok(Boot {
        arrived: lines.iter().map(|(at, _)| *at - start).collect(),
        lines: lines.into_iter().map(|(_, line)| line).collect(),
        exit: decode(status, &stderr, spoke),
        ending,
        wall,
        elapsed: ended - start,
        stderr,
        memory_bytes,
    })
}

/// How QEMU's exit status reads, given what it said on stderr and whether
/// the guest printed anything at all.
fn decode(status: ExitStatus, stderr: &str, guest_spoke: bool) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) if !guest_spoke => Exit::Qemu(code),
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
    use super::*;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn exit_statuses_decode_as_kvm_unit_tests_reads_them() {
        assert_eq!(decode(status(1), "", true), Exit::Guest(0));
        assert_eq!(decode(status(3), "", true), Exit::Guest(1));
        assert_eq!(decode(status(0), "", true), Exit::NoDebugExit);
        assert_eq!(decode(status(2), "", true), Exit::Qemu(2));
        assert_eq!(decode(ExitStatus::from_raw(9), "", true), Exit::Signal(9));
    }

    #[test]
    fn an_exit_before_the_guest_spoke_is_qemus_own() {
        // A wrapper that fails, or a QEMU that never started the guest,
        // exits 1 without a word from the guest: that is not "guest code 0".
        assert_eq!(decode(status(1), "", false), Exit::Qemu(1));
        assert_eq!(decode(status(3), "", false), Exit::Qemu(3));
        assert_eq!(decode(ExitStatus::from_raw(9), "", false), Exit::Signal(9));
    }

    #[test]
    fn status_1_is_qemu_failing_when_qemu_said_so() {
        let kvm = "qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: Permission denied\n";
        assert_eq!(decode(status(1), kvm, true), Exit::Qemu(1));
        let warning = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.80000001H:ECX.svm\n";
        assert_eq!(decode(status(1), warning, true), Exit::Guest(0));
        let option_warning = "qemu-system-x86_64: -cpu host: warning: something\n";
        assert_eq!(decode(status(1), option_warning, true), Exit::Guest(0));
        // What QEMU 7.2 says when -kernel is not a kernel.
        assert_eq!(decode(status(1), "qemu: invalid kernel header\n", true), Exit::Qemu(1));
    }

    #[test]
    fn the_command_line_has_the_verified_flags() {
        let config = QemuConfig {
            program: QEMU.into(),
            ..QemuConfig::new("/tmp/probe-kernel", Accel::Kvm, "pmuc=k/a,ovf-ack pmuc.watchdog=5")
        };
        assert_eq!(
            config.command_line(),
            "qemu-system-x86_64 -M microvm -accel kvm -cpu host,-arch-capabilities -m 128M -display none \
             -no-reboot -nodefaults -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /tmp/probe-kernel -append 'pmuc=k/a,ovf-ack pmuc.watchdog=5'"
        );
        let tcg = QemuConfig {
            program: QEMU.into(),
            cpu: Some("Skylake-Client".into()),
            ..QemuConfig::new("/tmp/probe-kernel", Accel::Tcg, "pmuc=k/a,ovf-ack")
        };
        assert!(
            tcg.command_line()
                .starts_with("qemu-system-x86_64 -M pc -accel tcg -cpu Skylake-Client -m 128M "),
            "{}",
            tcg.command_line()
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
    fn console_lines_lose_their_endings_keep_bad_bytes_visible_and_are_bounded() {
        let now = Instant::now();
        let mut console = Console::default();
        assert!(console.take(b"one\r\ntwo\n\xffthree", now));
        let text: Vec<String> = console.finish(now).into_iter().map(|(_, l)| l).collect();
        assert_eq!(text, ["one", "two", "\u{fffd}three"]);

        let mut console = Console::default();
        assert!(console.take(&vec![b'x'; LINE_LIMIT + 10], now));
        assert!(console.take(b"\n", now));
        assert_eq!(
            console.lines[0].1.len(),
            LINE_LIMIT,
            "a long line is cut, not kept whole"
        );
        let chunk = vec![b'y'; 1 << 20];
        let floods = (0..8).map(|_| console.take(&chunk, now)).any(|ok| !ok);
        assert!(floods, "past CONSOLE_LIMIT the console reports a flood");
        assert!(
            console.lines.len() < 2 && console.partial.len() <= LINE_LIMIT,
            "and keeps nothing more"
        );
    }
}
