//! A child process that cannot outlive its deadline or the runner: the
//! matrix's child runners and the ssh sessions that reach remote machines.
//!
//! The child runs in a process group of its own with `PR_SET_PDEATHSIG`, so
//! the runner's death (even `kill -9`) kills it. Its stdout and stderr are
//! read on threads of their own and handed to callbacks as they arrive; its
//! stdin is given bytes (a runner copied to a remote machine) or nothing. At
//! the deadline the whole group is killed; when the child exits, whatever
//! it left in its group goes too. [`signal_every_child`] forwards a signal
//! to every live group (SIGINT: each writes its partial report).
//! QEMU guests are the launcher's, which also limits what a console may hold.
//! Programs that start daemons (Xen's toolstack) run through
//! [`run_leaving_daemons`] instead, which kills only the program itself.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it (not its deadline).
    Signal(i32),
    /// Its deadline passed, and its group was killed.
    Deadline,
}

/// The process groups of the supervised children running now.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Sends `signal` to every running child's process group.
pub fn signal_every_child(signal: i32) {
    for group in LIVE.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        // SAFETY: a plain kill of a process group this process created.
        unsafe { libc::kill(-*group, signal) };
    }
}

/// Makes `command`'s child the leader of a process group of its own that
/// dies with this process (`PR_SET_PDEATHSIG`, even if this one is killed
/// with SIGKILL), with no signal blocked whatever this process's threads
/// block. QEMU's launcher and [`run`] both start children this way.
pub fn own_group_dying_with_us(command: &mut Command) {
    let parent = std::process::id() as i32;
    command.process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // This process may have died before the line above took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Runs `command` until it exits or `deadline` passes, feeding it `stdin`
/// (then closing it) and handing its output to `on_stdout` and `on_stderr`.
/// Returns how it ended and how long it ran.
pub fn run(
    mut command: Command,
    stdin: Option<&[u8]>,
    deadline: Duration,
    mut on_stdout: impl FnMut(&[u8]) + Send,
    mut on_stderr: impl FnMut(&[u8]) + Send,
) -> io::Result<(End, Duration)> {
    let start = Instant::now();
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    own_group_dying_with_us(&mut command);
    let mut child = command.spawn()?;
    let group = child.id() as i32;
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).insert(group);
    let input = child.stdin.take();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let end = std::thread::scope(|scope| {
        if let (Some(mut input), Some(bytes)) = (input, stdin) {
            // A child that stops reading never hangs this: its death or its
            // deadline closes the pipe.
            scope.spawn(move || {
                // A child that exits early makes the write fail with EPIPE;
                // the runner keeps SIGPIPE's default (it ends a run piped into
                // `head`), so this thread blocks it: the signal stays pending
                // here and is dropped with the thread.
                // SAFETY: a signal set on the stack, for this thread only.
                unsafe {
                    let mut pipe: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut pipe);
                    libc::sigaddset(&mut pipe, libc::SIGPIPE);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, std::ptr::null_mut());
                }
                let _ = input.write_all(bytes);
            });
        }
        scope.spawn(move || drain(&mut stdout, &mut on_stdout));
        scope.spawn(move || drain(&mut stderr, &mut on_stderr));
        let end = loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    break match (status.code(), status.signal()) {
                        (Some(code), _) => End::Exited(code),
                        (None, Some(signal)) => End::Signal(signal),
                        (None, None) => End::Signal(0),
                    };
                }
                Ok(None) if start.elapsed() >= deadline => break End::Deadline,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break End::Signal(0),
            }
        };
        // Whatever the child left in its group goes with it, and its pipes close.
        // SAFETY: a plain kill of the process group this process created.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = child.wait();
        end
    });
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&group);
    Ok((end, start.elapsed()))
}

/// What a program that may leave a daemon behind did: how it ended, and its
/// output (each at most [`LEFT_LIMIT`] bytes).
#[derive(Debug)]
pub struct Left {
    pub end: End,
    pub stdout: String,
    pub stderr: String,
}

