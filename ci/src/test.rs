//! `cargo xtask test`: everything CI runs, on a fresh machine of this kind.
//!
//! Checks formatting, builds every test target, and sets up what the boot
//! tests need (QEMU, the x86_64-unknown-none target and the probe kernel
//! image; the static runner and Debian's cloud kernel for the Linux guest;
//! Debian's Xen), Chromium for the HTML certificate's test, and xmllint
//! and Jenkins' junit-10.xsd for the JUnit schema's.
//! Then it runs the soak test (a thousand rounds of the self-check suite:
//! minutes, nearly all in the kernel's breakpoint handling) in the
//! background, beside every other test target of the workspace: unit tests,
//! the bad-input and CPUID-dump tables, the CLI, guest and report tests, the
//! conformance suites against expected/ and the boots. Nothing compiles
//! beside the soak, so that its timings are of the tests alone. CI sets
//! `CI=true`, so nothing under expected/ can be written.

use std::fs::File;
use std::path::PathBuf;
use std::process::Child;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The soak test, which runs beside the others.
const SOAK: &str = "selfcheck_suite_1000_times_leaves_no_trace";

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let started = Instant::now();
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

    step("building the tests");
    cmd!(sh, "cargo test --workspace --all-targets --locked --no-run").run()?;

    // Everything that compiles runs before the soak starts, so the soak
    // shares the CPUs with the tests alone.
    step("guest tools");
    guest_tools(sh)?;

    step("the soak test, in the background");
    let soak = Background::start(sh, "soak")?;

    step("tests");
    let rest = cmd!(
        sh,
        "cargo test --workspace --all-targets --locked {args...} -- --skip {SOAK}"
    )
    .run();
    let doc = cmd!(sh, "cargo test --workspace --doc --locked").run();
    step("the soak test");
    let soak = soak.finish();
    rest?;
    doc?;
    soak?;
    step(&format!("all tests passed in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// The soak test, running with its output in a log under target/.
struct Background {
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl Background {
    fn start(sh: &Shell, name: &str) -> Result<Background> {
        let log = sh.current_dir().join("target").join(format!("xtask-{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // xshell runs commands to completion; this one runs beside the others.
        let mut command = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .args(["test", "--locked", "-p", "pmu-conformance", "--test", "soak"])
            .current_dir(sh.current_dir())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = command.spawn().context("starting the soak test")?;
        println!("xtask: its output goes to {}", log.display());
        Ok(Background {
            child,
            log,
            started: Instant::now(),
        })
    }

    /// Waits for it, prints its output, and says whether it passed.
    fn finish(mut self) -> Result<()> {
        let status = self.child.wait().context("waiting for the soak test")?;
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        print!("{output}");
        println!(
            "xtask: the soak test took {:.0} s",
            self.started.elapsed().as_secs_f64()
        );
        if !status.success() {
            bail!("the soak test failed ({status}); its output is above");
        }
        Ok(())
    }
}

/// QEMU and the probe kernel image, for the boot tests. Where QEMU or the
/// target cannot be installed (CI may reach only package registries) this
/// says so and goes on: the boot tests then fail, naming what is missing. A
/// kernel that does not compile fails here.
fn guest_tools(sh: &Shell) -> Result<()> {
    if !crate::have(sh, "qemu-system-x86_64")
        && let Err(e) = crate::apt_install(sh, &["qemu-system-x86"])
    {
        println!("xtask: NOTICE: could not install QEMU ({e:#}); the boot tests will fail and say so");
    }
    // Headless Chromium renders the HTML certificate in its test; xmllint
    // validates the JUnit files.
    for (tool, package, test) in [
        ("chromium", "chromium", "the certificate's browser test"),
        ("xmllint", "libxml2-utils", "the JUnit schema test"),
    ] {
        if !crate::have(sh, tool)
            && let Err(e) = crate::apt_install(sh, &[package])
        {
            println!("xtask: NOTICE: could not install {package} ({e:#}); {test} will fail and say so");
        }
    }
    match crate::junit_schema::fetch(sh) {
        Ok(schema) => println!("xtask: Jenkins' JUnit schema {}", schema.display()),
        Err(e) => println!("xtask: NOTICE: {e:#}\nxtask: no junit-10.xsd; the JUnit schema test will fail and say so"),
    }
    match crate::kernel::ensure_target(sh, crate::kernel::TARGET) {
        Ok(()) => {
            let image = crate::kernel::build(sh, true)?;
            println!("xtask: probe kernel image {}", image.display());
        }
        Err(e) => println!(
            "xtask: NOTICE: {e:#}\nxtask: the probe kernel image cannot be built; the boot tests will fail and say so"
        ),
    }
    // The Linux guest's environment: the static runner as its init, and
    // Debian's cloud kernel (apt-get download, from the package registry).
    match crate::dist::build(sh, true) {
        Ok(runner) => println!("xtask: static runner {}", runner.display()),
        Err(e) => println!(
            "xtask: NOTICE: {e:#}\nxtask: the static runner cannot be built; the Linux guest will fail and say so"
        ),
    }
    match crate::sshd::fetch(sh) {
        Ok(sshd) => println!("xtask: loopback sshd {}", sshd.display()),
        Err(e) => println!("xtask: NOTICE: {e:#}\nxtask: no sshd; the ssh environment's test will fail and say so"),
    }
    match crate::xen::fetch(sh) {
        Ok(xen) => println!("xtask: Xen {}", xen.display()),
        Err(e) => println!("xtask: NOTICE: {e:#}\nxtask: no Xen; the Xen environments' tests will fail and say so"),
    }
    match crate::guest_kernel::fetch(sh) {
        Ok(kernel) => println!("xtask: guest kernel {}", kernel.display()),
        Err(e) => println!("xtask: NOTICE: {e:#}\nxtask: no guest kernel; the Linux guest will fail and say so"),
    }
    Ok(())
}

fn step(name: &str) {
    println!("\n== xtask test: {name}");
}
