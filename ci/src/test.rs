//! `cargo xtask test`: everything CI runs, on a fresh machine of this kind.
//!
//! Sets up what the tests need, then checks formatting and runs every test
//! target of the workspace: unit tests, the bad-input and CPUID-dump tables,
//! the CLI tests, the conformance suites against expected/, and the soak test.
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

    step("tests");
    cmd!(sh, "cargo test --workspace --all-targets --locked {args...}").run()?;
    cmd!(sh, "cargo test --workspace --doc --locked").run()?;
    step("all tests passed");
    Ok(())
}

fn step(name: &str) {
    println!("\n== xtask test: {name}");
}
