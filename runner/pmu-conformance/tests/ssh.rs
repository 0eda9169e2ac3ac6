//! `ssh` environments, for real: an OpenSSH server this test starts on
//! 127.0.0.1 only (Debian's openssh-server, which `cargo xtask sshd`
//! unpacks into target/sshd/ without installing it), with a throwaway host
//! key and client key, and the static runner (`cargo xtask dist`) copied
//! over the connection and run there. The remote is this machine, which
//! has no PMU: the self-checks pass there and the rest is unsupported with
//! its reason. A connection refused, a connection that drops mid-report and
//! a remote that hangs each end the environment within its deadline,
//! saying why.
//!
//! As root, sshd insists on its privilege-separation user (`sshd`) and
//! /run/sshd; the test gives it both in a private mount namespace
//! (`unshare -m`: a copy of /etc/passwd with that user, a tmpfs on /run),
//! so nothing on the machine changes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An sshd on 127.0.0.1, killed (with every session) when dropped.
struct Loopback {
    sshd: Child,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        // SAFETY: a plain kill of the process group the test created.
        unsafe { libc::kill(-(self.sshd.id() as i32), libc::SIGKILL) };
        let _ = self.sshd.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client) runs");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Loopback {
    fn start() -> Loopback {
        let unpacked = root().join("target/sshd/root");
        let sshd = unpacked.join("usr/sbin/sshd");
        assert!(
            sshd.is_file(),
            "{} is missing: `cargo xtask sshd` fetches Debian's openssh-server (cargo xtask test does)",
            sshd.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        // SAFETY: getuid has no preconditions.
        let is_root = unsafe { libc::getuid() } == 0;
        let user = if is_root {
            "root".to_owned()
        } else {
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_owned()
        };
        let options = [
            "ListenAddress=127.0.0.1".to_owned(),
            format!("Port={port}"),
            format!("HostKey={}", d.join("host").display()),
            "PidFile=none".to_owned(),
            format!("AuthorizedKeysFile={}", d.join("authorized_keys").display()),
            "StrictModes=no".to_owned(),
            "UsePAM=no".to_owned(),
            "PermitRootLogin=prohibit-password".to_owned(),
        ];
        let mut line = format!(
            "exec env LD_LIBRARY_PATH={} {} -D -e -f /dev/null",
            unpacked.join("usr/lib/x86_64-linux-gnu").display(),
            sshd.display()
        );
        for o in &options {
            line.push_str(&format!(" -o '{o}'"));
        }
        let mut command = if is_root {
            let passwd = d.join("passwd");
            let mut users = std::fs::read_to_string("/etc/passwd").unwrap();
            users.push_str("sshd:x:64999:65534:privilege separation:/run/sshd:/usr/sbin/nologin\n");
            std::fs::write(&passwd, users).unwrap();
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c"]).arg(format!(
                "mount --bind {} /etc/passwd && mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && {line}",
                passwd.display()
            ));
            c
        } else {
            let mut c = Command::new("sh");
            c.arg("-c").arg(line);
            c
        };
        let mut sshd = std::os::unix::process::CommandExt::process_group(&mut command, 0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sshd");
        let stderr = sshd.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let started = Instant::now();
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10).saturating_sub(started.elapsed())) {
                Ok(l) if l.contains("Server listening on 127.0.0.1") => break,
                Ok(l) => said.push(l),
                Err(_) => panic!("sshd did not start listening within 10 s: {}", said.join("\n")),
            }
        }
        Loopback { sshd, port, user, dir }
    }

    /// A matrix with one ssh environment reaching this server.
    fn matrix(&self, port: u16, deadline: u64) -> PathBuf {
        let d = self.dir.path();
        let file = d.join(format!("loopback-{port}.yaml"));
        std::fs::write(
            &file,
            format!(
                "about: this machine over ssh\nenvironments:\n  - id: ssh-loopback\n    about: 127.0.0.1 over ssh\n    \
                 probe: ssh\n    host: 127.0.0.1\n    port: {port}\n    user: {}\n    identity: {}\n    \
                 known_hosts: {}\n    deadline: {deadline}\n",
                self.user,
                d.join("client").display(),
                d.join("known_hosts").display()
            ),
        )
        .unwrap();
        file
    }
}

