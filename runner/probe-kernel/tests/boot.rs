//! Real boots of the probe kernel under QEMU: TCG always, KVM where
//! `/dev/kvm` is usable. Neither has a PMU here, so every case comes back
//! `unsupported` with its reason; what these tests prove is the path around
//! the checks: PVH boot, the console, the protocol frames, the exit codes,
//! the watchdog and the host's timeout.
//!
//! The image is built (or found up to date) by a nested `cargo build`, as
//! `cargo xtask kernel` does. Without QEMU or the x86_64-unknown-none target
//! these tests fail and say what to install: `cargo xtask test` installs both.
#![cfg(not(target_os = "none"))]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use pmu_conformance::executor::qemu::launcher::{self, Boot, Ending, Exit, Machine, QemuConfig};
use pmu_conformance::vocabulary::Accel;
use pmu_kernel_checks::protocol::{self, Frame};
use pmu_kernel_checks::record::{ReasonCode, Verdict};

const PLAN: &str = "pmuc=k/status,overflow-status,counter=gp0,int=1;k/ack,ovf-ack";
const TARGET: &str = "x86_64-unknown-none";

/// The image, built once per test process.
fn image() -> PathBuf {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE.get_or_init(build).clone().unwrap_or_else(|why| panic!("{why}"))
}

fn build() -> Result<PathBuf, String> {
    // RUSTFLAGS from the environment would replace the target's
    // relocation-model=static (.cargo/config.toml) and give a PIE that PVH
    // loaders cannot place.
    let output = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "probe-kernel", "--target", TARGET])
        .args(["--message-format=json-render-diagnostics"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("could not run cargo to build the probe kernel: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "could not build the probe kernel image (`cargo build --release -p probe-kernel --target {TARGET}`):\n{}\n\
             If the {TARGET} target is missing, `rustup target add {TARGET}` installs it \
             (`cargo xtask test` and `cargo xtask kernel` do this).",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "probe-kernel")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built the probe kernel but named no executable".to_string())
}

fn boot(config: &QemuConfig) -> Boot {
    let boot = launcher::boot(config).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{} ({:?}, {:?}): {:?} after {:?}{}\n  {}",
        config.command_line(),
        config.machine,
        config.accel,
        boot.exit,
        boot.wall,
        if boot.ending == Ending::Exited { "" } else { ", killed" },
        boot.lines.join("\n  ")
    );
    boot
}

/// Every frame on the console, decoded; a frame that fails to decode fails the test.
fn frames(boot: &Boot) -> Vec<Frame> {
    boot.lines
        .iter()
        .filter_map(|line| protocol::decode(line))
        .map(|frame| frame.unwrap_or_else(|e| panic!("a corrupt frame: {e}\n{boot:#?}")))
        .collect()
}

/// The hello's fields, the records, and the end frame's count.
fn session(boot: &Boot) -> (Vec<(String, String)>, Vec<pmu_kernel_checks::record::Record>, u64) {
    let frames = frames(boot);
    let Some((Frame::Hello(hello), rest)) = frames.split_first().map(|(f, r)| (f.clone(), r)) else {
        panic!("no hello frame first:\n{boot:#?}");
    };
    let Some((Frame::End { cases }, records)) = rest.split_last() else {
        panic!("no end frame last:\n{boot:#?}");
    };
    let records = records
        .iter()
        .map(|f| match f {
            Frame::Case(r) => r.clone(),
            other => panic!("a {other:?} between hello and end:\n{boot:#?}"),
        })
        .collect();
    (hello, records, *cases)
}

