//! The `xl` environments' executor: on a Xen host, from dom0, the probe
//! kernel as a PVH (or HVM) domU created with `xl create`, its records read
//! from Xen's console ring with `xl dmesg`.
//!
//! It runs as the `qemu-xen-domu` environments' dom0 does (the runner as a
//! Linux PV dom0's init, `crate::guest::dom0`), and on a real Xen host as
//! root in dom0. Before any case, `xl info` gives Xen's version and command
//! line (the vPMU mode, the NMI watchdog, `guest_loglvl`), and a domain
//! with an empty plan reads the guest's CPUID for the fingerprint. Then, as
//! under QEMU, one domain runs every planned case, and a case whose record
//! did not arrive gets a domain of its own, within its own deadline.
//!
//! Each domain is created paused (`xl create -p`), so that its domain id is
//! known before it prints; it destroys itself however it ends
//! ([`config`]), and one still running at its deadline is destroyed
//! (`xl destroy`). Its records are its `(dN)` lines, rejoined
//! ([`console`]); the ring is read, never cleared.

pub mod config;
pub mod console;
pub mod linux_domu;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pmu_kernel_checks::plan::Plan;

use self::config::Domain;
use crate::case::Case;
use crate::cpu::{CpuidDump, CpuidReader};
use crate::environment::XlDomain;
use crate::event_table::{EventTable, ResolvedEvent};
use crate::executor::{Executor, FirstBoot, StartError, Together};
use crate::fingerprint::{Fingerprint, XenFacts};
use crate::kernel_case::{self, Transcript};
use crate::outcome::{Outcome, Reason, ReasonCode};
use crate::supervised::{End, run_leaving_daemons};

/// How long one `xl` command may take (creating a domain under nested TCG
/// takes about half a second).
const XL_DEADLINE: Duration = Duration::from_secs(60);
/// How often a running domain's console is read.
const POLL: Duration = Duration::from_millis(100);
/// Every how many reads the executor asks whether the domain is still there.
const GONE_EVERY: u32 = 5;

pub struct XlExecutor {
    domain: XlDomain,
    image: PathBuf,
    fingerprint: Fingerprint,
    /// Whether Xen's NMI watchdog is on: it holds a counter of its own.
    watchdog: bool,
    /// The outcomes of the planned cases' one domain whose records arrived.
    together: Together,
    /// What the first domain (the one that said hello) reported for the
    /// cases the run was likely to ask for.
    first: FirstBoot,
    created: AtomicU32,
}

/// How one domain ran.
struct Ran {
    /// Its console lines, rejoined.
    lines: Vec<String>,
    wall: Duration,
    /// Why it did not end by itself, where it did not.
    failure: Option<(ReasonCode, String)>,
}