fn derived_id_here() -> String {
    let (code, stdout, _) = run(bin().arg("env"));
    assert_eq!(code, 0);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("derived_id: "))
        .expect("env prints derived_id")
        .trim()
        .to_owned()
}

#[test]
fn the_runner_copies_itself_over_ssh_runs_there_and_the_report_is_gated_here() {
    let server = Loopback::start();
    let matrix = server.matrix(server.port, 300);
    let empty = tempfile::tempdir().unwrap();
    let json = empty.path().join("report.json");
    let (code, stdout, stderr) = run(bin()
        .args(["run", "--env", "ssh-loopback", "--quiet"])
        .arg("--matrices")
        .arg(&matrix)
        .arg("--expected")
        .arg(empty.path())
        .arg("--json")
        .arg(&json));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let environment = &report["environment"];
    assert!(
        environment["probe"].as_str().unwrap().contains("over ssh"),
        "{environment}"
    );
    // The remote is this machine: its fingerprint, sent back, is ours.
    assert_eq!(environment["host_class"], derived_id_here().as_str(), "{environment}");
    let cases = report["cases"].as_array().unwrap();
    let passed: Vec<&str> = cases
        .iter()
        .filter(|c| c["verdict"] == "pass")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        passed.len() >= 8 && passed.iter().all(|id| id.starts_with("selfcheck/")),
        "the self-checks pass on the remote: {passed:?}"
    );
    for c in cases.iter().filter(|c| c["verdict"] == "unsupported") {
        assert!(c["reason"]["code"].is_string(), "an unsupported case says why: {c}");
    }
}

#[test]
fn a_refused_connection_ends_the_environment_at_once_with_what_ssh_said() {
    let server = Loopback::start();
    let nobody_listens = free_port();
    let matrix = server.matrix(nobody_listens, 60);
    let started = Instant::now();
    let (code, stdout, stderr) = run(bin()
        .args(["run", "--env", "ssh-loopback", "--quiet"])
        .arg("--matrices")
        .arg(&matrix));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("ssh connection failed or dropped"), "{stderr}");
    assert!(stderr.contains("refused"), "ssh's own words: {stderr}");
}

/// A fake ssh (`$PMUC_SSH`) that behaves as `script` says.
fn fake_ssh(dir: &Path, script: &str) -> PathBuf {
    let path = dir.join("fake-ssh");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_connection_that_drops_mid_report_or_a_remote_that_hangs_ends_within_the_deadline() {
    let server = Loopback::start();
    let dir = tempfile::tempdir().unwrap();
    // Half a report's frames, then the connection goes.
    let frames = (0..4)
        .map(|i| format!("echo '{}'", pmu_kernel_checks::protocol::chunk(i, 8, "{\"schema\"")))
        .collect::<Vec<_>>()
        .join("\n");
    let drops = fake_ssh(
        dir.path(),
        &format!("cat > /dev/null\n{frames}\necho 'client_loop: send disconnect: Broken pipe' >&2\nexit 255"),
    );
    let (code, _, stderr) = run(bin()
        .args(["run", "--env", "ssh-loopback", "--quiet", "--matrices"])
        .arg(server.matrix(server.port, 60))
        .env("PMUC_SSH", &drops));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("4 of the report's 8 parts never arrived") && stderr.contains("Broken pipe"),
        "{stderr}"
    );

    let hangs = fake_ssh(dir.path(), "cat > /dev/null\nexec sleep 600");
    let started = Instant::now();
    let (code, _, stderr) = run(bin()
        .args(["run", "--env", "ssh-loopback", "--quiet", "--matrices"])
        .arg(server.matrix(server.port, 3))
        .env("PMUC_SSH", &hangs));
    assert_eq!(code, 1, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(stderr.contains("within its deadline of 3 s"), "{stderr}");
}
