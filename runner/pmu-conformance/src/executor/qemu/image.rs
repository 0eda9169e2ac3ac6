//! Where the probe kernel image is, by one rule for a checkout and for a
//! copied binary:
//!
//! 1. `--kernel PATH`;
//! 2. `$PMUC_PROBE_KERNEL`;
//! 3. the image `cargo xtask dist` appended to this executable ([`embedded`]),
//!    so that the static runner carries everything it runs;
//! 4. where `cargo xtask kernel` leaves it, [`IN_TARGET_DIR`], under
//!    `$CARGO_TARGET_DIR`, under the target directory this executable sits in
//!    (`target/release/pmu-conformance`, or `target/debug/deps/<test>`), or
//!    under the `target/` of the checkout the run starts in.
//!
//! A path given by the first two that is not a file is a bad argument; an
//! image the search does not find is an environment that cannot start, and
//! the message says how to build one.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::launcher::BootError;
use crate::executor::StartError;

/// The environment variable that names the probe kernel image, ahead of the search.
pub const VARIABLE: &str = "PMUC_PROBE_KERNEL";

/// Where `cargo xtask kernel` leaves the image, relative to a target directory.
pub const IN_TARGET_DIR: &str = "x86_64-unknown-none/release/probe-kernel";

/// Where a build's outputs may be: `$CARGO_TARGET_DIR`, the target
/// directory this executable sits in (`target/release/pmu-conformance`, or
/// `target/debug/deps/<test>`), and the `target/` of the checkout the run
/// starts in.
pub fn target_dirs() -> Vec<PathBuf> {
    let mut target_dirs: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(exe) = std::env::current_exe() {
        target_dirs.extend(exe.ancestors().skip(1).take(3).map(Path::to_path_buf));
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(checkout) = cwd.ancestors().find(|d| d.join("runner/probe-kernel").is_dir())
    {
        target_dirs.push(checkout.join("target"));
    }
    target_dirs
}

/// The probe kernel image, by the rule above.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, StartError> {
    if let Some(path) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(VARIABLE).filter(|v| !v.is_empty()).map(PathBuf::from))
    {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(StartError::Argument(BootError::ImageMissing(path).to_string()))
        };
    }
    if let Some(image) = embedded() {
        return Ok(image.to_path_buf());
    }
    in_target_dirs(IN_TARGET_DIR).map_err(|looked| {
        StartError::Unavailable(format!(
            "the probe kernel image is not built: `cargo xtask kernel` builds it in a checkout \
             (looked for {looked}); --kernel PATH or ${VARIABLE} names another"
        ))
    })
}

/// A file named by `variable`, or found under a target directory (this
/// executable's, `$CARGO_TARGET_DIR`, or the checkout's) at `in_target`.
pub fn named_or_in_target_dirs(variable: &str, in_target: &str, how: &str) -> Result<PathBuf, StartError> {
    if let Some(path) = std::env::var_os(variable).filter(|v| !v.is_empty()).map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(StartError::Argument(format!(
                "${variable} names {}, which is not a file",
                path.display()
            )))
        };
    }
    in_target_dirs(in_target)
        .map_err(|looked| StartError::Unavailable(format!("{how} (looked for {looked}); ${variable} names another")))
}

/// The first file at `relative` under one of [`target_dirs`], or the paths
/// looked at, as a list for a message.
pub fn in_target_dirs(relative: &str) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = target_dirs().iter().map(|dir| dir.join(relative)).collect();
    candidates.iter().find(|path| path.is_file()).cloned().ok_or_else(|| {
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The trailer `cargo xtask dist` (ci/src/dist.rs) writes after the image it
/// appends to the static runner: the image's length (u64, little-endian),
/// then these eight bytes. The ELF loader ignores bytes past the program
/// headers' segments, so the runner runs as before.
pub const TRAILER_MAGIC: &[u8; 8] = b"PMUCKRN1";

/// The largest image a trailer may claim.
pub const IMAGE_LIMIT: u64 = 64 << 20;

/// The image appended to this executable, written once to a temporary
/// file that lives as long as the process; `None` without one.
pub fn embedded() -> Option<&'static Path> {
    static IMAGE: OnceLock<Option<tempfile::TempPath>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let bytes = std::env::current_exe().ok().and_then(|exe| appended(&exe))?;
            let mut file = tempfile::Builder::new().prefix("pmuc-probe-kernel-").tempfile().ok()?;
            std::io::Write::write_all(&mut file, &bytes).ok()?;
            Some(file.into_temp_path())
        })
        .as_deref()
}

/// The length of the image a trailer (the last 16 bytes of a file) says
/// precedes it, if it is one and the file (`size` bytes) can hold it.
fn trailer(tail: &[u8], size: u64) -> Option<u64> {
    let (length, magic) = tail.split_at_checked(8)?;
    if magic != TRAILER_MAGIC {
        return None;
    }
    let length = u64::from_le_bytes(length.try_into().ok()?);
    (length > 0 && length <= IMAGE_LIMIT && length <= size.checked_sub(16)?).then_some(length)
}

/// `bytes` (a runner) without the image appended to it, if it carries one:
/// what a Linux guest or a remote machine needs, which boots no probe kernel.
pub fn without_appended(bytes: &[u8]) -> &[u8] {
    let size = bytes.len() as u64;
    match bytes.len().checked_sub(16).and_then(|at| trailer(&bytes[at..], size)) {
        Some(length) => &bytes[..(size - 16 - length) as usize],
        None => bytes,
    }
}

/// The image appended to the file at `path`, if it carries one.
pub fn appended(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    if size < 16 {
        return None;
    }
    file.seek(SeekFrom::Start(size - 16)).ok()?;
    let mut tail = [0u8; 16];
    file.read_exact(&mut tail).ok()?;
    let length = trailer(&tail, size)?;
    file.seek(SeekFrom::Start(size - 16 - length)).ok()?;
    let mut image = vec![0u8; length as usize];
    file.read_exact(&mut image).ok()?;
    Some(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appended_image_reads_back_and_a_plain_file_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"\x7fELF and nothing after it").unwrap();
        assert_eq!(appended(&plain), None);
        let carrying = dir.path().join("carrying");
        let mut bytes = b"\x7fELF the runner".to_vec();
        bytes.extend_from_slice(b"the image");
        bytes.extend_from_slice(&9u64.to_le_bytes());
        bytes.extend_from_slice(TRAILER_MAGIC);
        std::fs::write(&carrying, &bytes).unwrap();
        assert_eq!(appended(&carrying).as_deref(), Some(&b"the image"[..]));
        assert_eq!(without_appended(&bytes), b"\x7fELF the runner");
        assert_eq!(without_appended(b"\x7fELF plain"), b"\x7fELF plain");
        // A trailer that claims more than the file holds is no image.
        let lying = dir.path().join("lying");
        let mut bytes = b"short".to_vec();
        bytes.extend_from_slice(&1000u64.to_le_bytes());
        bytes.extend_from_slice(TRAILER_MAGIC);
        std::fs::write(&lying, &bytes).unwrap();
        assert_eq!(appended(&lying), None);
    }
}
