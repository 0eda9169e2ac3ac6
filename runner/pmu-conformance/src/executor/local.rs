//! The `linux` environments' executor: this machine, through perf_event_open.
//!
//! Each case's event is resolved and trial-opened while the trials are
//! listed, so a case that cannot run here is skipped with its reason before
//! anything runs; each run gets a fresh [`LinuxProbe`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Executor, resolve};
use crate::case::Case;
use crate::event_table::{Encoding, ResolvedEvent};
use crate::outcome::{Outcome, Reason, ReasonCode};
use crate::probe::linux::{LinuxProbe, Machine, stray_traps};
use crate::vocabulary::ReadWith;
use crate::workload::WorkloadKind;

/// What a trial open depends on: the event, the workload, the period, the read.
type OpenShape = (Encoding, WorkloadKind, Option<u64>, ReadWith);

/// The linux probe on this machine, as an environment's executor.
pub struct LocalExecutor {
    machine: Arc<Machine>,
    /// Trial opens already made while listing, by what was opened.
    opened: Mutex<HashMap<OpenShape, Result<(), Reason>>>,
}

impl LocalExecutor {
    pub fn new(machine: Arc<Machine>) -> Result<LocalExecutor, String> {
        stray_traps::catch().map_err(|e| {
            format!("cannot install the SIGTRAP handler that keeps stray debug traps from ending the run: {e}")
        })?;
        Ok(LocalExecutor {
            machine,
            opened: Mutex::new(HashMap::new()),
        })
    }
}

impl Executor for LocalExecutor {
    fn describe(&self) -> String {
        "linux perf_event_open".to_owned()
    }

    /// Resolves the case's event here and opens it once, or says why the
    /// case cannot run here. Cheap: trial opens are remembered.
    fn preflight(&self, case: &Case) -> Result<Option<ResolvedEvent>, Reason> {
        let m = &self.machine;
        let event = resolve(case, &m.table, &m.fingerprint, &m.core_type)?;
        if let (Some(features), Encoding::Raw(config)) = (m.xen_pmu_features, event.encoding)
            && pmu_kernel_checks::refusal::xen_filter_refuses(features, config)
        {
            return Err(pmu_kernel_checks::refusal::xen_filter(config));
        }
        let window = crate::check::window(case, &event);
        let key = (event.encoding, case.workload.kind, case.period, case.read_with);
        let probe = LinuxProbe::new(m.clone());
        self.opened
            .lock()
            .expect("trial opens")
            .entry(key)
            .or_insert_with(|| probe.trial_open(&window))
            .clone()?;
        Ok(Some(event))
    }

    fn run(&self, case: &Case, event: Option<&ResolvedEvent>) -> Outcome {
        let Some(event) = event else {
            return Outcome::error(ReasonCode::Internal, "a linux case reached its probe without its event");
        };
        let m = &self.machine;
        // A hardware event on a hybrid part: once on each core type, with
        // that core type's encoding, PMU type and CPU.
        if !matches!(event.encoding, Encoding::Raw(_)) || m.core_types.len() < 2 {
            return crate::check::run(case, event, &mut LinuxProbe::new(m.clone()));
        }
        let names: Vec<String> = m.core_types.iter().map(|c| c.name.clone()).collect();
        crate::hybrid::run_on_each(&names, |name| {
            let core = m.core_types.iter().find(|c| c.name == name).expect("listed");
            let machine = Arc::new(m.on_core(core));
            match resolve(case, &m.table, &m.fingerprint, name) {
                Ok(event) => crate::check::run(case, &event, &mut LinuxProbe::new(machine)),
                Err(reason) => Outcome::unsupported(reason),
            }
        })
    }
}
