//! `cargo xtask sshd`: Debian's OpenSSH server for the ssh environment's
//! loopback test, fetched with `apt-get download` and unpacked with
//! `dpkg-deb -x`, never installed: `openssh-server` and the one library
//! it needs that a base system lacks (`libwrap0`). It lands under
//! `target/sshd/root/` (`usr/sbin/sshd`, `usr/lib/x86_64-linux-gnu/`). The
//! test starts it on 127.0.0.1 only, with a throwaway key, and stops it.

use std::path::PathBuf;

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

/// What the unpacked server needs beyond a base Debian system.
const PACKAGES: [&str; 2] = ["openssh-server", "libwrap0"];

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("`cargo xtask sshd` takes no arguments");
    }
    println!("{}", fetch(sh)?.display());
    Ok(())
}

/// The server binary, fetched unless it is already there.
pub fn fetch(sh: &Shell) -> Result<PathBuf> {
    let root = sh.current_dir().join("target/sshd/root");
    let sshd = root.join("usr/sbin/sshd");
    if sshd.is_file() {
        return Ok(sshd);
    }
    let work = sh.current_dir().join("target/sshd/download");
    for deb in crate::apt_download(sh, &work, &PACKAGES)? {
        cmd!(sh, "dpkg-deb -x {deb} {root}").run()?;
    }
    std::fs::remove_dir_all(&work)?;
    if !sshd.is_file() {
        bail!("{} is missing after unpacking {}", sshd.display(), PACKAGES.join(" "));
    }
    Ok(sshd)
}
