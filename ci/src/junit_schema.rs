//! `cargo xtask junit-schema`: Jenkins' xUnit schema for JUnit files
//! (junit-10.xsd, the file the xunit plugin validates reports with), which
//! the JUnit test validates every file the runner writes against. It is not
//! committed here: pytest's source distribution ships a copy of it among
//! its tests (`testing/example_scripts/junit-10.xsd`, which pytest's own
//! JUnit writer is checked against), so this fetches that one pinned
//! release from PyPI with `pip download`, unpacks the one file into
//! `target/junit-schema/junit-10.xsd`, and checks its SHA-256.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The pytest release whose sdist carries the schema.
const PYTEST: &str = "8.3.4";
/// junit-10.xsd as pytest 8.3.4 ships it (Jenkins xunit-plugin's file,
/// MIT licence, Gregory Boissinot).
const SHA256: &str = "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6";

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("`cargo xtask junit-schema` takes no arguments");
    }
    println!("{}", fetch(sh)?.display());
    Ok(())
}

/// The schema's path, fetched unless it is already there.
pub fn fetch(sh: &Shell) -> Result<PathBuf> {
    let dir = sh.current_dir().join("target/junit-schema");
    let schema = dir.join("junit-10.xsd");
    if schema.is_file() && digest(sh, &schema)? == SHA256 {
        return Ok(schema);
    }
    let work = dir.join("download");
    std::fs::create_dir_all(&work)?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| crate::have(sh, p))
        .context("no python3 to run pip with: install Debian's python3-pip")?;
    if cmd!(sh, "{python} -m pip --version")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        crate::apt_install(sh, &["python3-pip"])?;
    }
    let wanted = format!("pytest=={PYTEST}");
    cmd!(
        sh,
        "{python} -m pip download --quiet --no-deps --no-binary :all: -d {work} {wanted}"
    )
    .run()?;
    let archive = work.join(format!("pytest-{PYTEST}.tar.gz"));
    let member = format!("pytest-{PYTEST}/testing/example_scripts/junit-10.xsd");
    let bytes = cmd!(sh, "tar -xzOf {archive} {member}").quiet().output()?.stdout;
    let unpacked = work.join("junit-10.xsd");
    std::fs::write(&unpacked, bytes)?;
    let got = digest(sh, &unpacked)?;
    if got != SHA256 {
        bail!("{member} has SHA-256 {got}, not the {SHA256} this project checks its JUnit files against");
    }
    std::fs::rename(&unpacked, &schema)?;
    std::fs::remove_dir_all(&work)?;
    Ok(schema)
}

fn digest(sh: &Shell, path: &std::path::Path) -> Result<String> {
    let line = cmd!(sh, "sha256sum {path}").quiet().read()?;
    Ok(line.split_whitespace().next().unwrap_or_default().to_owned())
}
