//! Checks: one module per kind, each turning a case's windows into an outcome.
//!
//! A check is written once, against [`Probe`], and knows nothing about where
//! its windows run. It asks the probe for `case.runs` windows and judges the
//! readings and notifications it gets back. A probe error ends the check: an
//! environment that cannot run a window makes the case `unsupported`, a
//! harness failure makes it `error`.

pub mod exact_count;
mod miscount;
pub mod overflow_preservation;
pub mod pmi_delivery;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::case::{Case, CheckKind};
use crate::event_table::ResolvedEvent;
use crate::outcome::Outcome;
use crate::probe::{Probe, ProbeError, Sampling, Window, WindowRun};

/// Runs `case` on `probe`, with its event already resolved for this environment.
pub fn run(case: &Case, event: &ResolvedEvent, probe: &mut dyn Probe) -> Outcome {
    let result = match case.check {
        CheckKind::ExactCount => exact_count::run(case, event, probe),
        CheckKind::PmiDelivery => pmi_delivery::run(case, event, probe),
        CheckKind::OverflowPreservation => overflow_preservation::run(case, event, probe),
        CheckKind::Kernel(k) => unreachable!("`{k:?}` runs in the probe kernel, not on a Probe"),
    };
    result.unwrap_or_else(|stop| *stop.0)
}

/// An early end to a check, already phrased as its outcome.
/// Boxed: an outcome is large, and every run's `Result` carries one.
pub struct Stop(pub Box<Outcome>);

/// The window a linux case runs, with its event as resolved here.
pub fn window<'a>(case: &Case, event: &'a ResolvedEvent) -> Window<'a> {
    Window {
        event,
        workload: case.workload,
        sampling: case.period.map(|period| Sampling {
            period,
            refresh: case.refresh,
        }),
        read_with: case.read_with,
    }
}

/// Runs the case's window `case.runs` times, handing each result to `each`.
fn for_each_run(
    case: &Case,
    event: &ResolvedEvent,
    probe: &mut dyn Probe,
    mut each: impl FnMut(WindowRun),
) -> Result<(), Stop> {
    let window = window(case, event);
    for i in 0..case.runs {
        match probe.run(&window) {
            Ok(run) => each(run),
            Err(ProbeError::Unsupported(reason)) => return Err(Stop(Box::new(Outcome::unsupported(reason)))),
            Err(ProbeError::Harness(message)) => {
                return Err(Stop(Box::new(Outcome::error(format!(
                    "run {} of {}: {message}",
                    i + 1,
                    case.runs
                )))));
            }
        }
    }
    Ok(())
}

/// What a pass proves: the bound zero failures in `trials` set, and the
/// budget the case's runs were sized to, if they were.
pub fn proves(case: &Case, failures: &str, trials: u64, unit: &str) -> String {
    let bound = crate::statistics::zero_failure_statement(failures, trials, unit);
    match case.budget {
        Some(b) => format!(
            "{bound}; sized to catch a rate of {:.1e} with probability {:.1} %",
            b.rate,
            b.probability * 100.0
        ),
        None => bound,
    }
}

/// How often each deviation from the expected count occurred.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deviations(pub BTreeMap<i128, u64>);

impl Deviations {
    pub fn add(&mut self, deviation: i128) {
        *self.0.entry(deviation).or_default() += 1;
    }

    pub fn runs(&self) -> u64 {
        self.0.values().sum()
    }

    /// `{"0": 98, "+1": 2}`, for reports.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.iter().map(|(d, n)| (signed(*d), Value::from(*n))).collect())
    }

    /// `0 ×98, +1 ×2`, for the terminal.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(d, n)| format!("{} ×{n}", signed(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `+3`, `0`, `-2`.
pub fn signed(d: i128) -> String {
    if d > 0 { format!("+{d}") } else { d.to_string() }
}
