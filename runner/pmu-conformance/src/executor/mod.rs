//! Executors: how an environment is reached, and the one interface between
//! the harness and the places cases execute.
//!
//! Each environment has one [`Executor`], chosen by [`for_environment`] from
//! its `Target`; which cases it gets is the environment's to say. It decides
//! cheaply whether a case can run at all (while trials are listed), and runs
//! a case on the calling thread.
//!
//! - [`local`]: this machine, the linux checks over perf_event_open.
//! - [`sim`]: the reference model: the linux checks over `SimProbe`, and
//!   kernel cases through the probe kernel's check library.
//! - [`qemu`]: the probe kernel, booted under QEMU, one guest per case;
//!   and a Linux guest carrying the runner, one boot for every case.
//! - [`ssh`]: a remote machine, one connection for every case.
//! - [`xl`]: from a Xen dom0, the probe kernel as a domU (`xl create`).
//! - [`refused`]: an environment this host cannot run, each case
//!   unsupported with the reason.
//! - [`reported`]: the outcomes a runner elsewhere (a guest, a remote)
//!   reported, handed to the harness to gate here.
//!
//! Where a case's *windows* execute is the probes' business (`crate::probe`);
//! an executor decides where the whole case runs and how its outcome comes back.

pub mod local;
pub mod qemu;
pub mod refused;
pub mod reported;
pub mod sim;
pub mod ssh;
pub mod xl;

use std::path::Path;
use std::sync::Arc;

use crate::case::{Case, CheckKind, EventRef};
use crate::environment::{Environment, Target};
use crate::event_table::{Encoding, EventTable, Rearm, ResolvedEvent};
use crate::fingerprint::Fingerprint;
use crate::outcome::{Outcome, Reason, ReasonCode};

pub trait Executor: Send + Sync {
    /// What executes the cases, for reports: `linux perf_event_open`.
    fn describe(&self) -> String;

    /// Whether `case` can run here, and its event as resolved here (linux
    /// cases) or `None` (kernel cases). Called while trials are listed.
    fn preflight(&self, case: &Case) -> Result<Option<ResolvedEvent>, Reason>;

    /// Runs `case` on the calling thread and returns its outcome.
    fn run(&self, case: &Case, event: Option<&ResolvedEvent>) -> Outcome;

    /// The cases that will run, in order, told once before the first runs
    /// (listing runs nothing, and tells nothing). An executor may run them
    /// together at the first [`Executor::run`]; each `run` still returns
    /// its own case's outcome.
    fn plan(&self, _cases: &[Arc<Case>]) {}
}

/// A linux case's event as the machine `fingerprint` shows encodes it, or
/// why the case cannot run there. An architectural event missing because
/// there is no PMU at all says why there is none, in the hypervisor's terms
/// where they name a refusal.
/// `core_type` is the Linux PMU whose cores run it (`cpu`, or a hybrid
/// part's `cpu_core`, `cpu_atom`, …).
pub(crate) fn resolve(
    case: &Case,
    table: &EventTable,
    fingerprint: &Fingerprint,
    core_type: &str,
) -> Result<ResolvedEvent, Reason> {
    let (cpu, pmu) = (&fingerprint.cpu.identity, &fingerprint.pmu.architectural);
    let event = match &case.event {
        EventRef::Named(name) => table
            .resolve_on_core(name, cpu, core_type, pmu, &fingerprint.cpu.features)
            .map_err(|why| match why.code {
                ReasonCode::EventNotAdvertised if pmu.version == 0 => fingerprint.no_pmu(&why.message),
                _ => why,
            })?,
        EventRef::Raw(config) => table.resolve_raw(*config, cpu),
    };
    // An Intel guest whose leaf 0xA is empty has no vPMU at all: its
    // hypervisor gives it none, so no hardware event, architectural or not,
    // can count there, and the hypervisor's refusal is the reason.
    if let Encoding::Raw(_) = event.encoding
        && cpu.vendor == crate::cpu::Vendor::Intel
        && pmu.version == 0
        && fingerprint.hypervisor.is_some()
    {
        return Err(fingerprint.no_pmu(&format!(
            "`{}` is a hardware event, and CPUID.0AH says PMU version 0",
            event.name
        )));
    }
    if case.check == CheckKind::PmiDelivery && event.rearm == Rearm::Absolute && event.skid.is_none() {
        return Err(Reason::new(
            ReasonCode::NoSkidBudget,
            format!("no skid budget is known for this CPU ({cpu}); add its microarchitecture to the event table"),
        ));
    }
    Ok(event)
}