impl XlExecutor {
    /// Reads Xen's facts with `xl info`, runs one domain to read the
    /// guest's CPUID (and in it the `likely` cases, so that a run that asks
    /// for them needs no second domain: under nested TCG each costs 2–3 s),
    /// and is ready to run cases. Fails, saying what to do, where `xl` is
    /// missing or refused, where Xen would not print the guest's console, or
    /// where the guest does not say hello.
    pub fn new(
        domain: XlDomain,
        image: Option<&Path>,
        table: &EventTable,
        likely: &[Arc<Case>],
    ) -> Result<XlExecutor, StartError> {
        let image = super::qemu::image::find(image)?;
        let info = xl(&["info"]).map_err(StartError::Unavailable)?;
        let facts = facts(&info);
        if !console_visible(&facts.command_line) {
            return Err(StartError::Unavailable(format!(
                "Xen prints a domU's port 0xE9 lines only at guest_loglvl=all (pmu-facts.md §6.2), and its \
                 command line has no guest_loglvl=all: {:?}; boot Xen with it",
                facts.command_line
            )));
        }
        let watchdog = facts
            .command_line
            .split_ascii_whitespace()
            .any(|w| w == "watchdog" || w.starts_with("watchdog=") && w != "watchdog=0" && w != "watchdog=no");
        let mut executor = XlExecutor {
            domain,
            image,
            fingerprint: Fingerprint::from_parts(table, &CpuidReader::replay(CpuidDump::default()), None),
            watchdog,
            together: Together::default(),
            first: FirstBoot::default(),
            created: AtomicU32::new(0),
        };
        let requests: Vec<_> = likely.iter().map(|c| kernel_case::request(c)).collect();
        let plan = Plan {
            cases: requests.clone(),
        }
        .to_cmdline()
        .unwrap_or_else(|_| "pmuc=".to_owned());
        let timeout = likely
            .iter()
            .map(|c| c.timeout)
            .max()
            .unwrap_or_default()
            .max(super::qemu::HELLO_TIMEOUT);
        let ran = executor.run_domain(&format!("{plan} {}", pmu_kernel_checks::CPUID_WORD), timeout);
        let transcript = Transcript::read(ran.lines.iter().map(String::as_str));
        if !likely.is_empty() {
            let outcomes = transcript.reported_outcomes(
                likely,
                &[
                    ("domain_ms", ran.wall.as_millis() as u64),
                    ("cases_in_domain", likely.len() as u64),
                ],
            );
            executor.first.keep(requests, outcomes);
        }
        let Some(hello) = transcript.hello.as_ref() else {
            return Err(StartError::Unavailable(format!(
                "the probe kernel did not say hello as a {} domU{}; it printed {} line(s){}",
                executor.domain.guest.name(),
                ran.failure.map_or(String::new(), |(_, why)| format!(" ({why})")),
                ran.lines.len(),
                ran.lines.last().map_or(String::new(), |l| format!(", the last {l:?}"))
            )));
        };
        let dump = kernel_case::hello_cpuid(hello).map_err(StartError::Unavailable)?;
        let dmesg = xl(&["dmesg"]).unwrap_or_default();
        let said = super::qemu::xen::facts(dmesg.lines())
            .map(|f| f.vpmu_said)
            .unwrap_or_default();
        executor.fingerprint = Fingerprint::from_parts(table, &CpuidReader::replay(dump), None);
        executor.fingerprint.xen = Some(XenFacts {
            vpmu_said: said,
            ..facts
        });
        Ok(executor)
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Creates one domain with `plan` (the `pmuc=` word goes in its
    /// ramdisk, the other words on its command line, with the guest's own
    /// watchdog a second short of `timeout`), and reads its console until it
    /// is gone or `timeout` passes, when it is destroyed.
    fn run_domain(&self, plan: &str, timeout: Duration) -> Ran {
        let start = Instant::now();
        let failed = |code, why: String| Ran {
            lines: Vec::new(),
            wall: start.elapsed(),
            failure: Some((code, why)),
        };
        let dir = match tempfile::Builder::new().prefix("pmuc-xl-").tempdir() {
            Ok(dir) => dir,
            Err(e) => return failed(ReasonCode::Guest, format!("creating the domain's folder: {e}")),
        };
        let (plans, words): (Vec<&str>, Vec<&str>) =
            plan.split_ascii_whitespace().partition(|w| w.starts_with("pmuc="));
        let cmdline = format!("{} {}", words.join(" "), kernel_case::watchdog_word(timeout));
        let ramdisk = dir.path().join("plan");
        let name = format!(
            "pmuc-{}-{}",
            std::process::id(),
            self.created.fetch_add(1, Ordering::Relaxed)
        );
        let text = config::render(&Domain {
            name: &name,
            guest: self.domain.guest,
            kernel: &self.image,
            ramdisk: Some(&ramdisk),
            cmdline: cmdline.trim(),
            memory_mib: self.domain.memory_mib,
            vcpus: self.domain.vcpus,
            preserve: false,
        });
        let cfg = dir.path().join("domain.cfg");
        let written = text
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(&cfg, text).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::write(&ramdisk, format!("{}\n", plans.join(" "))).map_err(|e| e.to_string()));
        if let Err(why) = written {
            return failed(ReasonCode::Guest, format!("writing the domain's configuration: {why}"));
        }
        let mut seen: Vec<String> = match xl(&["dmesg"]) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(why) => return failed(ReasonCode::Guest, why),
        };
        if let Err(why) = xl(&["create", "-q", "-p", &cfg.to_string_lossy()]) {
            return failed(ReasonCode::Guest, why);
        }
        let domid = match xl(&["domid", &name]).map(|t| t.trim().parse::<u32>()) {
            Ok(Ok(id)) => id,
            other => {
                let _ = xl(&["destroy", &name]);
                return failed(
                    ReasonCode::Guest,
                    format!("`xl domid {name}` after its creation: {other:?}"),
                );
            }
        };
        if let Err(why) = xl(&["unpause", &name]) {
            let _ = xl(&["destroy", &name]);
            return failed(ReasonCode::Guest, why);
        }
        let mut new: Vec<String> = Vec::new();
        let read = |seen: &mut Vec<String>, new: &mut Vec<String>| {
            if let Ok(text) = xl(&["dmesg"]) {
                let now: Vec<String> = text.lines().map(str::to_owned).collect();
                new.extend_from_slice(&now[console::new_from(seen, &now)..]);
                *seen = now;
            }
        };
        let mut polls = 0u32;
        let failure = loop {
            std::thread::sleep(POLL);
            read(&mut seen, &mut new);
            polls += 1;
            // The probe kernel's end record is its last word: the domain
            // only powers off after it, so it goes now.
            let lines = console::domain_lines(domid, new.iter().map(String::as_str));
            if Transcript::read(lines.iter().map(String::as_str)).end.is_some() {
                let _ = xl(&["destroy", &name]);
                break None;
            }
            // A guest that died without its end record: its domain is gone.
            if polls.is_multiple_of(GONE_EVERY) && xl(&["domid", &name]).is_err() {
                read(&mut seen, &mut new);
                break None;
            }
            if start.elapsed() >= timeout {
                read(&mut seen, &mut new);
                let destroyed = match xl(&["destroy", &name]) {
                    Ok(_) => "so it was destroyed".to_owned(),
                    Err(why) => format!("and destroying it failed: {why}"),
                };
                break Some((
                    ReasonCode::Deadline,
                    format!(
                        "domain {name} (d{domid}) was still running at its deadline of {} s, {destroyed}",
                        timeout.as_secs_f64()
                    ),
                ));
            }
        };
        Ran {
            lines: console::domain_lines(domid, new.iter().map(String::as_str)),
            wall: start.elapsed(),
            failure,
        }
    }