/// The most of a [`Left`] program's stdout or stderr that is read back.
pub const LEFT_LIMIT: u64 = 16 << 20;

/// Runs `command` until it exits or `deadline` passes (then it alone is
/// killed), for programs that daemonize (`xenstored`, `xl create`): unlike
/// [`run`], it is not in a group of its own, whose death would take a
/// daemon that forked before its `setsid`, and its output goes to files,
/// not pipes, which a daemon would hold open.
pub fn run_leaving_daemons(mut command: Command, deadline: Duration) -> io::Result<Left> {
    let start = Instant::now();
    let (mut out, mut err) = (tempfile::tempfile()?, tempfile::tempfile()?);
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?);
    let mut child = command.spawn()?;
    let end = loop {
        match child.try_wait()? {
            Some(status) => {
                break match (status.code(), status.signal()) {
                    (Some(code), _) => End::Exited(code),
                    (None, Some(signal)) => End::Signal(signal),
                    (None, None) => End::Signal(0),
                };
            }
            None if start.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break End::Deadline;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let text = |file: &mut std::fs::File| -> io::Result<String> {
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        file.take(LEFT_LIMIT).read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(Left {
        end,
        stdout: text(&mut out)?,
        stderr: text(&mut err)?,
    })
}

fn drain(reader: &mut impl Read, each: &mut impl FnMut(&[u8])) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        each(&buf[..n]);
    }
}

/// The last `limit` bytes of a stream, kept as it arrives.
#[derive(Debug, Default)]
pub struct Tail {
    bytes: Vec<u8>,
    limit: usize,
}

impl Tail {
    pub fn new(limit: usize) -> Tail {
        Tail {
            bytes: Vec::new(),
            limit,
        }
    }

    pub fn take(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        if self.bytes.len() > 2 * self.limit {
            self.bytes.drain(..self.bytes.len() - self.limit);
        }
    }

    pub fn text(&self) -> String {
        let from = self.bytes.len().saturating_sub(self.limit);
        String::from_utf8_lossy(&self.bytes[from..]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemonizing_program_leaves_its_daemon_and_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("daemon-ran");
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "(sleep 0.3; touch {}) & echo out; echo err >&2",
            mark.display()
        ));
        let left = run_leaving_daemons(c, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (left.end, left.stdout.as_str(), left.stderr.as_str()),
            (End::Exited(0), "out\n", "err\n")
        );
        std::thread::sleep(Duration::from_millis(800));
        assert!(mark.exists(), "the daemon outlived its parent");
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let left = run_leaving_daemons(slow, Duration::from_millis(200)).unwrap();
        assert_eq!(left.end, End::Deadline);
    }

    #[test]
    fn a_child_past_its_deadline_is_killed_with_its_group() {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30 & echo started; exec sleep 30"]);
        let mut out = Vec::new();
        let (end, wall) = run(
            c,
            None,
            Duration::from_millis(300),
            |b| out.extend_from_slice(b),
            |_| {},
        )
        .unwrap();
        assert_eq!(end, End::Deadline);
        assert!(wall < Duration::from_secs(5), "{wall:?}");
        assert_eq!(String::from_utf8_lossy(&out), "started\n");
    }

    #[test]
    fn stdin_reaches_the_child_and_an_early_exit_does_not_kill_the_writer() {
        let mut c = Command::new("wc");
        c.arg("-c");
        let mut out = Vec::new();
        let (end, _) = run(
            c,
            Some(&[7u8; 100_000]),
            Duration::from_secs(10),
            |b| out.extend_from_slice(b),
            |_| {},
        )
        .unwrap();
        assert_eq!((end, String::from_utf8_lossy(&out).trim()), (End::Exited(0), "100000"));
        // `true` reads nothing: the writer meets EPIPE and the run still ends
        // (the runner, which keeps SIGPIPE fatal, is covered by tests/ssh.rs).
        let (end, _) = run(
            Command::new("true"),
            Some(&[0u8; 1 << 22]),
            Duration::from_secs(10),
            |_| {},
            |_| {},
        )
        .unwrap();
        assert_eq!(end, End::Exited(0));
    }
}