/// The outcomes of the cases an executor ran together at
/// [`Executor::plan`], each taken once, at its case's [`Executor::run`].
#[derive(Default)]
pub(crate) struct Together(std::sync::Mutex<std::collections::HashMap<String, Outcome>>);

impl Together {
    pub(crate) fn set(&self, outcomes: std::collections::HashMap<String, Outcome>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = outcomes;
    }

    pub(crate) fn take(&self, case: &Case) -> Option<Outcome> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&case.id.to_string())
    }
}

/// What the first guest an executor boots (to fingerprint the environment)
/// reported for the cases the run was likely to ask for, with the requests
/// it ran them with: at [`Executor::plan`], a case asked for with the same
/// request (the same runs and parameters) needs no second guest.
#[derive(Default)]
pub(crate) struct FirstBoot(
    std::sync::Mutex<(
        Vec<pmu_kernel_checks::plan::CaseRequest>,
        std::collections::HashMap<String, Outcome>,
    )>,
);

impl FirstBoot {
    pub(crate) fn keep(
        &self,
        requests: Vec<pmu_kernel_checks::plan::CaseRequest>,
        outcomes: std::collections::HashMap<String, Outcome>,
    ) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = (requests, outcomes);
    }

    /// The outcomes the first guest has for `cases`, asked for as it ran
    /// them, and the cases it does not cover; what it kept goes (each
    /// outcome serves once).
    pub(crate) fn take(&self, cases: &[Arc<Case>]) -> (std::collections::HashMap<String, Outcome>, Vec<Arc<Case>>) {
        let (ran, mut kept) = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        let mut covered = std::collections::HashMap::new();
        let mut rest = Vec::new();
        for case in cases {
            let id = case.id.to_string();
            match kept.remove(&id) {
                Some(outcome) if ran.contains(&crate::kernel_case::request(case)) => {
                    covered.insert(id, outcome);
                }
                _ => rest.push(case.clone()),
            }
        }
        (covered, rest)
    }
}

/// Why an environment's executor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An argument names something that is not there (`--kernel PATH`): a usage error.
    #[error("{0}")]
    Argument(String),
    /// The environment cannot be reached here: no QEMU, no image, no KVM, a
    /// guest that does not boot.
    #[error("{0}")]
    Unavailable(String),
}