/// The plan ran to its end: a banner, a hello without a plan error, one
/// record per case in order, `end cases=2`, and guest exit code 0.
fn assert_plan_ran(boot: &Boot) -> Vec<pmu_kernel_checks::record::Record> {
    assert_eq!(
        boot.ending,
        Ending::Exited,
        "the guest did not end by itself:\n{boot:#?}"
    );
    assert_eq!(boot.exit, Exit::Guest(0), "{boot:#?}");
    assert!(
        boot.lines.iter().any(|l| l.starts_with("probe-kernel: booted (")),
        "no banner:\n{boot:#?}"
    );
    // The boot's self-test ran the NMI handler and the deschedule path
    // (here an OUT to port 0x80: only Xen takes SCHEDOP_yield).
    assert!(
        boot.lines
            .iter()
            .any(|l| l.starts_with("probe-kernel: self-test: 1 NMI from the ICR")
                && l.ends_with("1 deschedule by OUT to port 0x80 (an exit to the VMM's user space)")),
        "no self-test line, or not one NMI:\n{boot:#?}"
    );
    let (hello, records, cases) = session(boot);
    assert!(hello.iter().any(|(k, _)| k == "vendor"), "{hello:?}");
    assert!(!hello.iter().any(|(k, _)| k == "plan_error"), "{hello:?}");
    let ids: Vec<&str> = records.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(ids, ["k/status", "k/ack"]);
    assert_eq!(cases, 2);
    records
}

#[test]
fn under_tcg_every_case_is_unsupported_with_its_reason() {
    for machine in [Machine::Pc, Machine::Microvm] {
        let config = QemuConfig {
            machine,
            ..QemuConfig::new(image(), Accel::Tcg, format!("{PLAN} {}", pmu_kernel_checks::RDPMC_WORD))
        };
        let booted = boot(&config);
        let records = assert_plan_ran(&booted);
        // The kernel's RDPMC ran, and its #UD was caught: QEMU's TCG emulates
        // no PMU and raises #UD for RDPMC (target/i386/tcg/misc_helper.c,
        // helper_rdpmc).
        let (hello, _, _) = session(&booted);
        assert!(hello.iter().any(|(k, v)| k == "rdpmc0" && v == "vector 6"), "{hello:?}");
        // TCG's qemu64 is AMD-vendor without PerfMonV2: no global status.
        for r in &records {
            assert_eq!(r.verdict, Verdict::Unsupported, "{r:?}");
            // A counter that neither holds a value nor counts is no PMU at all.
            assert!(
                r.reason
                    .as_ref()
                    .is_some_and(|why| why.code == ReasonCode::NoPmu && !why.message.is_empty()),
                "{r:?}"
            );
        }
    }
}

#[test]
fn under_kvm_the_plan_runs_to_its_end() {
    if !launcher::kvm_usable() {
        eprintln!("/dev/kvm is not usable here: the KVM boot was not tried");
        return;
    }
    let boot = boot(&QemuConfig::new(image(), Accel::Kvm, PLAN));
    // The verdicts depend on the host's vPMU; without one (kvm.enable_pmu=N,
    // as on the development machines) both are unsupported.
    for r in assert_plan_ran(&boot) {
        assert!(r.verdict != Verdict::Unsupported || r.reason.is_some(), "{r:?}");
    }
    eprintln!("KVM microvm: spawn to last verdict {:?}", boot.wall);
}

/// The console in guest memory (`pmuc.memcon=`, as the qemu environments
/// boot the kernel) carries the whole plan, under TCG and under KVM; a
/// region the kernel cannot use is refused on the port, and the plan runs.
#[test]
fn the_console_in_guest_memory_carries_the_plan_and_a_bad_region_is_refused() {
    let mut accels = vec![Accel::Tcg];
    if launcher::kvm_usable() {
        accels.push(Accel::Kvm);
    }
    for accel in accels {
        let booted = boot(&QemuConfig {
            machine: Machine::Microvm,
            memory_console: true,
            ..QemuConfig::new(image(), accel, PLAN)
        });
        assert_plan_ran(&booted);
        let text: usize = booted.lines.iter().map(|l| l.len() + 1).sum();
        assert_eq!(booted.memory_bytes, text, "every byte through memory: {booted:#?}");
    }
    let misaligned = boot(&QemuConfig {
        machine: Machine::Microvm,
        ..QemuConfig::new(image(), Accel::Tcg, format!("{PLAN} pmuc.memcon=0x4000800,0x1000"))
    });
    assert_plan_ran(&misaligned);
    assert_eq!(misaligned.memory_bytes, 0);
    assert!(
        misaligned.lines.iter().any(|l| l
            == "probe-kernel: ignoring `pmuc.memcon=0x4000800,0x1000` (not a page-aligned <hex base>,<hex \
                length> of a page or more, ending by 4 GiB); the console stays on the ports"),
        "{misaligned:#?}"
    );
    let over_the_image = boot(&QemuConfig {
        machine: Machine::Microvm,
        ..QemuConfig::new(image(), Accel::Tcg, format!("{PLAN} pmuc.memcon=0x100000,0x1000"))
    });
    assert_plan_ran(&over_the_image);
    assert!(
        over_the_image
            .lines
            .iter()
            .any(|l| l.contains("(the region overlaps the kernel's image)")),
        "{over_the_image:#?}"
    );
}

