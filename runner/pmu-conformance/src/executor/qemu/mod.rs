//! The `qemu` environments' executor: boots the probe kernel under QEMU and
//! reads its records.
//!
//! Every case the run plans goes into one boot, before the first trial:
//! the kernel quiets the PMU between cases, and each record is framed and
//! checked, so a record that arrived is that case's outcome whatever
//! happened later in the boot. That boot lasts at most the longest of the
//! cases' deadlines (the guest's own watchdog a second short of it), and is
//! charged to no case's. A case whose record did not arrive (the guest
//! wedged or died before it, or the deadline came) gets a boot of its own
//! at its turn, where it wedges or dies alone, within its own deadline, and
//! ends as its own `error`. A boot costs about 0.1–0.2 s (see [`launcher`]).
//!
//! That one boot is the first: the boot that reads the guest's CPUID (the
//! hello's `cpuid` field, so that the environment's fingerprint is the
//! guest's, not the host's) also runs the cases the run is likely to ask
//! for (its selection after the filter), and a plan that asks for them as
//! they ran takes their records from it. A plan that asks for others (a
//! `--runs` override) gets a boot of its own for those.
//!
//! A `qemu-xen-dom0` environment boots Xen instead, with the probe kernel
//! as its dom0 ([`xen`]); the boots, the plan and the records are the same,
//! and the fingerprint adds what Xen's banner said.

pub mod image;
pub mod launcher;
pub mod linux_guest;
pub mod memory_console;
pub mod window_trace;
pub mod xen;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pmu_kernel_checks::plan::Plan;

use self::launcher::{Boot, Ending, Exit, QemuConfig};
use crate::case::Case;
use crate::cpu::CpuidReader;
use crate::environment::ProbeGuest;
use crate::event_table::{EventTable, ResolvedEvent};
use crate::executor::{Executor, FirstBoot, StartError, Together};
use crate::fingerprint::Fingerprint;
use crate::kernel_case::{self, Transcript};
use crate::outcome::{Outcome, Reason, ReasonCode, Verdict};

/// How long the first boot, which only reads the guest's CPUID, may take.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

pub struct QemuExecutor {
    guest: ProbeGuest,
    image: PathBuf,
    /// The Xen that boots the probe kernel as its dom0, where it does.
    xen: Option<PathBuf>,
    fingerprint: Fingerprint,
    /// The outcomes of the planned cases' one boot whose records arrived.
    together: Together,
    /// What the first boot (the one that said hello) reported for the
    /// cases the run was likely to ask for.
    first: FirstBoot,
}

impl QemuExecutor {
    /// Finds the image, boots it once to read the guest's CPUID (and in the
    /// same boot runs the `likely` cases, so that a run that asks for them
    /// needs no second boot), and is ready to run cases. Fails, saying what
    /// to do, where QEMU, the image or KVM is missing, or where the guest
    /// does not say hello (which it does before any case runs).
    pub fn new(
        guest: ProbeGuest,
        image: Option<&Path>,
        table: &EventTable,
        likely: &[Arc<Case>],
    ) -> Result<QemuExecutor, StartError> {
        let image = image::find(image)?;
        let xen = guest.xen.as_ref().map(|x| xen::find(&x.hypervisor)).transpose()?;
        let accel = guest.accel;
        let requests: Vec<_> = likely.iter().map(|c| kernel_case::request(c)).collect();
        let plan = Plan {
            cases: requests.clone(),
        }
        .to_cmdline()
        .unwrap_or_else(|_| "pmuc=".to_owned());
        // As for the plan's own boot: the longest of the cases' deadlines.
        let timeout = likely.iter().map(|c| c.timeout).max().unwrap_or(HELLO_TIMEOUT);
        let purpose = match likely.len() {
            0 => "hello".to_owned(),
            n => format!("hello-and-{n}-cases"),
        };
        let hello_boot = |plan: &str, timeout: Duration, purpose: &str| -> Result<(Boot, String), StartError> {
            let prepared = prepare(
                &image,
                xen.as_deref(),
                &guest,
                &format!("{plan} {}", pmu_kernel_checks::CPUID_WORD),
                timeout,
                purpose,
            )
            .map_err(|e| StartError::Unavailable(format!("preparing the boot: {e}")))?;
            let config = &prepared.config;
            let boot = launcher::boot(config).map_err(|e| StartError::Unavailable(e.to_string()))?;
            let why = format!("{}\n  command: {}", failure(&boot, config), config.command_line());
            Ok((boot, why))
        };
        let (mut boot, mut why) = hello_boot(&plan, timeout, &purpose)?;
        let mut transcript = Transcript::read(boot.lines.iter().map(String::as_str));
        let first = FirstBoot::default();
        if transcript.hello.is_some() && !likely.is_empty() {
            let figures = [
                ("boot_ms", boot.wall.as_millis() as u64),
                ("cases_in_boot", likely.len() as u64),
            ];
            first.keep(requests, transcript.reported_outcomes(likely, &figures));
        } else if !likely.is_empty() {
            // The plan kept the guest from saying hello (it says hello
            // before any case runs, so QEMU or the boot refused the plan
            // itself): the empty plan's boot, as before there was a first
            // boot to share; each case then boots at its turn.
            (boot, why) = hello_boot("pmuc=", HELLO_TIMEOUT, "hello")?;
            transcript = Transcript::read(boot.lines.iter().map(String::as_str));
        }
        let Some(hello) = transcript.hello.as_ref() else {
            return Err(StartError::Unavailable(format!(
                "the probe kernel did not say hello under QEMU ({}): {why}",
                accel.name(),
            )));
        };
        let dump = kernel_case::hello_cpuid(hello).map_err(StartError::Unavailable)?;
        let mut fingerprint = Fingerprint::from_parts(table, &CpuidReader::replay(dump), None);
        if xen.is_some() {
            fingerprint.xen = xen::facts(boot.lines.iter().map(String::as_str));
        }
        Ok(QemuExecutor {
            guest,
            image,
            xen,
            fingerprint,
            together: Together::default(),
            first,
        })
    }

