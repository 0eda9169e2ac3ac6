//! `cargo xtask kernel`: builds the probe kernel image (`runner/probe-kernel`)
//! for x86_64-unknown-none and prints its path.
//!
//! The target is Tier 2 with prebuilt `core` and `alloc`, so the stable
//! toolchain builds it once rustup has the target; [`ensure_target`] adds it
//! when it is missing. `cargo xtask test` calls both before the tests, since
//! the boot tests need the image.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

pub const TARGET: &str = "x86_64-unknown-none";

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !args.is_empty() {
        anyhow::bail!("`cargo xtask kernel` takes no arguments");
    }
    ensure_target(sh, TARGET)?;
    let image = build(sh, false)?;
    println!("{}", image.display());
    Ok(())
}

/// Installs `target` with rustup if `rustup target list --installed`
/// lacks it. Without rustup (a distribution's toolchain) it assumes the
/// target is there and lets the build say otherwise.
pub fn ensure_target(sh: &Shell, target: &str) -> Result<()> {
    let Ok(installed) = cmd!(sh, "rustup target list --installed").quiet().read() else {
        println!("xtask: no rustup here; assuming the toolchain has the {target} target");
        return Ok(());
    };
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    println!("xtask: installing the {target} target");
    cmd!(sh, "rustup target add {target}").run().with_context(|| {
        format!(
            "the {target} target is missing and `rustup target add {target}` failed (it downloads from \
             static.rust-lang.org); run it where that is reachable: nothing for that target can be built without it"
        )
    })
}

/// Builds the image in release; returns its path.
pub fn build(sh: &Shell, locked: bool) -> Result<PathBuf> {
    let locked = locked.then_some("--locked");
    // RUSTFLAGS from the environment would replace the target's
    // relocation-model=static (.cargo/config.toml), and PVH loaders cannot
    // place the PIE that results.
    cmd!(
        sh,
        "cargo build --release -p probe-kernel --target {TARGET} {locked...}"
    )
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .run()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| sh.current_dir().join("target"), |dir| sh.current_dir().join(dir));
    Ok(target_dir.join(TARGET).join("release").join("probe-kernel"))
}
