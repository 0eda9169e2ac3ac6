//! Where the probe kernel image is, by one rule for a checkout and for a
//! copied binary. Nothing is baked in at build time:
//!
//! 1. `--kernel PATH`;
//! 2. `$PMUC_PROBE_KERNEL`;
//! 3. where `cargo xtask kernel` leaves it, [`IN_TARGET_DIR`], under
//!    `$CARGO_TARGET_DIR`, under the target directory this executable sits in
//!    (`target/release/pmu-conformance`, or `target/debug/deps/<test>`), or
//!    under the `target/` of the checkout the run starts in.
//!
//! A path given by the first two that is not a file is a bad argument; an
//! image the search does not find is an environment that cannot start, and
//! the message says how to build one.

use std::path::{Path, PathBuf};

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
    in_target_dirs(IN_TARGET_DIR).map_err(|looked| {
        StartError::Unavailable(format!(
            "the probe kernel image is not built: `cargo xtask kernel` builds it in a checkout \
             (looked for {looked}); --kernel PATH or ${VARIABLE} names another"
        ))
    })
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