    /// The guest's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// One boot for every planned case, within the longest of their
    /// deadlines: the outcomes of those whose records arrived.
    fn boot_together(&self, cases: &[Arc<Case>]) -> HashMap<String, Outcome> {
        let timeout = cases.iter().map(|c| c.timeout).max().unwrap_or(HELLO_TIMEOUT);
        let plan = Plan {
            cases: cases.iter().map(|c| kernel_case::request(c)).collect(),
        };
        let Ok(cmdline) = plan.to_cmdline() else {
            return HashMap::new();
        };
        let Ok(prepared) = self.prepare(&cmdline, timeout, &format!("{}-cases", cases.len())) else {
            return HashMap::new();
        };
        let Ok(boot) = launcher::boot(&prepared.config) else {
            return HashMap::new();
        };
        Transcript::read(boot.lines.iter().map(String::as_str)).reported_outcomes(
            cases,
            &[
                ("boot_ms", boot.wall.as_millis() as u64),
                ("cases_in_boot", cases.len() as u64),
            ],
        )
    }

    /// One boot for `case` alone, as its outcome, within the case's deadline.
    fn boot(&self, case: &Case) -> Outcome {
        let id = case.id.to_string();
        let plan = Plan {
            cases: vec![kernel_case::request(case)],
        };
        let cmdline = match plan.to_cmdline() {
            Ok(cmdline) => cmdline,
            Err(why) => return Outcome::error(ReasonCode::Internal, why),
        };
        let prepared = match self.prepare(&cmdline, case.timeout, &id) {
            Ok(prepared) => prepared,
            Err(e) => return Outcome::error(ReasonCode::Guest, format!("preparing the boot: {e}")),
        };
        let config = &prepared.config;
        let boot = match launcher::boot(config) {
            Ok(boot) => boot,
            Err(e) => return Outcome::error(ReasonCode::Guest, e.to_string()),
        };
        let transcript = Transcript::read(boot.lines.iter().map(String::as_str));
        let outcome = transcript.outcome(&id);
        let outcome =
            if (outcome.verdict == Verdict::Error && !transcript.reported(&id)) || boot.ending != Ending::Exited {
                // The transcript says what is missing; the boot says why.
                let code = match boot.ending {
                    Ending::Deadline => ReasonCode::Deadline,
                    _ => ReasonCode::Guest,
                };
                Outcome::error(
                    code,
                    format!(
                        "{} ({})",
                        outcome
                            .reason
                            .filter(|_| !transcript.reported(&id))
                            .map_or_else(|| "the guest's record cannot be trusted".into(), |r| r.message),
                        failure(&boot, config)
                    ),
                )
            } else {
                outcome
            };
        outcome
            .figure("boot_ms", boot.wall.as_millis() as u64)
            .figure("ended_ms", boot.elapsed.as_millis() as u64)
    }
}