#[test]
fn a_bad_plan_is_reported_in_the_hello_and_the_guest_still_exits_0() {
    let boot = boot(&QemuConfig {
        machine: Machine::Microvm,
        ..QemuConfig::new(image(), Accel::Tcg, "pmuc=k/x,no-such-check")
    });
    assert_eq!(boot.exit, Exit::Guest(0), "{boot:#?}");
    let (hello, records, cases) = session(&boot);
    let error = hello.iter().find(|(k, _)| k == "plan_error").map(|(_, v)| v.as_str());
    assert_eq!(error, Some("`k/x,no-such-check`: no known check after the id"));
    assert!(records.is_empty());
    assert_eq!(cases, 0);
}

#[test]
fn the_watchdog_ends_the_guest_with_code_1_and_says_so() {
    // 0 s expires at the first check, before the hello.
    let boot = boot(&QemuConfig {
        machine: Machine::Microvm,
        ..QemuConfig::new(image(), Accel::Tcg, format!("{PLAN} pmuc.watchdog=0"))
    });
    assert_eq!(boot.exit, Exit::Guest(1), "{boot:#?}");
    assert_eq!(boot.ending, Ending::Exited);
    assert!(
        boot.lines
            .last()
            .is_some_and(|l| l.starts_with("probe-kernel: watchdog expired")),
        "{boot:#?}"
    );
    assert!(frames(&boot).is_empty(), "{boot:#?}");
}

#[test]
fn a_guest_past_the_timeout_is_killed_and_reported() {
    // SeaBIOS alone takes longer than this.
    let boot = boot(&QemuConfig {
        timeout: Duration::from_millis(10),
        ..QemuConfig::new(image(), Accel::Tcg, PLAN)
    });
    assert_eq!(boot.ending, Ending::Deadline, "{boot:#?}");
    assert_eq!(boot.exit, Exit::Signal(9), "{boot:#?}");
}

#[test]
fn the_image_is_a_fixed_address_executable_with_the_pvh_note() {
    let elf = std::fs::read(image()).unwrap();
    assert_eq!(&elf[..5], b"\x7fELF\x02", "an ELF64");
    // e_type 2: ET_EXEC. A PIE (3) would need a relocating loader, and PVH loaders do not relocate.
    assert_eq!(u16::from_le_bytes([elf[16], elf[17]]), 2);
    // XEN_ELFNOTE_PHYS32_ENTRY: namesz 4, descsz 8, type 18, "Xen\0".
    let note = [4u32.to_le_bytes(), 8u32.to_le_bytes(), 18u32.to_le_bytes(), *b"Xen\0"].concat();
    assert!(elf.windows(note.len()).any(|w| w == note), "no PVH entry note");
    // QEMU tries multiboot first and rejects ELF64 there: no multiboot magic in the first 8 KiB.
    let magic = 0x1bad_b002u32.to_le_bytes();
    assert!(
        !elf[..8192.min(elf.len())].windows(4).any(|w| w == magic),
        "a multiboot header"
    );
}
