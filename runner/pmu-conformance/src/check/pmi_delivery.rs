//! `pmi-delivery`: every overflow produces exactly one notification, within
//! the CPU's skid budget.
//!
//! Each notification carries the counter's value when it reached the
//! workload's thread, and the probe reports how many overflows the kernel
//! handled (its sample records). [`classify`] judges one run:
//!
//! - Counters (`Rearm::Absolute`) overflow at every multiple of the period:
//!   a notification delivered at count c answers boundary ⌊c/P⌋, with skid
//!   c − ⌊c/P⌋·P. Boundaries no notification answers are *lost*; a second
//!   notification for a boundary, or one before the first, is *extra*; a skid
//!   above the budget is *late*. A boundary crossed within the budget of the
//!   window's end may still have its notification in flight, so it is not
//!   required. Attribution needs the budget below the period; where it is
//!   not, the case is unsupported on this CPU rather than judged by guesswork.
//! - Timers (`Rearm::Relative`) re-arm when they fire and skip the periods a
//!   late expiry missed (`hrtimer_forward_now`), so when a timer fires depends
//!   on the host's scheduling, not on the PMU. For them the check holds the
//!   notifications to the overflows the kernel handled: each must produce
//!   exactly one. The gaps between notifications are reported, not judged.
//!
//! For counters, overflows the kernel handled without a notification are
//! reported too: a lost PMI leaves no sample record, a lost signal leaves one.

use super::{Stop, not_exercised, one_run};
use crate::case::Case;
use crate::event_table::{Rearm, ResolvedEvent};
use crate::outcome::{Magnitude, Outcome, Reason, ReasonCode, Signature, SignatureKind, Unit};
use crate::probe::{Notification, NotificationKind, Probe, Window, WindowRun};
use crate::vocabulary::{HANDLER_UP_TO_READ, ProbeKind};
use crate::workload::Workload;

/// How one run's notifications matched its boundaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Boundaries that had to be notified.
    pub required: u64,
    pub notified: u64,
    pub lost: u64,
    pub extra: u64,
    pub late: u64,
    /// Of the late, those beyond the record tolerance as well.
    pub late_record: u64,
    /// Boundaries crossed so close to the end that their notification may still be in flight.
    pub in_flight: u64,
    /// REFRESH budgets that ended without POLL_HUP.
    pub hup_missing: u64,
    /// Overflows the kernel handled for which no notification arrived.
    pub handled_unnotified: u64,
    /// Skid of each notification that answered a boundary.
    pub skids: Vec<u64>,
}

impl Tally {
    fn absorb(&mut self, o: Tally) {
        self.required += o.required;
        self.notified += o.notified;
        self.lost += o.lost;
        self.extra += o.extra;
        self.late += o.late;
        self.late_record += o.late_record;
        self.in_flight += o.in_flight;
        self.hup_missing += o.hup_missing;
        self.handled_unnotified += o.handled_unnotified;
        self.skids.extend(o.skids);
    }
}

/// The rules the notifications of one run are judged by.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub period: u64,
    /// rr's replay bound: a notification later than this would fail a replay.
    pub budget: u64,
    /// rr's record tolerance, five times the budget: later than this, rr
    /// warns even while recording.
    pub record_budget: u64,
    pub rearm: Rearm,
    /// At most this many notifications were allowed (IOC_REFRESH), the last a POLL_HUP.
    pub refresh: Option<u32>,
}

/// Number of k ≥ 1 with k·P + budget < span: boundaries after a start point
/// that ended long enough before the window did to have been notified.
fn due_within(span: u64, rules: &Rules) -> u64 {
    if span > rules.budget {
        (span - rules.budget - 1) / rules.period
    } else {
        0
    }
}

