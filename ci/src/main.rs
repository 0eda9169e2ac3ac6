//! `cargo xtask`: every developer and CI task of pmu-conformance.
//!
//! Each task is a module with a `run` function; they all start from one
//! `Shell` at the project root and call tools with `cmd!`, never `sh -c`.
//! CI calls exactly one of them: `cargo xtask test` (see `.ci/run`).

mod bench;
mod bless;
mod detection_matrix;
mod dist;
mod guest_kernel;
mod junit_schema;
mod kernel;
mod sshd;
mod test;
mod xen;
mod xen_dom0;

use std::path::PathBuf;

use anyhow::{Result, bail};
use xshell::Shell;

const HELP: &str = "\
cargo xtask <task> [args]

tasks:
  test            set up what the tests need on this machine (QEMU, the probe kernel
                  image), then run every test (formatting, unit, integration,
                  conformance, soak, probe kernel boots) as CI does
  kernel          build the probe kernel image for x86_64-unknown-none (adding the
                  target with rustup when it is missing) and print its path
  dist            build the static runner (x86_64-unknown-linux-musl, stripped): one
                  file that runs anywhere and that a Linux guest boots as its init;
                  and its man page and bash, zsh and fish completions in target/dist/
  guest-kernel    fetch Debian's cloud kernel for the Linux guests (apt-get download,
                  unpacked, not installed) into target/guest/vmlinuz
  xen             fetch Debian's Xen hypervisor for the qemu-xen-dom0 environments
                  (apt-get download, unpacked, not installed) into
                  target/xen/<version>/xen, linked as target/xen/current, and
                  the qemu-xen-domu environments' Linux PV dom0 (Debian's generic
                  kernel, Xen's toolstack and its libraries) into .../dom0/
  sshd            fetch Debian's OpenSSH server (apt-get download, unpacked, not
                  installed) into target/sshd/ for the ssh environment's loopback test
  junit-schema    fetch Jenkins' xUnit schema (junit-10.xsd, from pytest's source
                  distribution on PyPI, pinned and checked) into target/junit-schema/
                  for the JUnit files' schema test
  bench           run the benchmarks (installs Debian's linux-perf for the
                  comparison with `perf test` when it is missing and apt-get works)
  detection-matrix
                  regenerate matrices/detection-matrix.md from the reference model
  bless [ARGS]    record this machine's outcomes as its expectations under
                  expected/ (`cargo run --release -- --accept ARGS`); never on CI
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match task.as_deref() {
        Some("test") => test::run(&sh, &rest),
        Some("kernel") => kernel::run(&sh, &rest),
        Some("dist") => dist::run(&sh, &rest),
        Some("guest-kernel") => guest_kernel::run(&sh, &rest),
        Some("sshd") => sshd::run(&sh, &rest),
        Some("junit-schema") => junit_schema::run(&sh, &rest),
        Some("xen") => xen::run(&sh, &rest),
        Some("bench") => bench::run(&sh, &rest),
        Some("bless") => bless::run(&sh, &rest),
        Some("detection-matrix") => detection_matrix::run(&sh, &rest),
        None | Some("help" | "--help" | "-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

/// The workspace root: this crate lives in `<root>/ci`.
fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().expect("ci/ is inside the project").to_path_buf()
}

/// Whether `tool` runs here.
fn have(sh: &Shell, tool: &str) -> bool {
    xshell::cmd!(sh, "which {tool}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Fetches Debian `packages` with `apt-get download` into `work` (created
/// if need be), never installing them; returns the .deb files there.
fn apt_download(sh: &Shell, work: &std::path::Path, packages: &[&str]) -> Result<Vec<PathBuf>> {
    for tool in ["apt-get", "dpkg-deb"] {
        if !have(sh, tool) {
            bail!(
                "`{tool}` is not available: {} is fetched with apt-get download",
                packages.join(" ")
            );
        }
    }
    std::fs::create_dir_all(work)?;
    let _in_work = sh.push_dir(work);
    xshell::cmd!(sh, "apt-get download {packages...}").run()?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    Ok(debs)
}

/// Installs Debian packages if we may (root, apt-get present); says what it did.
fn apt_install(sh: &Shell, packages: &[&str]) -> Result<()> {
    if !have(sh, "apt-get") {
        bail!("apt-get is not available: install {} yourself", packages.join(" "));
    }
    // Run as root directly (CI, containers); otherwise through sudo.
    let root = xshell::cmd!(sh, "id -u").quiet().read()?.trim() == "0";
    let program = if root { "apt-get" } else { "sudo" };
    let sudo_args: &[&str] = if root { &[] } else { &["apt-get"] };
    println!("xtask: installing {} with apt-get", packages.join(" "));
    xshell::cmd!(sh, "{program} {sudo_args...} update -qq").run()?;
    xshell::cmd!(
        sh,
        "{program} {sudo_args...} install -y -qq --no-install-recommends {packages...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()?;
    Ok(())
}
