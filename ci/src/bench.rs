//! `cargo xtask bench`: the benchmarks, with perf installed for comparison.

use anyhow::Result;
use xshell::{Shell, cmd};

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !crate::have(sh, "perf") {
        // The breakpoint benchmark compares itself with `perf test`; without
        // perf it still runs and says what it could not compare.
        if let Err(e) = crate::apt_install(sh, &["linux-perf"]) {
            println!("xtask: no perf for the comparison: {e}");
        }
    }
    cmd!(sh, "cargo bench --workspace {args...}").run()?;
    Ok(())
}
