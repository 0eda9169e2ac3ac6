//! A case's window traced: its real machine code single-stepped
//! ([`crate::probe::linux::trace`]), or for a kernel case logged instruction
//! by instruction by QEMU ([`crate::executor::qemu::window_trace`]), and what
//! it retired set beside what the case expects. `pmu-conformance trace` prints it; a failing exact count
//! names the traced count, so that a harness fault (the window does not
//! retire its listing) is told apart from a PMU fault (it does, and the PMU
//! counted otherwise).
//!
//! Up to [`FULL_TRACE_LIMIT`] instructions a window is stepped whole. Beyond
//! that it is traced at three small sizes and its counts extrapolated from
//! the fixed and per-pass parts those give ([`TracedListing`]), which the
//! third trace confirms: a single step costs about 100 µs in a guest, so a
//! 10-million-pass loop would take hours.

use std::time::{Duration, Instant};

use crate::case::Case;
use crate::probe::linux::trace::{HandlerCost, TraceError, TraceRequest, TracedListing, trace, trace_listing};
use crate::vocabulary::{ProbeKind, ReadWith};
use crate::workload::{Counts, Quantity, RDPMC_READ, Workload};

/// Windows of at most this many listed instructions are stepped whole.
pub const FULL_TRACE_LIMIT: u64 = 1_000_000;

/// How the counts were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Every instruction stepped.
    Full { steps: u64, elapsed: Duration },
    /// Traced at three sizes and extrapolated.
    Extrapolated(TracedListing),
    /// The probe kernel's window, logged by QEMU under TCG.
    Guest { elapsed: Duration },
}

/// The case's expected count beside the same formula over the traced counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compared {
    /// The formula as written, or the event's quantity where the case states none.
    pub formula: String,
    /// Whether the case states the formula (an expectation), or it is the event's quantity.
    pub stated: bool,
    pub expected: u64,
    pub traced: u64,
}

