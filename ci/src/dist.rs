//! `cargo xtask dist`: the static runner, one file that carries the suites
//! and the matrices and runs on any x86_64 Linux (no glibc needed), and
//! that a Linux guest boots as its init (`qemu-linux` environments).
//!
//! It is built for x86_64-unknown-linux-musl (statically linked) and
//! stripped, and lands where those environments look for it:
//! `target/x86_64-unknown-linux-musl/release/pmu-conformance`. The probe
//! kernel image (`cargo xtask kernel`) is appended to it, with a trailer
//! the runner reads back (runner/pmu-conformance/src/executor/qemu/image.rs,
//! `TRAILER_MAGIC`): the image, its length as a little-endian u64, then
//! `PMUCKRN1`. The suites and matrices are compiled in.
//!
//! Beside it, in `target/dist/`, the runner writes its man pages
//! (`man/pmu-conformance.1`, and one per subcommand) and its completions for bash, zsh and fish
//! (`completions/`), generated from the same clap definitions as `--help`.

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
    let extras = extras(sh, &runner)?;
    println!("{}", extras.display());
    Ok(())
}

/// The man page and the shell completions, written by `runner` itself into
/// `target/dist/`; returns that folder.
fn extras(sh: &Shell, runner: &std::path::Path) -> Result<PathBuf> {
    let dist = sh.current_dir().join("target").join("dist");
    let (man, completions) = (dist.join("man"), dist.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let page = cmd!(sh, "{runner} man").quiet().read()?;
    // Each subcommand the main page's SUBCOMMANDS section names has its own page.
    let subcommands: Vec<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("pmu\\-conformance\\-")?.strip_suffix("(1)"))
        .map(|name| name.replace("\\-", "-"))
        // clap's own `help` has no page of its own.
        .filter(|name| name != "help")
        .collect();
    std::fs::write(man.join("pmu-conformance.1"), page + "\n")?;
    for sub in &subcommands {
        let page = cmd!(sh, "{runner} man {sub}").quiet().read()?;
        std::fs::write(man.join(format!("pmu-conformance-{sub}.1")), page + "\n")?;
    }
    for (shell, file) in [
        ("bash", "pmu-conformance.bash"),
        ("zsh", "_pmu-conformance"),
        ("fish", "pmu-conformance.fish"),
    ] {
        let script = cmd!(sh, "{runner} completions {shell}").quiet().read()?;
        anyhow::ensure!(!script.is_empty(), "the runner wrote no {shell} completions");
        std::fs::write(completions.join(file), script + "\n")?;
    }
    Ok(dist)
}

/// The trailer's last eight bytes (image.rs's `TRAILER_MAGIC`).
const TRAILER_MAGIC: &[u8; 8] = b"PMUCKRN1";

/// Builds the stripped static runner with the probe kernel appended; returns its path.
pub fn build(sh: &Shell, locked: bool) -> Result<PathBuf> {
    crate::kernel::ensure_target(sh, crate::kernel::TARGET)?;
    let kernel = crate::kernel::build(sh, locked)?;
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
    let runner = target_dir.join(TARGET).join("release").join("pmu-conformance");
    embed(&runner, &std::fs::read(&kernel)?)?;
    Ok(runner)
}

/// Appends `image` to the runner with its trailer, first removing one an
/// earlier `dist` appended (cargo leaves a fresh build's output alone).
fn embed(runner: &std::path::Path, image: &[u8]) -> Result<()> {
    let mut bytes = std::fs::read(runner)?;
    if bytes.len() >= 16 && &bytes[bytes.len() - 8..] == TRAILER_MAGIC {
        let length = u64::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 8].try_into()?) as usize;
        anyhow::ensure!(length + 16 <= bytes.len(), "{}: a damaged trailer", runner.display());
        bytes.truncate(bytes.len() - 16 - length);
    }
    bytes.extend_from_slice(image);
    bytes.extend_from_slice(&(image.len() as u64).to_le_bytes());
    bytes.extend_from_slice(TRAILER_MAGIC);
    let temporary = runner.with_extension("embedding");
    std::fs::write(&temporary, &bytes)?;
    std::fs::set_permissions(&temporary, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::rename(&temporary, runner)?;
    Ok(())
}
