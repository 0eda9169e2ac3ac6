//! `cargo xtask guest-kernel`: Debian's cloud kernel for the Linux guests
//! (`kernel: debian` in a `qemu-linux` environment), fetched with
//! `apt-get download` and unpacked with `dpkg-deb -x`, never installed.
//!
//! The cloud kernel has built in all a guest without disks needs: the 8250
//! serial console, perf events, hardware breakpoints, devtmpfs and the
//! initramfs (guest-boots.md). It lands at `target/guest/vmlinuz`, with the
//! package's version beside it in `target/guest/version`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The metapackage whose dependency is the current cloud kernel.
const METAPACKAGE: &str = "linux-image-cloud-amd64";

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("`cargo xtask guest-kernel` takes no arguments");
    }
    println!("{}", fetch(sh)?.display());
    Ok(())
}

/// The kernel, fetched unless it is already there; returns its path.
pub fn fetch(sh: &Shell) -> Result<PathBuf> {
    let dir = sh.current_dir().join("target/guest");
    let kernel = dir.join("vmlinuz");
    if kernel.is_file() {
        return Ok(kernel);
    }
    if !crate::have(sh, "apt-cache") {
        bail!("`apt-cache` is not available: the Debian guest kernel is fetched with apt-get download");
    }
    let depends = cmd!(sh, "apt-cache depends {METAPACKAGE}").quiet().read()?;
    let package = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::to_owned)
        .with_context(|| format!("`apt-cache depends {METAPACKAGE}` names no kernel package"))?;
    let work = dir.join("download");
    let deb = crate::apt_download(sh, &work, &[package.as_str()])?
        .into_iter()
        .next()
        .with_context(|| format!("apt-get download {package} left no .deb in {}", work.display()))?;
    let unpacked = work.join("unpacked");
    cmd!(sh, "dpkg-deb -x {deb} {unpacked}").run()?;
    let vmlinuz = std::fs::read_dir(unpacked.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{package} holds no boot/vmlinuz-*"))?;
    std::fs::copy(&vmlinuz, &kernel)?;
    std::fs::write(dir.join("version"), format!("{package}\n"))?;
    std::fs::remove_dir_all(&work)?;
    Ok(kernel)
}