impl QemuExecutor {
    fn prepare(&self, plan: &str, timeout: Duration, purpose: &str) -> std::io::Result<Prepared> {
        prepare(&self.image, self.xen.as_deref(), &self.guest, plan, timeout, purpose)
    }
}

impl Executor for QemuExecutor {
    fn describe(&self) -> String {
        match &self.fingerprint.xen {
            Some(xen) => format!(
                "probe kernel as the PVH dom0 of Xen {} (vpmu {}) under QEMU ({}), the planned cases in one boot",
                xen.version,
                xen.vpmu,
                self.guest.accel.name()
            ),
            None => format!(
                "probe kernel under QEMU ({}), the planned cases in one boot",
                self.guest.accel.name()
            ),
        }
    }

    fn plan(&self, cases: &[Arc<Case>]) {
        // What the first boot ran already, as asked now, and one boot for the rest.
        let (mut outcomes, rest) = self.first.take(cases);
        if rest.len() > 1 {
            outcomes.extend(self.boot_together(&rest));
        }
        self.together.set(outcomes);
    }

    fn preflight(&self, _case: &Case) -> Result<Option<ResolvedEvent>, Reason> {
        // Whether the guest's PMU can run a case is the kernel's to say, in
        // its record: the host knows nothing about the guest's MSRs.
        Ok(None)
    }

    fn run(&self, case: &Case, _event: Option<&ResolvedEvent>) -> Outcome {
        let taken = self.together.take(case);
        xen::with_xens_word(self.fingerprint.xen.as_ref(), taken.unwrap_or_else(|| self.boot(case)))
    }
}

/// A boot's configuration, and the files it needs while it runs.
struct Prepared {
    config: QemuConfig,
    _modules: Option<xen::Modules>,
}

/// A boot of `image` with `plan` on its command line (under `xen`, as
/// Xen's dom0, with the plan as a module), killed at `timeout`, with the
/// guest's own watchdog a second shorter.
fn prepare(
    image: &Path,
    xen: Option<&Path>,
    guest: &ProbeGuest,
    plan: &str,
    timeout: Duration,
    purpose: &str,
) -> std::io::Result<Prepared> {
    let config = config(image, guest, plan, timeout, purpose);
    let (Some(hypervisor), Some(boot)) = (xen, &guest.xen) else {
        return Ok(Prepared { config, _modules: None });
    };
    // The plan word goes in a module; the probe kernel's other words stay on its line.
    let (plans, words): (Vec<&str>, Vec<&str>) = config
        .cmdline
        .split_ascii_whitespace()
        .partition(|w| w.starts_with("pmuc="));
    let words = format!("{} {}", words.join(" "), pmu_kernel_checks::QEMU_EXIT_WORD);
    let plan = plans.join(" ");
    let modules = xen::modules(image, &words, &plan)?;
    let notes = match plan.as_str() {
        "" => Vec::new(),
        plan => vec![format!("the plan module held: {plan}")],
    };
    let config = QemuConfig {
        notes,
        image: hypervisor.to_path_buf(),
        initrd: Some(modules.initrd.clone()),
        console: launcher::ConsolePort::Serial,
        cpu: Some(
            guest
                .cpu
                .clone()
                .unwrap_or_else(|| xen::default_cpu(guest.accel).to_owned()),
        ),
        machine: guest.machine.unwrap_or(launcher::Machine::Pc),
        cmdline: xen::command_line(&xen::COMMAND_LINE, boot),
        // The probe kernel is Xen's dom0 here: its console is Xen's.
        memory_console: false,
        ..config
    };
    Ok(Prepared {
        config,
        _modules: Some(modules),
    })
}