/// Matches one run's notifications to the boundaries its final count crossed
/// (counters), or to the overflows the kernel handled (timers).
pub fn classify(final_count: u64, notifications: &[Notification], handled: Option<u64>, rules: &Rules) -> Tally {
    let p = rules.period;
    let mut t = Tally::default();
    let cap = rules.refresh.map(u64::from);
    match rules.rearm {
        Rearm::Absolute => {
            let mut last = 0u64;
            for n in notifications {
                let boundary = n.count / p;
                if boundary == 0 || boundary <= last || cap.is_some_and(|c| boundary > c && last >= c) {
                    t.extra += 1;
                    continue;
                }
                t.notified += 1;
                t.lost += boundary - last - 1;
                let skid = n.count - boundary * p;
                t.skids.push(skid);
                if skid > rules.budget {
                    t.late += 1;
                }
                if skid > rules.record_budget {
                    t.late_record += 1;
                }
                last = boundary;
            }
            let crossed = final_count / p;
            let crossed = cap.map_or(crossed, |c| crossed.min(c));
            let due = cap.map_or(due_within(final_count, rules), |c| {
                due_within(final_count, rules).min(c)
            });
            t.lost += due.saturating_sub(last);
            t.in_flight = crossed.saturating_sub(last.max(due));
            t.required = t.lost + t.notified;
        }
        Rearm::Relative => {
            // `run` never asks without the kernel's count; with none, nothing is required.
            let handled = handled.unwrap_or(0);
            let notified = notifications.len() as u64;
            t.required = handled;
            t.notified = notified.min(handled);
            t.lost = handled.saturating_sub(notified);
            t.extra = notified.saturating_sub(handled);
            // How late each expiry came, relative to the one before: reported only.
            let mut previous = 0u64;
            for n in notifications {
                t.skids.push(n.count.saturating_sub(previous).saturating_sub(p));
                previous = n.count;
            }
        }
    }
    if let Some(h) = handled {
        t.handled_unnotified = h.saturating_sub(notifications.len() as u64);
    }
    if let Some(c) = cap {
        let hangups = notifications
            .iter()
            .filter(|n| n.kind == NotificationKind::Hangup)
            .count();
        // The budget ran out if the count crossed c boundaries; then exactly the last is POLL_HUP.
        let exhausted = final_count / p >= c && t.notified >= c;
        if exhausted && (hangups != 1 || notifications.last().map(|n| n.kind) != Some(NotificationKind::Hangup)) {
            t.hup_missing += 1;
        }
    }
    t
}

/// How many expiries a timer case's window is sized to give each run.
pub const MIN_EXPIRIES: u64 = 10;

/// How many starved timer runs one case may run again before it judges the
/// next as it is (the suite's description says three).
const MAX_STARVED: u64 = 3;

/// How many calibration runs must each last [`CALIBRATION_PERIODS`] timer
/// periods before a timer case trusts its estimate of the time per iteration.
const CALIBRATION_LONG_RUNS: u32 = 2;
/// How many timer periods of CPU time a calibration run must last to count.
const CALIBRATION_PERIODS: u64 = 2;
/// At most this many calibration runs, however short they are.
const CALIBRATION_MAX_RUNS: u32 = 8;

