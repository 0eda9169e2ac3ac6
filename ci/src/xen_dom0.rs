//! `cargo xtask xen` (second half): the Linux PV dom0 of the
//! `qemu-xen-domu` environments, fetched with `apt-get download` and
//! unpacked with `dpkg-deb -x`, never installed.
//!
//! The dom0 is Debian's generic kernel (`linux-image-amd64`'s dependency:
//! it has `XEN_DOM0`, which the cloud kernel lacks) and a root tree that
//! the runner packs into the dom0's initramfs beside itself, its init
//! (guest-boots.md, "A PVH domU through a Linux PV dom0"):
//!
//! - Xen's toolstack, from `xen-utils-<release>`: `xl`, `xenstored`,
//!   `xenconsoled`, `xen-init-dom0` and `libxl-save-helper`, with no Python;
//! - the shared libraries they load, whole from each library package;
//! - the kernel's Xen device modules (`xen-privcmd`, `xenfs`, `xen-evtchn`,
//!   `xen-gntdev`, `xen-gntalloc`), from the same kernel package.
//!
//! It lands beside the Xen of the same version: `target/xen/<version>/dom0/`
//! holds `vmlinuz`, the ELF kernel inside it as `vmlinux` (where `xz`
//! unpacks it), `root/` and `packages` (what was fetched, by version).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The metapackage whose dependency is Debian's current generic kernel.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
/// The toolstack's programs, from `xen-utils-<release>`'s `usr/lib/xen-<release>/bin`.
const PROGRAMS: [&str; 5] = ["xl", "xenstored", "xenconsoled", "xen-init-dom0", "libxl-save-helper"];
/// The libraries the programs load, by package; `{release}` is Xen's (`4.17`).
const LIBRARY_PACKAGES: [&str; 17] = [
    "libxenmisc{release}",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenstore4",
    "libxentoollog1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libxentoolcore1",
    "libyajl2",
    "libc6",
    "libuuid1",
    "zlib1g",
    "liblzma5",
    "libzstd1",
    // glibc loads it at the first pthread_cancel, which `xl create` makes.
    "libgcc-s1",
];
/// The kernel's Xen device modules; the runner loads every one in the tree.
const MODULES: [&str; 5] = [
    "xen-privcmd.ko",
    "xenfs.ko",
    "xen-evtchn.ko",
    "xen-gntdev.ko",
    "xen-gntalloc.ko",
];

/// The dom0 for the Xen at `xen_dir` (`target/xen/<version>`, whose
/// `package` names `xen-hypervisor-<release>-amd64`), fetched unless it is
/// there; returns its folder.
pub fn fetch(sh: &Shell, xen_dir: &Path) -> Result<PathBuf> {
    let dom0 = xen_dir.join("dom0");
    if dom0.join("vmlinuz").is_file() && dom0.join("root").is_dir() {
        return Ok(dom0);
    }
    let package = std::fs::read_to_string(xen_dir.join("package")).with_context(|| {
        format!(
            "{} has no `package` file: run `cargo xtask xen` again",
            xen_dir.display()
        )
    })?;
    let release = package
        .split_whitespace()
        .next()
        .and_then(|p| p.strip_prefix("xen-hypervisor-"))
        .and_then(|p| p.strip_suffix("-amd64"))
        .with_context(|| format!("{}/package names no xen-hypervisor-<release>-amd64", xen_dir.display()))?
        .to_owned();
    let depends = cmd!(sh, "apt-cache depends {KERNEL_METAPACKAGE}").quiet().read()?;
    let kernel = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::to_owned)
        .with_context(|| format!("`apt-cache depends {KERNEL_METAPACKAGE}` names no kernel package"))?;
    let utils = format!("xen-utils-{release}");
    let mut packages = vec![kernel.clone(), utils.clone()];
    packages.extend(LIBRARY_PACKAGES.iter().map(|p| p.replace("{release}", &release)));
    let work = dom0.join("download");
    let _ = std::fs::remove_dir_all(&work);
    let names: Vec<&str> = packages.iter().map(String::as_str).collect();
    let debs = crate::apt_download(sh, &work, &names)?;
    let root = dom0.join("root");
    let _ = std::fs::remove_dir_all(&root);
    let mut fetched = Vec::new();
    for deb in &debs {
        let unpacked = work.join("unpacked");
        let _ = std::fs::remove_dir_all(&unpacked);
        cmd!(sh, "dpkg-deb -x {deb} {unpacked}").quiet().run()?;
        let name = deb
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(&format!("{kernel}_")) {
            take_kernel(&unpacked, &dom0, &root)?;
        } else if name.starts_with(&format!("{utils}_")) {
            let bin = format!("usr/lib/xen-{release}/bin");
            for program in PROGRAMS {
                copy(&unpacked.join(&bin).join(program), &root.join(&bin).join(program))?;
            }
        } else {
            take_libraries(&unpacked, &unpacked, &root)?;
        }
        fetched.push(name);
    }
    if !dom0.join("vmlinuz").is_file() {
        bail!("apt-get download {kernel} left no kernel");
    }
    fetched.sort();
    std::fs::write(dom0.join("packages"), fetched.join("\n") + "\n")?;
    std::fs::remove_dir_all(&work)?;
    Ok(dom0)
}

