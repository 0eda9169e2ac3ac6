//! The `ssh` environments' executor: a remote machine, reached with
//! OpenSSH's client, that runs the linux cases and sends the report back.
//!
//! One connection does everything. Its stdin carries the static runner
//! (this executable where it is static, else `cargo xtask dist`'s build);
//! the remote's shell writes it to a fresh temporary folder, checks its
//! size, and runs it with `stream-report run`, which prints the typed report
//! as CRC-framed chunks ([`crate::guest::report_stream`]) after the run's
//! own output; the folder is removed on exit. The host reads the frames back
//! and gates each case against `expected/<env>/<the remote's host class>/`.
//!
//! Nothing waits forever: `BatchMode` (no password prompt),
//! `ConnectTimeout`, keep-alives that notice a dead connection within 15 s,
//! and the environment's deadline, at which the ssh client's process group
//! is killed. A connection that drops, a remote that hangs or cannot run
//! the runner each end the environment with what ssh and the remote said.

use std::process::Command;

use crate::environment::Remote;
use crate::executor::StartError;
use crate::executor::reported::ReportedExecutor;
use crate::supervised::{self, End, Tail};

/// Names another ssh client (a wrapper, a test's fake), ahead of `ssh` on PATH.
pub const SSH_VARIABLE: &str = "PMUC_SSH";

/// The most the remote may print: its run's output and the framed report.
const OUTPUT_LIMIT: usize = 32 << 20;

/// The label the remote's run goes by; the host gates under its own id.
const REMOTE_LABEL: &str = "remote";

/// ssh's exit status for its own errors (connection refused, dropped, auth).
const SSH_ERROR: i32 = 255;

/// Copies the runner over, runs every linux case there, and keeps the outcomes.
pub fn reach(remote: &Remote) -> Result<ReportedExecutor, StartError> {
    let (runner, bytes) = crate::executor::qemu::linux_guest::runner_to_carry()?;
    let command = command(remote, bytes.len());
    let mut stdout: Vec<u8> = Vec::new();
    let mut flooded = false;
    let mut stderr = Tail::new(8192);
    let (end, wall) = supervised::run(
        command,
        Some(&bytes),
        remote.deadline,
        |b| {
            if stdout.len() + b.len() <= OUTPUT_LIMIT {
                stdout.extend_from_slice(b);
            } else {
                flooded = true;
            }
        },
        |b| stderr.take(b),
    )
    .map_err(|e| StartError::Unavailable(format!("running {}: {e}", program().to_string_lossy())))?;
    let text = String::from_utf8_lossy(&stdout);
    let said = stderr.text();
    let said = said.trim();
    let quoted = if said.is_empty() {
        String::new()
    } else {
        format!("; it said: {said}")
    };
    let report = crate::guest::report_stream::read(text.lines()).map_err(|e| {
        let how = match end {
            End::Deadline => format!(
                "the remote did not finish within its deadline of {} s",
                remote.deadline.as_secs()
            ),
            End::Exited(SSH_ERROR) => "the ssh connection failed or dropped (ssh exit status 255)".to_owned(),
            End::Exited(code) => format!("the remote's command exited with status {code}"),
            End::Signal(s) => format!("ssh was ended by signal {s}"),
        };
        let last = text.lines().rev().find(|l| !l.trim().is_empty());
        StartError::Unavailable(format!(
            "{}: no report came back ({e}): {how}{quoted}{}{}",
            destination(remote),
            last.map_or(String::new(), |l| format!("; its last line: {l:?}")),
            if flooded {
                "; its output passed 32 MiB and the rest was dropped"
            } else {
                ""
            }
        ))
    })?;
    let report = crate::report::json::parse("the remote's report", &report)
        .map_err(|e| StartError::Unavailable(format!("{}: {e}", destination(remote))))?;
    ReportedExecutor::new(
        report,
        "the remote",
        format!(
            "remote machine {} over ssh, running {} ({} bytes) there ({} ms)",
            destination(remote),
            runner.display(),
            bytes.len(),
            wall.as_millis()
        ),
    )
}

fn program() -> std::ffi::OsString {
    std::env::var_os(SSH_VARIABLE)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "ssh".into())
}

/// `user@host:port`, for messages.
pub fn destination(remote: &Remote) -> String {
    let user = remote.user.as_ref().map_or(String::new(), |u| format!("{u}@"));
    format!("{user}{}:{}", remote.host, remote.port)
}

/// The ssh command: options that never prompt and never wait forever, then
/// the remote script, which receives a runner of `size` bytes on stdin.
pub fn command(remote: &Remote, size: usize) -> Command {
    let mut c = Command::new(program());
    c.arg("-T");
    for option in [
        "BatchMode=yes",
        "ConnectTimeout=15",
        "ServerAliveInterval=5",
        "ServerAliveCountMax=3",
        "StrictHostKeyChecking=accept-new",
        "LogLevel=ERROR",
    ] {
        c.args(["-o", option]);
    }
    if let Some(known) = &remote.known_hosts {
        c.arg("-o").arg(format!("UserKnownHostsFile={}", home(known).display()));
    }
    if let Some(identity) = &remote.identity {
        c.arg("-i").arg(home(identity)).args(["-o", "IdentitiesOnly=yes"]);
    }
    c.args(["-p", &remote.port.to_string()]);
    if let Some(user) = &remote.user {
        c.args(["-l", user]);
    }
    c.arg(&remote.host).arg(script(size));
    c
}

/// `~/x` as `$HOME/x`, as a shell would have written it.
fn home(path: &std::path::Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// What the remote's shell runs: POSIX sh, no other tool but mktemp, cat,
/// wc, chmod and uname.
fn script(size: usize) -> String {
    format!(
        r#"case "$(uname -m)" in x86_64) ;; *) echo "pmu-conformance: this machine is $(uname -m); the runner is x86_64" >&2; exit 96;; esac
d=$(mktemp -d "${{TMPDIR:-/tmp}}/pmuc.XXXXXX") || exit 97
trap 'rm -rf "$d"' EXIT HUP INT TERM
cat > "$d/pmu-conformance" || exit 98
[ "$(wc -c < "$d/pmu-conformance")" -eq {size} ] || {{ echo "pmu-conformance: the copy of the runner is truncated" >&2; exit 99; }}
chmod 700 "$d/pmu-conformance" && mkdir "$d/expected" && cd "$d" || exit 98
"$d/pmu-conformance" stream-report run --label {REMOTE_LABEL} --expected "$d/expected""#
    )
}