    fn one_domain(&self, case: &Case) -> Outcome {
        let id = case.id.to_string();
        let cmdline = match (Plan {
            cases: vec![kernel_case::request(case)],
        })
        .to_cmdline()
        {
            Ok(cmdline) => cmdline,
            Err(why) => return Outcome::error(ReasonCode::Internal, why),
        };
        let ran = self.run_domain(&cmdline, case.timeout);
        let transcript = Transcript::read(ran.lines.iter().map(String::as_str));
        let outcome = match (transcript.reported(&id), &ran.failure) {
            (true, None) => transcript.outcome(&id),
            (_, Some((code, why))) => Outcome::error(*code, why.clone()),
            (false, None) => {
                let missing = transcript.outcome(&id).reason.map_or_else(String::new, |r| r.message);
                Outcome::error(
                    ReasonCode::Guest,
                    format!(
                        "{missing} (the domain ended by itself; its last line: {:?})",
                        ran.lines.last().map_or("", String::as_str)
                    ),
                )
            }
        };
        outcome.figure("domain_ms", ran.wall.as_millis() as u64)
    }
}

impl Executor for XlExecutor {
    fn describe(&self) -> String {
        let xen = self.fingerprint.xen.as_ref();
        format!(
            "probe kernel as a {} domU (xl create) of Xen {} (vpmu {}{}), the planned cases in one domain",
            self.domain.guest.name(),
            xen.map_or("?", |x| x.version.as_str()),
            xen.map_or("?", |x| x.vpmu.as_str()),
            if self.watchdog {
                "; Xen's NMI watchdog is on and holds a counter"
            } else {
                ""
            }
        )
    }

