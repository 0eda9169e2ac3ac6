//! `cargo xtask bless`: record this machine's outcomes as its expectations.
//!
//! The only writer of expected/ besides `cargo insta review`. It refuses on
//! CI, as the runner itself does.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        bail!("CI never records expectations");
    }
    cmd!(sh, "cargo run --release -- --accept {args...}").run()?;
    println!("xtask: review the new expectations with `git diff expected/` before committing them");
    Ok(())
}
