//! The `sim` probe: one window at a time on the reference model.
//!
//! [`SimProbe`] plays each window as a program on a fresh model under a
//! Linux-perf-like driver (`pmu_model::perf`), so the linux checks run on it
//! unchanged; software events are simulated as the kernel keeps them. Each
//! window's seed comes from the probe's and the window's index, so a run is
//! reproducible. The `sim` executor (`crate::executor::sim`) drives it.

pub mod programs;
mod software;

use pmu_model::Config;
use pmu_model::fault::Opportunities;
use pmu_model::machine::Machine;
use pmu_model::perf::{self, PerfEvent};
use pmu_model::pmu::Pmu;

use crate::event_table::Encoding;
use crate::probe::linux::PARKED_PERIOD;
use crate::probe::{Notification, NotificationKind, Probe, ProbeError, Reading, Window, WindowRun};
use crate::vocabulary::ProbeKind;
use crate::workload::WorkloadKind;

/// The Linux probe's interface over the model.
pub struct SimProbe {
    config: Config,
    /// Windows run so far: each gets its own seed.
    windows: u64,
    /// Summed over every window's model.
    pub opportunities: Opportunities,
}

impl SimProbe {
    /// A probe whose windows each run on a fresh model of `config`.
    pub fn new(config: Config) -> SimProbe {
        SimProbe {
            config,
            windows: 0,
            opportunities: Opportunities::default(),
        }
    }
}

impl Probe for SimProbe {
    fn run(&mut self, window: &Window<'_>) -> Result<WindowRun, ProbeError> {
        self.windows += 1;
        let config = match window.event.encoding {
            Encoding::Software(event) => return Ok(software::run(event, window)),
            Encoding::Raw(config) => config,
        };
        let model = Config {
            seed: self.config.seed.wrapping_add(self.windows),
            ..self.config.clone()
        };
        let syscall = model.syscall_entry;
        let mut machine = Machine::new(Pmu::new(model));
        let program = programs::linux_window(&window.workload, syscall);
        let rr = window.workload.kind == WorkloadKind::RrXenProbe;
        let event = PerfEvent {
            config,
            // rr's probe opens with a parked period and sets the real one in its window.
            sample_period: window.sampling.map(|s| if rr { PARKED_PERIOD } else { s.period }),
            refresh: window.sampling.and_then(|s| s.refresh),
            period_in_window: window.sampling.filter(|_| rr).map(|s| s.period),
        };
        let result = perf::run(&mut machine, &program, event);
        self.opportunities.add(&machine.pmu.opportunities);
        let time = window
            .workload
            .counts(ProbeKind::Linux)
            .map_or(1, |c| c.instructions.max(1));
        Ok(WindowRun {
            reading: Reading {
                value: result.count,
                time_enabled: time,
                time_running: time,
            },
            notifications: result
                .notifications
                .iter()
                .map(|n| Notification {
                    count: n.count,
                    kind: if n.hangup {
                        NotificationKind::Hangup
                    } else {
                        NotificationKind::Overflow
                    },
                    after_window: false,
                })
                .collect(),
            overflows_handled: window.sampling.map(|_| result.overflows),
        })
    }
}
