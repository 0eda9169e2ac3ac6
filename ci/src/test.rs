//! `cargo xtask test`: everything CI runs, on a fresh machine of this kind.
//!
//! Sets up what the tests need (QEMU, the x86_64-unknown-none target and the
//! probe kernel image, for the boot tests), then checks formatting and runs
//! every test target of the workspace: unit tests, the bad-input and
//! CPUID-dump tables, the CLI tests, the conformance suites against
//! expected/, the soak test and the probe kernel's boots.
//! CI sets `CI=true`, so nothing under expected/ can be written.

use anyhow::Result;
use xshell::{Shell, cmd};

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    step("formatting");
    if cmd!(sh, "cargo fmt --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        cmd!(sh, "cargo fmt --all -- --check").run()?;
    } else {
        println!("xtask: rustfmt is not installed; formatting not checked");
    }

    step("guest tools");
    guest_tools(sh)?;

    step("tests");
    cmd!(sh, "cargo test --workspace --all-targets --locked {args...}").run()?;
    cmd!(sh, "cargo test --workspace --doc --locked").run()?;
    step("all tests passed");
    Ok(())
}

/// QEMU and the probe kernel image, for `runner/probe-kernel/tests/boot.rs`.
/// Where QEMU or the target cannot be installed (CI may reach only package
/// registries) this says so and goes on: the boot tests then fail, naming
/// what is missing. A kernel that does not compile fails here.
fn guest_tools(sh: &Shell) -> Result<()> {
    if !crate::have(sh, "qemu-system-x86_64")
        && let Err(e) = crate::apt_install(sh, &["qemu-system-x86"])
    {
        println!("xtask: NOTICE: could not install QEMU ({e:#}); the boot tests will fail and say so");
    }
    match crate::kernel::ensure_target(sh) {
        Ok(()) => {
            let image = crate::kernel::build(sh, true)?;
            println!("xtask: probe kernel image {}", image.display());
        }
        Err(e) => println!(
            "xtask: NOTICE: {e:#}\nxtask: the probe kernel image cannot be built; the boot tests will fail and say so"
        ),
    }
    Ok(())
}

fn step(name: &str) {
    println!("\n== xtask test: {name}");
}