/// A boot of `image` with `plan` on its command line, killed at `timeout`,
/// with the guest's own watchdog a second shorter.
fn config(image: &Path, guest: &ProbeGuest, plan: &str, timeout: Duration, purpose: &str) -> QemuConfig {
    let verified = QemuConfig::new(
        image,
        guest.accel,
        format!("{plan} {}", kernel_case::watchdog_word(timeout)),
    );
    let mut extra_args: Vec<std::ffi::OsString> = Vec::new();
    if guest.vcpus > 1 {
        extra_args.extend(["-smp".into(), guest.vcpus.to_string().into()]);
    }
    extra_args.extend(guest.extra_args.iter().map(Into::into));
    QemuConfig {
        machine: guest.machine.unwrap_or(verified.machine),
        cpu: guest.cpu.clone(),
        memory_mib: guest.memory_mib,
        extra_args,
        timeout,
        purpose: purpose.to_owned(),
        // A byte to the debug port is a VM exit; guest RAM is not.
        memory_console: true,
        ..verified
    }
}

/// How a boot ended, for a case that has no record: how supervision ended,
/// the exit, the last thing the guest printed, and what QEMU said.
fn failure(boot: &Boot, config: &QemuConfig) -> String {
    let ending = match boot.ending {
        Ending::Exited => None,
        Ending::Deadline => Some(format!(
            "the guest was still running at its deadline of {} s, so its QEMU was killed",
            config.timeout.as_secs_f64()
        )),
        Ending::Flooded => Some(format!(
            "the guest wrote more than {} MiB to its console, so its QEMU was killed",
            launcher::CONSOLE_LIMIT >> 20
        )),
        Ending::ConsoleHeld => Some(format!(
            "QEMU exited but another process kept its console open for {} ms, so that process group was killed",
            launcher::PIPE_GRACE.as_millis()
        )),
    };
    let exit = match boot.exit {
        Exit::Guest(0) => "the guest exited normally".to_owned(),
        Exit::Guest(code) => format!("the guest exited with code {code}"),
        Exit::NoDebugExit => {
            "the guest stopped without reaching its exit port (a triple fault or a shutdown)".to_owned()
        }
        Exit::Qemu(code) if boot.lines.is_empty() => {
            format!("QEMU exited with status {code} before the guest printed anything: QEMU itself failed")
        }
        Exit::Qemu(code) => format!("QEMU failed with status {code}"),
        Exit::Signal(signal) => format!("QEMU ended by signal {signal}"),
    };
    let how = match ending {
        Some(ending) if matches!(boot.exit, Exit::Signal(libc::SIGKILL)) => ending,
        Some(ending) => format!("{ending}; {exit}"),
        None => exit,
    };
    let last = boot.lines.iter().rev().find(|l| !l.trim().is_empty());
    let mut text = match last {
        Some(line) => format!("{how}; last console line: {:?}", truncate(line, 160)),
        None => format!("{how}; the console stayed empty"),
    };
    if let Some(error) = boot
        .stderr
        .lines()
        .find(|l| !l.trim().is_empty() && !l.contains("warning:"))
    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Accel;

    #[test]
    fn an_environments_machine_cpu_memory_vcpus_and_extra_args_reach_qemu_as_single_arguments() {
        let guest = ProbeGuest {
            accel: Accel::Tcg,
            cpu: Some("Skylake-Client,pmu=on".to_owned()),
            machine: Some(launcher::Machine::Q35),
            memory_mib: 256,
            vcpus: 2,
            extra_args: vec!["-global".to_owned(), "kvm-pit.lost_tick_policy=discard".to_owned()],
            xen: None,
        };
        let args: Vec<String> = config(Path::new("/k"), &guest, "pmuc=", Duration::from_secs(5), "x")
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].as_str());
        assert_eq!(after("-M"), Some("q35"));
        assert_eq!(after("-cpu"), Some("Skylake-Client,pmu=on"));
        assert_eq!(after("-m"), Some("256M"));
        assert_eq!(after("-smp"), Some("2"));
        assert_eq!(after("-global"), Some("kvm-pit.lost_tick_policy=discard"));
        assert_eq!(after("-append"), Some("pmuc= pmuc.watchdog=4"));
        // The defaults: pc under TCG, 128 MiB, one vCPU (no -smp).
        let plain = ProbeGuest {
            cpu: None,
            machine: None,
            memory_mib: 128,
            vcpus: 1,
            extra_args: Vec::new(),
            ..guest
        };
        let args: Vec<String> = config(Path::new("/k"), &plain, "pmuc=", Duration::from_secs(5), "x")
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.windows(2).any(|w| w == ["-M", "pc"]) && !args.contains(&"-smp".to_owned()),
            "{args:?}"
        );
    }
}
