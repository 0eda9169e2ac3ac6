//! One environment of a matrix: a child runner ([`crate::supervised`]),
//! with its output kept in its artifacts folder.
//!
//! Its stdout and stderr go to `output.log` and `stderr.log`; each
//! `test <case> ...` line it prints moves its progress line.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::supervised::{self, End, Tail};

/// What a child left.
#[derive(Clone, Debug)]
pub struct ChildRun {
    pub end: End,
    pub wall: Duration,
    /// The last [`TAIL`] bytes of its stderr, for messages.
    pub stderr_tail: String,
}

/// How much of a child's stderr a message quotes.
pub const TAIL: usize = 4096;

/// Runs `exe args` with its output in `dir`, until it exits or `deadline`
/// passes; `progress` hears each case it starts.
pub fn run(
    exe: &Path,
    args: &[OsString],
    dir: &Path,
    deadline: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> io::Result<ChildRun> {
    std::fs::create_dir_all(dir)?;
    let mut output = File::create(dir.join("output.log"))?;
    let mut errors = File::create(dir.join("stderr.log"))?;
    let mut command = Command::new(exe);
    // A log, not a terminal: plain lines and a fixed-width table.
    command.args(args).env("NO_COLOR", "1");
    // `test <case> ... ` starts a case; a line may arrive in pieces.
    let mut line: Vec<u8> = Vec::new();
    let on_stdout = |bytes: &[u8]| {
        let _ = output.write_all(bytes);
        for &b in bytes {
            if b == b'\n' {
                line.clear();
            } else if line.len() < 1024 {
                line.push(b);
                if line.ends_with(b" ...") {
                    let text = String::from_utf8_lossy(&line);
                    if let Some(case) = text.strip_prefix("test ").and_then(|t| t.strip_suffix(" ...")) {
                        progress(case.trim());
                    }
                }
            }
        }
    };
    let mut tail = Tail::new(TAIL);
    let on_stderr = |bytes: &[u8]| {
        let _ = errors.write_all(bytes);
        tail.take(bytes);
    };
    let (end, wall) = supervised::run(command, None, deadline, on_stdout, on_stderr)?;
    Ok(ChildRun {
        end,
        wall,
        stderr_tail: tail.text(),
    })
}
