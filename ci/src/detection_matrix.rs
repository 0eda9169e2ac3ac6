//! `cargo xtask detection-matrix`: regenerates `matrices/detection-matrix.md`
//! from the reference model (the `detection_matrix` test fails while the
//! committed file is stale).

use anyhow::Result;
use xshell::{Shell, cmd};

const PATH: &str = "matrices/detection-matrix.md";

pub fn run(sh: &Shell, _args: &[String]) -> Result<()> {
    let text = cmd!(sh, "cargo run --release --quiet -p pmu-conformance -- detection-matrix").read()?;
    sh.write_file(PATH, format!("{text}\n"))?;
    println!("xtask: wrote {PATH}");
    Ok(())
}