/// The kernel's `boot/vmlinuz-*` as `dom0/vmlinuz`, and its Xen modules
/// under `root/lib/modules/<version>/kernel/drivers/xen/`.
fn take_kernel(unpacked: &Path, dom0: &Path, root: &Path) -> Result<()> {
    let vmlinuz = std::fs::read_dir(unpacked.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package holds no boot/vmlinuz-*")?;
    copy(&vmlinuz, &dom0.join("vmlinuz"))?;
    decompress(&vmlinuz, &dom0.join("vmlinux"));
    let modules = std::fs::read_dir(unpacked.join("lib/modules"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .context("the kernel package holds no lib/modules/<version>")?;
    let version = modules.file_name().context("a module folder has a name")?.to_owned();
    let xen = modules.join("kernel/drivers/xen");
    for module in MODULES {
        let from = [xen.join(module), xen.join("xenfs").join(module)]
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| format!("the kernel package has no {module} under {}", xen.display()))?;
        let to = root
            .join("lib/modules")
            .join(&version)
            .join("kernel/drivers/xen")
            .join(module);
        copy(&from, &to)?;
    }
    Ok(())
}

/// The bzImage's kernel as the ELF inside it, where `xz` unpacks it: Xen
/// builds a PV dom0 from either, but unpacking Debian's xz bzImage itself
/// takes Xen about 6 s under TCG, and copying the 66 MB ELF 0.3 s. Without
/// `xz` the dom0 boots from the bzImage.
fn decompress(bzimage: &Path, to: &Path) {
    const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
    let Ok(bytes) = std::fs::read(bzimage) else { return };
    let Some(at) = bytes.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC) else {
        println!(
            "xtask: {} holds no xz stream; the dom0 boots from the bzImage",
            bzimage.display()
        );
        return;
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(_) => return,
    };
    // From a file: xz stops reading where its stream ends, before the bzImage does.
    let stream = to.with_extension("xz");
    if std::fs::write(&stream, &bytes[at..]).is_err() {
        return;
    }
    let unpacked = cmd!(sh, "xz -dc --single-stream {stream}")
        .quiet()
        .ignore_stderr()
        .output();
    let _ = std::fs::remove_file(&stream);
    match unpacked {
        Ok(out) if out.stdout.starts_with(b"\x7fELF") => {
            if let Err(e) = std::fs::write(to, &out.stdout) {
                println!("xtask: writing {}: {e}", to.display());
            }
        }
        Ok(_) => println!(
            "xtask: `xz` unpacked no ELF from {}; the dom0 boots from the bzImage",
            bzimage.display()
        ),
        Err(e) => println!(
            "xtask: `xz` did not unpack {} ({e}); the dom0 boots from the bzImage",
            bzimage.display()
        ),
    }
}

/// Every shared library (a file or link whose name holds `.so`) under
/// `dir`'s `lib`, `lib64` and `usr/lib/x86_64-linux-gnu`, at the same path
/// under `root`; gconv's and other plugin folders are left out.
fn take_libraries(unpacked: &Path, dir: &Path, root: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let relative = path.strip_prefix(unpacked)?;
        let text = relative.to_string_lossy();
        let kept_folder = [
            "lib",
            "lib64",
            "usr",
            "usr/lib",
            "usr/lib/x86_64-linux-gnu",
            "lib/x86_64-linux-gnu",
        ];
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            if kept_folder.contains(&text.as_ref()) {
                take_libraries(unpacked, &path, root)?;
            }
        } else if text.starts_with("lib") || text.starts_with("usr/lib/x86_64-linux-gnu/") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.contains(".so") {
                copy(&path, &root.join(relative))?;
            }
        }
    }
    Ok(())
}

/// Copies a file, or recreates a link as it was, making the folders above it.
fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let meta = std::fs::symlink_metadata(from).with_context(|| format!("{} is missing", from.display()))?;
    if meta.file_type().is_symlink() {
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else {
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}