    fn plan(&self, cases: &[Arc<Case>]) {
        // What the first domain ran already, as asked now (a `--runs`
        // override, say, asks for other requests than it ran), and one
        // domain for the rest.
        let (mut outcomes, cases) = self.first.take(cases);
        let cases = cases.as_slice();
        if cases.len() > 1 {
            let timeout = cases
                .iter()
                .map(|c| c.timeout)
                .max()
                .unwrap_or(super::qemu::HELLO_TIMEOUT);
            let plan = Plan {
                cases: cases.iter().map(|c| kernel_case::request(c)).collect(),
            };
            if let Ok(cmdline) = plan.to_cmdline() {
                let ran = self.run_domain(&cmdline, timeout);
                outcomes.extend(
                    Transcript::read(ran.lines.iter().map(String::as_str)).reported_outcomes(
                        cases,
                        &[
                            ("domain_ms", ran.wall.as_millis() as u64),
                            ("cases_in_domain", cases.len() as u64),
                        ],
                    ),
                );
            }
        }
        self.together.set(outcomes);
    }

    fn preflight(&self, _case: &Case) -> Result<Option<ResolvedEvent>, Reason> {
        Ok(None)
    }

    fn run(&self, case: &Case, _event: Option<&ResolvedEvent>) -> Outcome {
        let taken = self.together.take(case);
        let outcome = taken.unwrap_or_else(|| self.one_domain(case));
        super::qemu::xen::with_xens_word(self.fingerprint.xen.as_ref(), outcome)
    }
}

/// Runs `xl ARGS` within [`XL_DEADLINE`]: its stdout, or what it said.
fn xl(args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("xl");
    command.args(args);
    let left = run_leaving_daemons(command, XL_DEADLINE).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            "`xl` is not on PATH: the xl environments run in a Xen dom0, as root, with Xen's toolstack".to_owned()
        }
        _ => format!("running `xl {}`: {e}", args.join(" ")),
    })?;
    match left.end {
        End::Exited(0) => Ok(left.stdout),
        end => Err(format!(
            "`xl {}` ended {end:?}: {}",
            args.join(" "),
            left.stderr.trim().lines().last().unwrap_or("it said nothing")
        )),
    }
}

/// Xen's facts from `xl info`'s `key : value` lines.
pub fn facts(info: &str) -> XenFacts {
    let field = |key: &str| {
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map_or(String::new(), |(_, v)| v.trim().to_owned())
    };
    let command_line = field("xen_commandline");
    let (version, extra) = (field("xen_version"), field("xen_extra"));
    let version = match (version.as_str(), extra.as_str()) {
        (v, "") => v.to_owned(),
        (v, e) if v.ends_with(e) => v.to_owned(),
        (v, e) => format!("{v} ({e})"),
    };
    XenFacts {
        version,
        vpmu: super::qemu::xen::vpmu_mode(&command_line),
        vpmu_said: Vec::new(),
        command_line,
    }
}

/// Whether Xen's command line lets a guest's debug-level lines through:
/// `guest_loglvl=all` or `=debug` (docs/misc/xen-command-line.pandoc).
fn console_visible(command_line: &str) -> bool {
    command_line
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("guest_loglvl="))
        .next_back()
        .is_some_and(|v| matches!(v.split('/').next(), Some("all" | "debug")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `xl info` as Debian's Xen 4.17 prints it in the qemu-xen-domu dom0 (trimmed).
    const INFO: &str = "host                   : (none)\n\
                        release                : 6.1.0-48-amd64\n\
                        xen_major              : 4\n\
                        xen_minor              : 17\n\
                        xen_extra              : .5\n\
                        xen_version            : 4.17.5\n\
                        xen_commandline        : console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all vpmu=1 watchdog\n\
                        cc_compiler            : x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0\n";

    #[test]
    fn xl_info_gives_the_version_command_line_and_vpmu_mode() {
        let facts = facts(INFO);
        assert_eq!(facts.version, "4.17.5");
        assert_eq!(facts.vpmu, "1");
        assert!(
            facts.command_line.ends_with("vpmu=1 watchdog"),
            "{}",
            facts.command_line
        );
        assert!(console_visible(&facts.command_line));
        assert!(!console_visible("console=com1 loglvl=all"));
        assert!(!console_visible("guest_loglvl=all guest_loglvl=warning"));
        assert!(console_visible("guest_loglvl=debug/all"));
        assert_eq!(super::facts("xen_commandline : dom0_mem=512M\n").vpmu, "off");
    }
}
