//! `cargo xtask dist`: the static runner, one file that carries the suites
//! and the matrices and runs on any x86_64 Linux (no glibc needed), and
//! that a Linux guest boots as its init (`qemu-linux` environments).
//!
//! It is built for x86_64-unknown-linux-musl (statically linked) and
//! stripped, and lands where those environments look for it:
//! `target/x86_64-unknown-linux-musl/release/pmu-conformance`.

use std::path::PathBuf;

use anyhow::Result;
use xshell::{Shell, cmd};

pub const TARGET: &str = "x86_64-unknown-linux-musl";

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !args.is_empty() {
        anyhow::bail!("`cargo xtask dist` takes no arguments");
    }
    let runner = build(sh, false)?;
    let size = std::fs::metadata(&runner)?.len();
    println!("{} ({:.2} MB)", runner.display(), size as f64 / 1e6);
    Ok(())
}

/// Builds the stripped static runner; returns its path.
pub fn build(sh: &Shell, locked: bool) -> Result<PathBuf> {
    crate::kernel::ensure_target(sh, TARGET)?;
    let locked = locked.then_some("--locked");
    cmd!(
        sh,
        "cargo build --release -p pmu-conformance --bin pmu-conformance --target {TARGET} {locked...}"
    )
    .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
    .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
    .run()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| sh.current_dir().join("target"), |dir| sh.current_dir().join(dir));
    Ok(target_dir.join(TARGET).join("release").join("pmu-conformance"))
}
