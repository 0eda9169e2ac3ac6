//! The `sim` environments' executor: every case, run on the reference model.
//!
//! Linux cases run their checks unchanged through [`SimProbe`], a fresh
//! model per window under a Linux-perf-like driver. Kernel cases run the
//! probe kernel's own check library on the model (`pmu_model::hardware`),
//! and their records cross the same line protocol the real probe kernel
//! prints, so a sim run exercises the protocol too.
//!
//! Every run is reproducible: a case's seed comes from the environment's
//! seed and the case id, and each window's from that and its index.

use std::sync::Arc;

use pmu_model::fault::Opportunities;
use pmu_model::hardware::ModelHardware;
use pmu_model::{Config, Fault};

use super::Executor;
use crate::case::Case;
use crate::cpu::{CpuidDump, CpuidReader};
use crate::event_table::{Encoding, EventTable, ResolvedEvent};
use crate::fingerprint::Fingerprint;
use crate::kernel_case::{self, Transcript};
use crate::outcome::{Outcome, Reason, ReasonCode};
use crate::probe::sim::SimProbe;
use crate::vocabulary::ProbeKind;

/// The model an environment runs on.
pub struct SimExecutor {
    config: Config,
    preset: String,
    table: Arc<EventTable>,
    fingerprint: Fingerprint,
}

impl SimExecutor {
    pub fn new(preset: &str, config: Config, table: Arc<EventTable>) -> SimExecutor {
        let dump = cpuid_dump(&mut ModelHardware::new(config.clone()));
        let fingerprint = Fingerprint::from_parts(&table, &CpuidReader::replay(dump), None);
        SimExecutor {
            config,
            preset: preset.to_owned(),
            table,
            fingerprint,
        }
    }

    /// The fingerprint of the modelled machine, as a run on it would read it.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// This case's model: the environment's, seeded by the case id.
    fn config_for(&self, case: &Case) -> Config {
        let id = case.id.to_string();
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Config {
            seed: self.config.seed ^ hash,
            ..self.config.clone()
        }
    }
}

/// The CPUID leaves a fingerprint reads, as the model answers them: the
/// same leaves the probe kernel sends from a real guest.
fn cpuid_dump(hw: &mut ModelHardware) -> CpuidDump {
    CpuidDump {
        leaves: pmu_kernel_checks::cpuid_leaves::read(hw).into_iter().collect(),
    }
}

impl Executor for SimExecutor {
    fn describe(&self) -> String {
        let faults: Vec<&str> = self.config.faults.0.iter().map(Fault::id).collect();
        let faults = if faults.is_empty() {
            "no faults".to_owned()
        } else {
            faults.join(", ")
        };
        format!("reference model: {} with {faults}", self.preset)
    }

    fn preflight(&self, case: &Case) -> Result<Option<ResolvedEvent>, Reason> {
        if case.probe == ProbeKind::Kernel {
            return Ok(None);
        }
        super::resolve(case, &self.table, &self.fingerprint, &self.core_types()[0]).map(Some)
    }

    fn run(&self, case: &Case, event: Option<&ResolvedEvent>) -> Outcome {
        self.run_counted(case, event).0
    }
}

impl SimExecutor {
    /// The core types the model's CPU has, as Linux would name their PMUs:
    /// `cpu`, or a hybrid part's `cpu_core` and the event table's others.
    fn core_types(&self) -> Vec<String> {
        let hybrid = self
            .table
            .microarchitecture(&self.fingerprint.cpu.identity)
            .filter(|u| !u.core_types.is_empty());
        match hybrid {
            Some(u) => std::iter::once("cpu_core".to_owned())
                .chain(u.core_types.keys().cloned())
                .collect(),
            None => vec!["cpu".to_owned()],
        }
    }

    /// Runs `case` and says how often each stochastic fault had the chance to
    /// strike, over all its windows: the detection matrix's denominators.
    pub fn run_counted(&self, case: &Case, event: Option<&ResolvedEvent>) -> (Outcome, Opportunities) {
        let config = self.config_for(case);
        match (case.probe, event) {
            // A hardware event on a hybrid model: once per core type, each
            // with its own encoding (the model's cores all count alike).
            (ProbeKind::Linux, Some(event)) if matches!(event.encoding, Encoding::Raw(_)) => {
                let mut opportunities = Opportunities::default();
                let outcome = crate::hybrid::run_on_each(&self.core_types(), |core| {
                    match super::resolve(case, &self.table, &self.fingerprint, core) {
                        Ok(event) => {
                            let mut probe = SimProbe::new(config.clone());
                            let outcome = crate::check::run(case, &event, &mut probe);
                            opportunities.add(&probe.opportunities);
                            outcome
                        }
                        Err(reason) => Outcome::unsupported(reason),
                    }
                });
                (outcome, opportunities)
            }
            (ProbeKind::Linux, Some(event)) => {
                let mut probe = SimProbe::new(config);
                let outcome = crate::check::run(case, event, &mut probe);
                (outcome, probe.opportunities)
            }
            (ProbeKind::Kernel, _) => {
                let mut hw = ModelHardware::new(config);
                let pmu = pmu_kernel_checks::pmu::Pmu::detect(&mut hw);
                let record = pmu_kernel_checks::checks::run(&mut hw, pmu, &kernel_case::request(case));
                let line = pmu_kernel_checks::protocol::record(&record);
                let outcome = Transcript::read([
                    pmu_kernel_checks::protocol::hello(&[]).as_str(),
                    line.as_str(),
                    pmu_kernel_checks::protocol::end(1).as_str(),
                ])
                .outcome(&case.id.to_string());
                (outcome, hw.machine.pmu.opportunities)
            }
            (ProbeKind::Linux, None) => (
                Outcome::error(ReasonCode::Internal, "a linux case reached the model without its event"),
                Opportunities::default(),
            ),
        }
    }
}
