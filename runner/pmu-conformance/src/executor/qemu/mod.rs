//! The kernel probe: boots the probe kernel under QEMU, one boot per case,
//! and reads its records.
//!
//! One boot per case keeps cases apart: a case that wedges or kills the
//! guest ends as that case's `error`, and the next case boots a fresh guest.
//! A boot costs about 0.1–0.2 s (see [`qemu`]), far less than any PMU check
//! is worth.
//!
//! Before any case runs, one boot with an empty plan reads the guest's
//! CPUID (the hello's `cpuid` field), so the environment's fingerprint is
//! the guest's, not the host's.

pub mod launcher;

use std::path::{Path, PathBuf};

use pmu_kernel_checks::cpuid_leaves;
use pmu_kernel_checks::plan::Plan;

use self::launcher::{Boot, BootError, Exit, QemuConfig};
use crate::case::Case;
use crate::cpu::{CpuidDump, CpuidReader};
use crate::event_table::{EventTable, ResolvedEvent};
use crate::executor::{Executor, StartError};
use crate::fingerprint::Fingerprint;
use crate::kernel_case::{self, Transcript};
use crate::outcome::{Outcome, Verdict};
use crate::vocabulary::Accel;

/// The environment variable that names the probe kernel image, ahead of the search.
pub const IMAGE_VARIABLE: &str = "PMUC_PROBE_KERNEL";

pub struct QemuExecutor {
    accel: Accel,
    /// QEMU's `-cpu` model, where the environment names one.
    cpu: Option<String>,
    image: PathBuf,
    fingerprint: Fingerprint,
}

impl QemuExecutor {
    /// Finds the image, boots it once to read the guest's CPUID, and is
    /// ready to run cases. Fails, saying what to do, where QEMU, the image
    /// or KVM is missing, or where the guest does not say hello.
    pub fn new(
        accel: Accel,
        cpu: Option<String>,
        image: Option<&Path>,
        table: &EventTable,
    ) -> Result<QemuExecutor, StartError> {
        let image = find_image(image)?;
        let config = QemuConfig {
            cpu: cpu.clone(),
            ..QemuConfig::new(&image, accel, format!("pmuc= {}", pmu_kernel_checks::CPUID_WORD))
        };
        let boot = launcher::boot(&config).map_err(|e| StartError::Unavailable(e.to_string()))?;
        let transcript = Transcript::read(boot.lines.iter().map(String::as_str));
        let Some(hello) = transcript.hello.as_ref() else {
            return Err(StartError::Unavailable(format!(
                "the probe kernel did not say hello under QEMU ({}): {}\n  command: {}",
                accel.name(),
                failure(&boot, &config),
                config.command_line()
            )));
        };
        let cpuid = hello.iter().find(|(k, _)| k == "cpuid").map_or("", |(_, v)| v.as_str());
        let leaves = cpuid_leaves::decode(cpuid).ok_or_else(|| {
            StartError::Unavailable(format!("the probe kernel's hello has a malformed cpuid field: {cpuid}"))
        })?;
        let dump = CpuidDump {
            leaves: leaves.into_iter().collect(),
        };
        let fingerprint = Fingerprint::from_parts(table, &CpuidReader::replay(dump), None);
        Ok(QemuExecutor {
            accel,
            cpu,
            image,
            fingerprint,
        })
    }

    /// The guest's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// One boot for `case`, as its outcome.
    fn boot(&self, case: &Case) -> Outcome {
        let id = case.id.to_string();
        let plan = Plan {
            cases: vec![kernel_case::request(case)],
        };
        let cmdline = match plan.to_cmdline() {
            Ok(cmdline) => cmdline,
            Err(why) => return Outcome::error(why),
        };
        // QemuConfig's timeout: twice the probe kernel's own watchdog.
        let config = QemuConfig {
            cpu: self.cpu.clone(),
            ..QemuConfig::new(&self.image, self.accel, cmdline)
        };
        let boot = match launcher::boot(&config) {
            Ok(boot) => boot,
            Err(e) => return Outcome::error(e.to_string()),
        };
        let transcript = Transcript::read(boot.lines.iter().map(String::as_str));
        let outcome = transcript.outcome(&id);
        let outcome = if outcome.verdict == Verdict::Error && !transcript.reported(&id) {
            // The transcript says what is missing; the boot says why.
            Outcome::error(format!(
                "{} ({})",
                outcome.reason.unwrap_or_default(),
                failure(&boot, &config)
            ))
        } else {
            outcome
        };
        outcome.figure("boot_ms", boot.wall.as_millis() as u64)
    }
}

impl Executor for QemuExecutor {
    fn describe(&self) -> String {
        format!("probe kernel under QEMU ({}), one boot per case", self.accel.name())
    }

    fn preflight(&self, _case: &Case) -> Result<Option<ResolvedEvent>, String> {
        // Whether the guest's PMU can run a case is the kernel's to say, in
        // its record: the host knows nothing about the guest's MSRs.
        Ok(None)
    }

    fn run(&self, case: &Case, _event: Option<&ResolvedEvent>) -> Outcome {
        self.boot(case)
    }
}

/// How a boot ended, for a case that has no record: the exit, the last
/// thing the guest printed, and what QEMU said.
fn failure(boot: &Boot, config: &QemuConfig) -> String {
    let how = match boot.exit {
        _ if boot.timed_out => format!("the guest ran past {}s and was killed", config.timeout.as_secs()),
        Exit::Guest(0) => "the guest exited normally".to_owned(),
        Exit::Guest(code) => format!("the guest exited with code {code}"),
        Exit::NoDebugExit => {
            "the guest stopped without reaching its exit port (a triple fault or a shutdown)".to_owned()
        }
        Exit::Qemu(code) => format!("QEMU failed with status {code}"),
        Exit::Signal(signal) => format!("QEMU was killed by signal {signal}"),
    };
    let last = boot.lines.iter().rev().find(|l| !l.trim().is_empty());
    let mut text = match last {
        Some(line) => format!("{how}; last console line: {:?}", truncate(line, 160)),
        None => format!("{how}; the console stayed empty"),
    };
    if let Some(error) = boot.stderr.lines().find(|l| !l.trim().is_empty()) {
        text.push_str(&format!("; QEMU said: {}", truncate(error, 200)));
    }
    text
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// The probe kernel image: `explicit` (from `--kernel`), else
/// `$PMUC_PROBE_KERNEL`, else where `cargo xtask kernel` leaves it in the
/// target directory beside this executable or `$CARGO_TARGET_DIR`.
pub fn find_image(explicit: Option<&Path>) -> Result<PathBuf, StartError> {
    if let Some(path) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(IMAGE_VARIABLE).map(PathBuf::from))
    {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(StartError::Argument(BootError::ImageMissing(path).to_string()))
        };
    }
    let mut target_dirs: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(exe) = std::env::current_exe() {
        // target/release/pmu-conformance, or target/debug/deps/<test> under cargo test.
        target_dirs.extend(exe.ancestors().skip(1).take(3).map(Path::to_path_buf));
    }
    target_dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let candidates: Vec<PathBuf> = target_dirs
        .iter()
        .map(|dir| dir.join(launcher::IMAGE_IN_TARGET_DIR))
        .collect();
    candidates.iter().find(|path| path.is_file()).cloned().ok_or_else(|| {
        StartError::Unavailable(format!(
            "the probe kernel image is not built: `cargo xtask kernel` builds it (looked for {}; \
             --kernel PATH or ${IMAGE_VARIABLE} names another)",
            candidates[candidates.len() - 1].display()
        ))
    })
}