/// The case's workload, lengthened (never shortened) so that one window runs
/// for at least [`MIN_EXPIRIES`] periods of CPU time, with a margin, at the
/// time per iteration calibration runs measure here. A disturbance (an
/// interrupt, the host taking the vCPU away) only ever lengthens a run, so
/// the fastest run is the estimate; and the case's own window may be far
/// shorter than one period, so calibration lengthens its runs until two have
/// each lasted [`CALIBRATION_PERIODS`] periods: one disturbed sub-period run
/// once sized a window to a third of what it needed (4 expiries of 10). The
/// runs must still fit the case's deadline: past it, the case is not
/// exercised, and says why.
fn sized_for_expiries(
    window: &Window<'_>,
    period_ns: u64,
    deadline: std::time::Duration,
    runs: u32,
    probe: &mut dyn Probe,
) -> Result<Workload, Stop> {
    let wanted_ns = 1.5 * (MIN_EXPIRIES * period_ns) as f64;
    let budget_ns = 0.5 * deadline.as_nanos() as f64 / f64::from(runs.max(1));
    if wanted_ns > budget_ns {
        return Err(not_exercised(format!(
            "{MIN_EXPIRIES} timer periods of {period_ns} ns per run, over {runs} runs, do not fit the case's \
             deadline of {} s: shorten the period or lengthen the timeout",
            deadline.as_secs()
        )));
    }
    let fixed = window.workload.size - window.workload.iterations();
    let mut calibration = *window;
    let mut fastest = f64::INFINITY;
    let mut long_runs = 0;
    for i in 0..CALIBRATION_MAX_RUNS {
        let run = one_run(&calibration, probe, &format!("calibration run {}", i + 1))?;
        let iterations = calibration.workload.iterations().max(1);
        let ran_ns = run.reading.time_running;
        fastest = fastest.min(ran_ns as f64 / iterations as f64);
        if ran_ns >= CALIBRATION_PERIODS * period_ns {
            long_runs += 1;
            if long_runs == CALIBRATION_LONG_RUNS {
                break;
            }
        } else if fastest > 0.0 {
            // Aim for twice the required length, at the fastest rate seen.
            let aim = (2 * CALIBRATION_PERIODS * period_ns) as f64 / fastest;
            let next = (aim.ceil() as u64).clamp(iterations, iterations.saturating_mul(64));
            calibration.workload.size = fixed + next;
        }
    }
    if fastest <= 0.0 || !fastest.is_finite() {
        return Err(not_exercised("the calibration runs took no CPU time".to_owned()));
    }
    let iterations = (wanted_ns / fastest).ceil() as u64;
    let size = window.workload.size.max(fixed + iterations);
    Ok(Workload {
        size,
        ..window.workload
    })
}