impl Compared {
    pub fn agrees(&self) -> bool {
        self.expected == self.traced
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseTrace {
    pub workload: Workload,
    /// What the listing says the window retires.
    pub listed: Counts,
    /// What the trace says it retires.
    pub traced: Counts,
    pub compared: Option<Compared>,
    /// What one notification's handler adds, for cases that sample.
    pub handler: Option<HandlerCost>,
    pub method: Method,
}

impl CaseTrace {
    /// Whether the listing and the trace agree on every traced quantity,
    /// and on the case's expectation.
    pub fn agrees(&self) -> bool {
        comparable(self.listed) == comparable(self.traced) && self.compared.as_ref().is_none_or(Compared::agrees)
    }
}

/// The counts a trace measures: all but the model's VMware assumption.
pub fn comparable(c: Counts) -> Counts {
    Counts {
        branches_between_cpuids: 0,
        ..c
    }
}

/// Traces `case`'s window, at `size` instead of the case's own where given.
/// `full` forces (true) or forbids (false) stepping the whole window.
pub fn trace_case(
    case: &Case,
    counts: Option<Quantity>,
    size: Option<u64>,
    full: Option<bool>,
) -> Result<CaseTrace, TraceError> {
    let workload = Workload {
        kind: case.workload.kind,
        size: size.unwrap_or(case.workload.size),
    };
    if case.probe == ProbeKind::Kernel {
        return trace_kernel_case(case, workload, counts);
    }
    if workload.size < workload.kind.minimum_size() {
        return Err(TraceError::NotTraceable(format!(
            "`{}` needs {} ≥ {}",
            workload.kind,
            workload.kind.size_parameter(),
            workload.kind.minimum_size()
        )));
    }
    let listed = workload
        .checked_counts(ProbeKind::Linux)
        .ok_or_else(|| TraceError::NotTraceable("the workload's counts overflow 64 bits".into()))?;
    let listed = match case.read_with {
        ReadWith::Syscall => listed,
        ReadWith::Rdpmc => listed + RDPMC_READ,
    };
    let sampling = case.period.is_some();
    let stepped_whole = full.unwrap_or(listed.instructions <= FULL_TRACE_LIMIT);
    let (traced, handler, method) = if stepped_whole {
        let started = Instant::now();
        let mut request = TraceRequest::new(workload, case.read_with);
        request.notify = sampling;
        let t = trace(&request)?;
        let method = Method::Full {
            steps: t.steps,
            elapsed: started.elapsed(),
        };
        (t.counts, t.handler, method)
    } else {
        let shape = trace_listing(workload.kind, case.read_with)?;
        let traced = shape.total(workload.iterations())?;
        let handler = match sampling {
            true => handler_cost(workload, case)?,
            false => None,
        };
        (traced, handler, Method::Extrapolated(shape))
    };
    Ok(CaseTrace {
        workload,
        listed,
        traced,
        compared: compare(case, workload, ProbeKind::Linux, listed, traced, counts)?,
        handler,
        method,
    })
}

/// The case's expectation, or the event's quantity, over the listed and the traced counts.
fn compare(
    case: &Case,
    workload: Workload,
    probe: ProbeKind,
    listed: Counts,
    traced: Counts,
    counts: Option<Quantity>,
) -> Result<Option<Compared>, TraceError> {
    Ok(match (&case.expect, counts) {
        (Some(expect), _) => {
            let traced_value = expect
                .formula
                .evaluate(&|name| workload.variable_in(name, &traced))
                .map_err(TraceError::NotTraceable)?;
            let expected = expect
                .formula
                .evaluate(&|name| workload.variable(name, probe))
                .map_err(TraceError::NotTraceable)?;
            Some(Compared {
                formula: expect.formula.to_string(),
                stated: true,
                expected,
                traced: traced_value,
            })
        }
        (None, Some(q)) => Some(Compared {
            formula: q.name().to_owned(),
            stated: false,
            expected: q.of(&listed),
            traced: q.of(&traced),
        }),
        (None, None) => None,
    })
}

/// The probe kernel's window, traced under QEMU's TCG
/// ([`crate::executor::qemu::window_trace`]): a kernel case's window is
/// always the branch loop, whatever its check.
fn trace_kernel_case(case: &Case, workload: Workload, counts: Option<Quantity>) -> Result<CaseTrace, TraceError> {
    let passes = workload.iterations();
    if passes > KERNEL_TRACE_LIMIT {
        return Err(TraceError::NotTraceable(format!(
            "the probe kernel traces at most {KERNEL_TRACE_LIMIT} passes; give --size"
        )));
    }
    let listed = workload
        .checked_counts(ProbeKind::Kernel)
        .ok_or_else(|| TraceError::NotTraceable(format!("the probe kernel has no `{}` window", workload.kind)))?;
    let image = crate::executor::qemu::image::find(None).map_err(|e| TraceError::Unavailable(e.to_string()))?;
    let started = Instant::now();
    let traced = crate::executor::qemu::window_trace::trace(&image, passes).map_err(TraceError::Failed)?;
    Ok(CaseTrace {
        workload,
        listed,
        traced,
        compared: compare(case, workload, ProbeKind::Kernel, listed, traced, counts)?,
        handler: None,
        method: Method::Guest {
            elapsed: started.elapsed(),
        },
    })
}

/// The most passes the probe kernel runs for a trace (`pmuc.window-trace=`).
pub const KERNEL_TRACE_LIMIT: u64 = 100_000;

/// The handler's cost, from a small traced window of the case's kind.
fn handler_cost(workload: Workload, case: &Case) -> Result<Option<HandlerCost>, TraceError> {
    let small = Workload {
        kind: workload.kind,
        size: workload.kind.minimum_size() + 2,
    };
    let mut request = TraceRequest::new(small, case.read_with);
    request.notify = true;
    Ok(trace(&request)?.handler)
}
