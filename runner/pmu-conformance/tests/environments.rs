//! Every environment the matrices list that can run on any machine, as one
//! trial each: the `sim:` environments (the reference model) and the `qemu`
//! ones (the probe kernel, booted). Each trial runs the binary as a user
//! would, `pmu-conformance --env <id>`, and passes when every case matches
//! that environment's expectations under expected/. Listing an environment
//! in matrices/ adds its trial; `linux` environments are this machine's
//! `conformance` target's business.
//!
//! The `qemu` trials need QEMU and the probe kernel image (`cargo xtask
//! test` sets both up); without them they fail, saying what to install.
//! `qemu-kvm` needs `/dev/kvm` too: where it is not usable, that trial is
//! ignored with the reason, and the TCG one still boots the kernel.

use std::process::{Command, ExitCode};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use pmu_conformance::environment::{Matrices, Target};
use pmu_conformance::executor::qemu::launcher;
use pmu_conformance::vocabulary::Accel;

fn main() -> ExitCode {
    let matrices = Matrices::builtin().expect("the built-in matrices load");
    let trials = matrices
        .environments
        .values()
        // ssh environments need their remote: tests/ssh.rs starts one. An xl
        // environment, here not in a Xen dom0, is unsupported with the reason.
        .filter(|env| !matches!(env.target, Target::Local | Target::Ssh(_)))
        // A Linux dom0 under TCG takes about 25 s; tests/xen.rs runs it.
        .filter(|env| env.target.kind() != "qemu-xen-domu")
        .map(|env| {
            let id = env.id.to_string();
            let needs_kvm = matches!(&env.target, Target::Qemu(g) if g.accel == Accel::Kvm);
            Trial::ignorable_test(format!("env::{id}"), move || {
                if needs_kvm && !launcher::kvm_usable() {
                    return Ok(Completion::ignored_with(
                        "/dev/kvm is missing or not usable by this user",
                    ));
                }
                run(&id).map(|()| Completion::Completed)
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

fn run(id: &str) -> Result<(), Failed> {
    let output = Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
        .args(["--env", id, "--quiet"])
        // Compare only, whatever the caller's environment says.
        .env_remove("INSTA_UPDATE")
        .env_remove("INSTA_FORCE_PASS")
        .output()
        .map_err(|e| format!("could not run pmu-conformance: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`pmu-conformance --env {id}` exited with {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .into())
}