pub fn run(case: &Case, event: &ResolvedEvent, probe: &mut dyn Probe) -> Result<Outcome, Stop> {
    let period = case.period.expect("validation requires a period for pmi-delivery");
    // A notification's count includes its own handler's events up to the
    // read that takes it (the Linux probe's handler, traced), on top of the
    // CPU's skid.
    let allowance = match (case.probe, event.counts) {
        (ProbeKind::Linux, Some(q)) => q.of(&HANDLER_UP_TO_READ),
        _ => 0,
    };
    let budget = match (event.rearm, event.skid) {
        (Rearm::Relative, _) => 0,
        (Rearm::Absolute, Some(budget)) => budget + allowance,
        (Rearm::Absolute, None) => {
            return Ok(Outcome::unsupported(Reason::new(
                ReasonCode::NoSkidBudget,
                "no skid budget is known for this CPU",
            )));
        }
    };
    if event.rearm == Rearm::Absolute && budget >= period {
        return Ok(Outcome::unsupported(Reason::new(
            ReasonCode::NoSkidBudget,
            format!(
                "the skid budget here ({budget}) is not below the period ({period}), \
                 so notifications cannot be matched to boundaries; use a larger period"
            ),
        )));
    }
    // rr's thresholds (rr-debugger/rr@01ae9d25aedf:src/PerfCounters.cc
    // (PerfCounters::read_ticks)): past the skid budget a replay fails; past
    // five times it rr warns while recording; on a CPU rr marks
    // PMU_SKID_UNBOUNDED (every Zen) a replay overshoot is a transient error,
    // so there lateness is reported, never judged.
    let rules = Rules {
        period,
        budget,
        record_budget: event.skid.map_or(0, |s| 5 * s) + allowance,
        rearm: event.rearm,
        refresh: case.refresh,
    };
    // The workload retires at least its listing's count of the event (an
    // inexact event only ever overcounts), so those boundaries are crossed
    // even if the counter stops counting, and must be notified: the final
    // reading alone would let a dead counter require nothing.
    let truth = event
        .counts
        .and_then(|q| case.workload.counts(case.probe).map(|c| q.of(&c)));
    // A timer expires with CPU time, not with anything the workload retires,
    // so its window is sized by time: long enough for MIN_EXPIRIES.
    let mut window = super::window(case, event);
    if event.rearm == Rearm::Relative {
        window.workload = sized_for_expiries(&window, period, case.timeout, case.runs, probe)?;
    }
    // Lateness that counts against the CPU: none where rr calls its skid unbounded.
    let judged = |late: u64| if event.skid_unbounded { 0 } else { late };
    let mut total = Tally::default();
    let mut runs_with_faults = 0u64;
    let mut after_window = 0u64;
    let mut unjudgeable = false;
    let mut fewest_handled = u64::MAX;
    // A timer run the host starved saw too few expiries to judge, or cannot
    // be judged: with its vCPU taken away an overdue hrtimer fires once for
    // several periods, and Linux sends an overflow's signal from an
    // irq_work that a flag asks for, once however many overflows set it
    // before it ran (torvalds/linux kernel/events/core.c,
    // __perf_event_overflow's `pending_wakeup` and perf_pending_irq,
    // perf_pending_event before v6.1), so a signal more than three periods
    // after the one before may stand for two overflows, or for one and a
    // loss. Like a disturbed window, such a run is discarded, never
    // adjusted, and run again, at most MAX_STARVED times in the case;
    // past that it is judged as it is.
    let starved = |run: &WindowRun| {
        let few = run.overflows_handled.is_some_and(|n| n < MIN_EXPIRIES / 2);
        let mut previous = 0u64;
        let late = run.notifications.iter().any(|n| {
            let gap = n.count.saturating_sub(previous);
            previous = n.count;
            gap > 3 * period
        });
        few || late
    };
    let mut starved_runs = 0u64;
    let mut kept: Vec<WindowRun> = Vec::new();
    for i in 0..case.runs {
        loop {
            let run = one_run(&window, probe, &format!("run {} of {}", i + 1, case.runs))?;
            if event.rearm == Rearm::Relative && starved(&run) && starved_runs < MAX_STARVED {
                starved_runs += 1;
                continue;
            }
            kept.push(run);
            break;
        }
    }
    for run in kept {
        fewest_handled = fewest_handled.min(run.overflows_handled.unwrap_or(0));
        unjudgeable |= event.rearm == Rearm::Relative && run.overflows_handled.is_none();
        after_window += run.notifications.iter().filter(|n| n.after_window).count() as u64;
        let crossed = truth.map_or(run.reading.value, |t| t.max(run.reading.value));
        let t = classify(crossed, &run.notifications, run.overflows_handled, &rules);
        if t.lost + t.extra + judged(t.late) + t.hup_missing > 0 {
            runs_with_faults += 1;
        }
        total.absorb(t);
    }

    if unjudgeable {
        return Ok(Outcome::unsupported(Reason::new(
            ReasonCode::ProbeCannotSee,
            "this probe does not report the overflows it handled, so a timer's notifications cannot be judged",
        )));
    }
    let runs = u64::from(case.runs);
    if total.required == 0 {
        return Err(not_exercised(format!(
            "no boundary had to be notified in {runs} runs: the window crossed none"
        )));
    }
    if event.rearm == Rearm::Relative && fewest_handled < MIN_EXPIRIES / 2 {
        return Err(not_exercised(format!(
            "a run saw {fewest_handled} timer expiries, fewer than half the {MIN_EXPIRIES} its window was sized for \
             ({} iterations of `{}`), after {starved_runs} starved runs were run again",
            window.workload.size, window.workload.kind
        )));
    }
    let mut skids = total.skids.clone();
    skids.sort_unstable();
    let percentile = |q: f64| {
        skids
            .get(((skids.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let skid_max = skids.last().copied().unwrap_or(0);
    let in_runs = |k: u64| {
        if k == runs {
            "in every run".to_owned()
        } else {
            format!("in {k} of {runs} runs")
        }
    };
    let (lost_what, unit) = match event.rearm {
        Rearm::Absolute => ("boundaries never notified", "boundaries"),
        Rearm::Relative => ("timer overflows never notified", "overflows"),
    };
    let failure = [
        (SignatureKind::PmiLost, total.lost, Unit::OverflowsLost, lost_what),
        (
            SignatureKind::PmiExtra,
            total.extra,
            Unit::ExtraNotifications,
            "notifications for no new overflow",
        ),
        (
            SignatureKind::PmiLateRecord,
            judged(total.late_record),
            Unit::LateNotifications,
            "notifications beyond 5× the skid budget (rr warns even while recording)",
        ),
        (
            SignatureKind::PmiLate,
            judged(total.late),
            Unit::LateNotifications,
            "notifications beyond the skid budget (rr's replay fails)",
        ),
        (
            SignatureKind::HupMissing,
            total.hup_missing,
            Unit::MissingHups,
            "REFRESH budgets ended without POLL_HUP",
        ),
    ]
    .into_iter()
    .find(|(_, n, _, _)| *n > 0);

    let outcome = match failure {
        None => {
            let summary = match event.rearm {
                Rearm::Absolute => format!(
                    "{} of {} boundaries notified, skid max {skid_max} (budget {}{}){}",
                    total.notified,
                    total.required,
                    budget - allowance,
                    match allowance {
                        0 => String::new(),
                        n => format!(" + {n} for the handler"),
                    },
                    match (event.skid_unbounded, total.late) {
                        (false, _) => String::new(),
                        (true, 0) => "; rr treats this CPU's skid as unbounded".to_owned(),
                        (true, n) => format!(
                            "; {n} beyond the budget ({} beyond 5×), reported, not judged: rr treats this \
                             CPU's skid as unbounded",
                            total.late_record
                        ),
                    }
                ),
                Rearm::Relative => format!(
                    "{} of {} timer overflows notified, the latest {skid_max} ns after its period",
                    total.notified, total.required
                ),
            };
            // One lost PMI can silence the rest of its run (a counter perf
            // never reloads), so the independent trial is the run, not the
            // boundary: the bound is per run.
            Outcome::pass(summary).proves(super::proves(
                case,
                "lost-notification runs",
                runs,
                &format!("runs ({} {unit})", total.required),
            ))
        }
        Some((kind, n, unit, what)) => {
            let detail = format!("{n} {what} {}", in_runs(runs_with_faults));
            Outcome::fail(
                Signature::new(kind, Magnitude::new(n, unit), detail),
                format!(
                    "{} required, {} notified, {} lost, {} extra, {} late",
                    total.required, total.notified, total.lost, total.extra, total.late
                ),
            )
        }
    };
    let outcome = match allowance {
        0 => outcome,
        n => outcome.fact("handler_allowance", n),
    };
    Ok(outcome
        .fact("period", period)
        .fact("runs", runs)
        .fact("skid_budget", event.skid)
        .figure("required", total.required)
        .figure("notified", total.notified)
        .figure("lost", total.lost)
        .figure("extra", total.extra)
        .figure("late", total.late)
        .figure("late_beyond_record_tolerance", total.late_record)
        .figure("in_flight_at_end", total.in_flight)
        .figure("delivered_after_window", after_window)
        .figure("handled_without_notification", total.handled_unnotified)
        .figure("skid_p50", percentile(0.5))
        .figure("skid_p99", percentile(0.99))
        .figure("skid_max", skid_max)
        .figure("starved_timer_runs_run_again", starved_runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(counts: &[u64]) -> Vec<Notification> {
        counts
            .iter()
            .map(|&count| Notification {
                count,
                kind: NotificationKind::Overflow,
                after_window: false,
            })
            .collect()
    }

    fn rules(period: u64, budget: u64) -> Rules {
        Rules {
            period,
            budget,
            record_budget: 5 * budget,
            rearm: Rearm::Absolute,
            refresh: None,
        }
    }

    #[test]
    fn one_notification_per_boundary_with_no_skid_is_clean() {
        let notes = at(&[100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
        let t = classify(1000, &notes, Some(10), &rules(100, 0));
        assert_eq!(
            (t.required, t.notified, t.lost, t.extra, t.late, t.handled_unnotified),
            (10, 10, 0, 0, 0, 0)
        );
        assert_eq!(t.skids, vec![0; 10]);
    }

    #[test]
    fn lost_extra_and_late_are_told_apart() {
        // Boundary 2 lost, boundary 3 notified twice, boundary 4 late (skid 30 > 20).
        let t = classify(500, &at(&[105, 310, 312, 430, 500]), None, &rules(100, 20));
        assert_eq!((t.lost, t.extra, t.late, t.notified), (1, 1, 1, 4));
        assert_eq!(t.skids, vec![5, 10, 30, 0]);
    }

    #[test]
    fn a_lost_signal_leaves_a_handled_overflow_behind() {
        // The kernel handled 5 overflows; only 4 notifications arrived.
        let t = classify(500, &at(&[100, 200, 400, 500]), Some(5), &rules(100, 0));
        assert_eq!((t.lost, t.handled_unnotified), (1, 1));
        // A lost PMI leaves no record: the kernel handled only 4.
        let t = classify(500, &at(&[100, 200, 400, 500]), Some(4), &rules(100, 0));
        assert_eq!((t.lost, t.handled_unnotified), (1, 0));
    }

    #[test]
    fn boundaries_at_the_very_end_may_still_be_in_flight() {
        let nine = at(&[100, 200, 300, 400, 500, 600, 700, 800, 900]);
        // Count stopped 5 events past boundary 10 with a budget of 20: not required.
        let t = classify(1005, &nine, None, &rules(100, 20));
        assert_eq!((t.lost, t.in_flight, t.required), (0, 1, 9));
        // 50 past it is beyond the budget: that one is lost.
        let t = classify(1050, &nine, None, &rules(100, 20));
        assert_eq!((t.lost, t.in_flight, t.required), (1, 0, 10));
    }

    #[test]
    fn a_silent_counter_loses_every_boundary() {
        let t = classify(10_500, &[], None, &rules(1000, 100));
        assert_eq!((t.lost, t.required), (10, 10));
        // The tenth boundary, crossed by the very last event, may still be in flight.
        let t = classify(10_000, &[], None, &rules(1000, 100));
        assert_eq!((t.lost, t.in_flight), (9, 1));
    }

    #[test]
    fn refresh_stops_at_its_budget_and_ends_with_hangup() {
        let mut notes = at(&[100, 200, 300]);
        let r = Rules {
            refresh: Some(3),
            ..rules(100, 0)
        };
        // Counting stops at the third overflow.
        assert_eq!(classify(300, &notes, None, &r).hup_missing, 1);
        notes[2].kind = NotificationKind::Hangup;
        let t = classify(300, &notes, None, &r);
        assert_eq!(
            (t.required, t.notified, t.lost, t.extra, t.hup_missing),
            (3, 3, 0, 0, 0)
        );
    }

    #[test]
    fn timers_are_held_to_the_overflows_the_kernel_handled() {
        let r = Rules {
            period: 1000,
            budget: 0,
            record_budget: 0,
            rearm: Rearm::Relative,
            refresh: None,
        };
        // A host that stole 4 periods: one late expiry, nothing lost.
        let t = classify(9400, &at(&[1050, 2120, 7180, 8230]), Some(4), &r);
        assert_eq!((t.notified, t.lost, t.extra, t.late), (4, 0, 0, 0));
        assert_eq!(t.skids, vec![50, 70, 4060, 50]);
        // The kernel handled 5 but only 4 arrived: one lost; 6 arrived: one extra.
        assert_eq!(classify(9400, &at(&[1050, 2120, 7180, 8230]), Some(5), &r).lost, 1);
        assert_eq!(
            classify(9400, &at(&[1050, 2120, 3180, 7180, 8230, 9300]), Some(5), &r).extra,
            1
        );
    }
}