/// What runs `environment`'s cases, and the fingerprint of the machine they
/// run on: this one's, the model's, or the guest's.
/// `likely` are the cases the run will probably ask for (the environment's
/// selection, after the run's filter): an executor whose first guest must
/// boot anyway to fingerprint it may run them in that same guest.
pub fn for_environment(
    environment: &Environment,
    table: EventTable,
    here: Fingerprint,
    kernel: Option<&Path>,
    likely: &[Arc<Case>],
) -> Result<(Arc<dyn Executor>, Fingerprint), StartError> {
    Ok(match &environment.target {
        Target::Local => {
            let machine = crate::probe::linux::Machine::new(table, &here);
            let executor = local::LocalExecutor::new(Arc::new(machine)).map_err(StartError::Unavailable)?;
            (Arc::new(executor), here)
        }
        Target::Sim { preset, config } => {
            let sim = sim::SimExecutor::new(preset, config.clone(), Arc::new(table));
            let fingerprint = sim.fingerprint().clone();
            (Arc::new(sim), fingerprint)
        }
        Target::Qemu(guest) => {
            let qemu = qemu::QemuExecutor::new(guest.clone(), kernel, &table, likely)?;
            let fingerprint = qemu.fingerprint().clone();
            (Arc::new(qemu), fingerprint)
        }
        Target::QemuLinux(guest)
            if guest.accel == crate::vocabulary::Accel::Kvm
                && let Some(why) = refused::kvm_cannot_run_linux() =>
        {
            let executor = refused::RefusedExecutor {
                reason: Reason::new(ReasonCode::HostCannotRunGuest, why),
                description: "a Linux guest under QEMU (kvm), which this host cannot run".to_owned(),
            };
            (Arc::new(executor), here)
        }
        Target::QemuLinux(guest) => {
            let guest = qemu::linux_guest::boot(guest, kernel)?;
            let fingerprint = guest.fingerprint().clone();
            (Arc::new(guest), fingerprint)
        }
        Target::Xl(domain) if let Some(why) = refused::not_a_xen_dom0() => {
            let executor = refused::RefusedExecutor {
                reason: Reason::new(ReasonCode::HostCannotRunGuest, why),
                description: format!(
                    "the probe kernel as a {} domU of Xen, which needs a Xen dom0",
                    domain.guest.name()
                ),
            };
            (Arc::new(executor), here)
        }
        Target::Xl(domain) if let Some(kernel) = &domain.linux => {
            let kernel = match kernel {
                crate::environment::GuestKernel::Path(p) => p.clone(),
                crate::environment::GuestKernel::Debian => qemu::image::named_or_in_target_dirs(
                    xl::linux_domu::KERNEL_VARIABLE,
                    qemu::xen::DOM0_KERNEL_IN_TARGET_DIR,
                    "`cargo xtask xen` fetches Debian's kernel with apt-get download; \
                     $PMUC_XEN_DOMU_KERNEL names another",
                )?,
            };
            let domu = xl::linux_domu::boot(domain, &kernel)?;
            let fingerprint = domu.fingerprint().clone();
            (Arc::new(domu), fingerprint)
        }
        Target::Xl(domain) => {
            let xl = xl::XlExecutor::new(domain.clone(), kernel, &table, likely)?;
            let fingerprint = xl.fingerprint().clone();
            (Arc::new(xl), fingerprint)
        }
        Target::Ssh(remote) => {
            let remote = ssh::reach(remote)?;
            let fingerprint = remote.fingerprint().clone();
            (Arc::new(remote), fingerprint)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{SuiteSources, load_suites};
    use crate::known_bugs::KnownBugs;
    use crate::vocabulary::ProbeKind;

    fn kernel_cases() -> Vec<Arc<Case>> {
        let suites = load_suites(&SuiteSources::builtin(), &EventTable::builtin(), &KnownBugs::builtin()).unwrap();
        suites
            .iter()
            .flat_map(|s| &s.cases)
            .filter(|c| c.probe == ProbeKind::Kernel)
            .take(3)
            .map(|c| Arc::new(c.clone()))
            .collect()
    }

    /// The first boot serves a case asked for as it ran, once; a case asked
    /// for with other runs, or one it has no record of, is left for a boot
    /// of its own.
    #[test]
    fn the_first_boot_serves_only_what_it_ran_as_asked_and_each_once() {
        let cases = kernel_cases();
        let first = FirstBoot::default();
        let requests = cases.iter().map(|c| crate::kernel_case::request(c)).collect();
        let outcomes = cases[..2]
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    Outcome::unsupported(Reason::new(ReasonCode::NoPmu, "none")),
                )
            })
            .collect();
        first.keep(requests, outcomes);
        let mut other_runs = (*cases[1]).clone();
        other_runs.runs += 1;
        let asked = [cases[0].clone(), Arc::new(other_runs), cases[2].clone()];
        let (covered, rest) = first.take(&asked);
        assert_eq!(covered.keys().collect::<Vec<_>>(), [&cases[0].id.to_string()]);
        let rest: Vec<String> = rest.iter().map(|c| c.id.to_string()).collect();
        assert_eq!(rest, [cases[1].id.to_string(), cases[2].id.to_string()]);
        let (again, rest) = first.take(&cases);
        assert!(again.is_empty() && rest.len() == 3, "each outcome serves once");
    }
}
