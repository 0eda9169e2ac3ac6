//! `cargo xtask xen`: Debian's Xen hypervisor for the `qemu-xen-dom0`
//! environments (`xen: debian`), fetched with `apt-get download` and
//! unpacked with `dpkg-deb -x`, never installed.
//!
//! The package (`xen-hypervisor-<release>-amd64`, the one Debian's
//! `xen-system-amd64` depends on) holds `boot/xen-<release>-amd64.gz`; QEMU
//! does not decompress a multiboot kernel, so it is gunzipped. The Xen under
//! test is that build, so each is cached by its package version, as
//! `target/xen/<version>/xen`, and `target/xen/current` links to the one
//! fetched last. A cached version is used without fetching again. Beside it
//! lands the Linux PV dom0 of the `qemu-xen-domu` environments, from the
//! same release's toolstack ([`crate::xen_dom0`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The metapackage whose first dependency is the current Xen hypervisor.
const METAPACKAGE: &str = "xen-system-amd64";
/// The most a gunzipped Xen may take; Debian's 4.17 is about 8 MB.
const XEN_LIMIT: u64 = 64 << 20;

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("`cargo xtask xen` takes no arguments");
    }
    println!("{}", fetch(sh)?.display());
    Ok(())
}

/// The Xen of the package version apt offers, fetched unless it is cached;
/// returns its path (through `target/xen/current`).
pub fn fetch(sh: &Shell) -> Result<PathBuf> {
    let root = sh.current_dir().join("target/xen");
    let current = root.join("current");
    if !crate::have(sh, "apt-cache") {
        if current.join("xen").is_file() {
            return Ok(current.join("xen"));
        }
        bail!("`apt-cache` is not available: Debian's Xen is fetched with apt-get download");
    }
    let depends = cmd!(sh, "apt-cache depends {METAPACKAGE}").quiet().read()?;
    let package = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("xen-hypervisor-"))
        .map(str::to_owned)
        .with_context(|| format!("`apt-cache depends {METAPACKAGE}` names no xen-hypervisor package"))?;
    let shown = cmd!(sh, "apt-cache show --no-all-versions {package}").quiet().read()?;
    let version = shown
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.contains('/'))
        .with_context(|| format!("`apt-cache show {package}` gives no version"))?
        .to_owned();
    let dir = root.join(&version);
    let xen = dir.join("xen");
    if !xen.is_file() {
        unpack(sh, &package, &dir)?;
    }
    crate::xen_dom0::fetch(sh, &dir)?;
    // `current` names the version, relative, so the folder can move.
    let _ = std::fs::remove_file(&current);
    std::os::unix::fs::symlink(&version, &current)?;
    Ok(current.join("xen"))
}

/// Downloads `package` and leaves its gunzipped Xen at `dir/xen`, with the
/// package name and version beside it in `dir/package`.
fn unpack(sh: &Shell, package: &str, dir: &Path) -> Result<()> {
    let work = dir.join("download");
    let deb = crate::apt_download(sh, &work, &[package])?
        .into_iter()
        .next()
        .with_context(|| format!("apt-get download {package} left no .deb in {}", work.display()))?;
    let unpacked = work.join("unpacked");
    cmd!(sh, "dpkg-deb -x {deb} {unpacked}").run()?;
    let gz = std::fs::read_dir(unpacked.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("xen-") && n.to_string_lossy().ends_with(".gz"))
        })
        .with_context(|| format!("{package} holds no boot/xen-*.gz"))?;
    let xen = cmd!(sh, "gzip -dc {gz}")
        .quiet()
        .output()
        .with_context(|| format!("gunzipping {}", gz.display()))?
        .stdout;
    if xen.len() as u64 > XEN_LIMIT {
        bail!("{} unpacks to more than {} MiB", gz.display(), XEN_LIMIT >> 20);
    }
    if !xen.starts_with(b"\x7fELF") {
        bail!("{} is not an ELF once gunzipped", gz.display());
    }
    std::fs::write(dir.join("xen"), xen)?;
    let deb_name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(dir.join("package"), format!("{package} {deb_name}\n"))?;
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
