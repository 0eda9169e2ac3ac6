//! The dynamic trace (`probe::linux::trace`) against everything that claims
//! to know what a window retires: each linux window, single-stepped and
//! decoded at two sizes, must retire exactly its listing; the reference
//! model's programs must retire, stretch by stretch between syscalls, what
//! the trace saw; every exact expectation in the built-in suites must be the
//! traced count; and the notification handler must cost what the checks
//! allow for. The probe kernel's window is traced too, by QEMU's instruction
//! log under TCG (`executor::qemu::window_trace`).

use pmu_conformance::case::{Suite, SuiteSources, load_suites};
use pmu_conformance::case_trace::{Method, comparable, trace_case};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::known_bugs::KnownBugs;
use pmu_conformance::probe::linux::trace::{TraceError, TraceRequest, trace, trace_listing};
use pmu_conformance::probe::sim::programs::linux_window;
use pmu_conformance::vocabulary::{HANDLER_TOTAL, HANDLER_UP_TO_READ, ProbeKind, ReadWith};
use pmu_conformance::workload::{Counts, RDPMC_READ, Workload, WorkloadKind};

/// One trace at a time, so that a test can tell that no child is left behind.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The built-in suites.
fn suites() -> Vec<Suite> {
    load_suites(&SuiteSources::builtin(), &EventTable::builtin(), &KnownBugs::builtin()).unwrap()
}

fn traced(
    kind: WorkloadKind,
    size: u64,
    read_with: ReadWith,
    notify: bool,
) -> pmu_conformance::probe::linux::trace::TracedWindow {
    let mut request = TraceRequest::new(Workload { kind, size }, read_with);
    request.notify = notify;
    trace(&request).unwrap_or_else(|e| panic!("tracing {kind} at {size}: {e}"))
}

/// Two sizes per workload: the smallest its listing allows plus one, and a few hundred passes.
fn sizes(kind: WorkloadKind) -> [u64; 2] {
    [kind.minimum_size() + 1, kind.minimum_size() + 299]
}

#[test]
fn every_window_retires_its_listing_at_two_sizes() {
    let _serial = serial();
    for kind in WorkloadKind::ALL {
        for size in sizes(kind) {
            let w = Workload { kind, size };
            let listed = comparable(w.counts(ProbeKind::Linux).unwrap());
            let t = traced(kind, size, ReadWith::Syscall, false);
            assert_eq!(t.counts, listed, "{kind} at {size}: traced against listed");
            assert_eq!(
                t.taken_conditional_branches,
                w.taken_conditional_branches(),
                "{kind} at {size}: the taken conditional branches"
            );
            assert!(t.counts.instructions > 0 && t.steps > t.counts.instructions);
        }
    }
}

#[test]
fn the_rdpmc_window_retires_the_loop_and_its_read() {
    let _serial = serial();
    // rdpmc faults without a PMU; the tracer completes it, as one instruction.
    for size in sizes(WorkloadKind::BranchLoop) {
        let w = Workload {
            kind: WorkloadKind::BranchLoop,
            size,
        };
        let listed = w.counts(ProbeKind::Linux).unwrap() + RDPMC_READ;
        let t = traced(WorkloadKind::BranchLoop, size, ReadWith::Rdpmc, false);
        assert_eq!(t.counts, listed, "rdpmc window at {size}");
    }
}

#[test]
fn the_traced_listings_are_the_listings() {
    let _serial = serial();
    for kind in WorkloadKind::ALL {
        let traced = trace_listing(kind, ReadWith::Syscall).unwrap();
        let listing = kind.listing(ProbeKind::Linux).unwrap();
        assert_eq!(
            traced.listing.before,
            comparable(listing.before + listing.after),
            "{kind}: the fixed part"
        );
        assert_eq!(traced.listing.body, comparable(listing.body), "{kind}: one pass");
    }
}

#[test]
fn the_models_programs_retire_what_the_trace_saw_between_syscalls() {
    let _serial = serial();
    for kind in WorkloadKind::ALL {
        let size = sizes(kind)[1];
        let w = Workload { kind, size };
        let t = traced(kind, size, ReadWith::Syscall, false);
        // The trace has no per-stretch faults; the model marks its faulting instructions.
        let model: Vec<Counts> = linux_window(&w, 10)
            .user_segments()
            .into_iter()
            .map(|c| Counts {
                page_faults: 0,
                branches_between_cpuids: 0,
                ..c
            })
            .collect();
        let seen: Vec<Counts> = t.segments.iter().map(|c| Counts { marker_hits: 0, ..*c }).collect();
        assert_eq!(model, seen, "{kind} at {size}: the model's stretches between syscalls");
    }
}

#[test]
fn the_handler_costs_what_the_checks_allow_for() {
    let _serial = serial();
    for kind in WorkloadKind::ALL {
        let size = sizes(kind)[0];
        let plain = traced(kind, size, ReadWith::Syscall, false);
        let notified = traced(kind, size, ReadWith::Syscall, true);
        let handler = notified.handler.expect("a notification was delivered");
        assert_eq!(
            handler.up_to_read, HANDLER_UP_TO_READ,
            "{kind}: the handler up to its read"
        );
        assert_eq!(handler.total, HANDLER_TOTAL, "{kind}: the whole handler");
        // The handler is counted apart; the window's own count is unchanged.
        assert_eq!(
            notified.counts, plain.counts,
            "{kind}: the window around a notification"
        );
        assert!(plain.handler.is_none());
    }
}

#[test]
fn every_exact_expectation_in_the_suites_is_the_traced_count() {
    let _serial = serial();
    let suites = suites();
    let mut proven = Vec::new();
    for suite in &suites {
        for case in suite
            .cases
            .iter()
            .filter(|c| c.probe == ProbeKind::Linux && c.expect.is_some())
        {
            // Extrapolated from three traced sizes, so the whole suite takes a second, not hours.
            let t = trace_case(case, None, None, Some(false)).unwrap();
            assert!(matches!(t.method, Method::Extrapolated(_)));
            let c = t.compared.as_ref().expect("the case states its expectation");
            assert!(
                c.agrees(),
                "{}/{}: expects {} = {}, the trace gives {}",
                suite.name,
                case.id.name,
                c.formula,
                c.expected,
                c.traced
            );
            assert_eq!(comparable(t.listed), t.traced, "{}/{}", suite.name, case.id.name);
            proven.push(format!("{}/{}", suite.name, case.id.name));
        }
    }
    // Every linux case with an expectation: exact-counts, overflow and selfcheck.
    assert!(
        proven.len() >= 12,
        "only {} expectations traced: {proven:?}",
        proven.len()
    );
}

#[test]
fn a_small_case_stepped_whole_agrees_with_its_extrapolation() {
    let _serial = serial();
    let suites = suites();
    let case = suites
        .iter()
        .flat_map(|s| s.cases.iter().map(move |c| (s, c)))
        .find(|(s, c)| s.name == "overflow" && c.id.name == "rr-xen-probe")
        .map(|(_, c)| c)
        .expect("rr's probe is a case");
    let whole = trace_case(case, None, None, Some(true)).unwrap();
    let extrapolated = trace_case(case, None, None, Some(false)).unwrap();
    assert!(matches!(whole.method, Method::Full { .. }));
    assert_eq!(whole.traced, extrapolated.traced);
    assert_eq!(whole.compared, extrapolated.compared);
    // rr's probe samples, so its trace delivers a notification and costs the handler.
    assert_eq!(whole.handler.map(|h| h.total), Some(HANDLER_TOTAL));
}

#[test]
fn a_trace_that_runs_out_of_steps_is_an_error_and_leaves_no_child() {
    let _serial = serial();
    let mut request = TraceRequest::new(
        Workload {
            kind: WorkloadKind::BranchLoop,
            size: 1000,
        },
        ReadWith::Syscall,
    );
    request.step_limit = 50;
    let err = trace(&request).unwrap_err();
    assert!(matches!(&err, TraceError::Failed(m) if m.contains("50 steps")), "{err}");
    // The child was killed and reaped: this process has no child left
    // (the other tests wait for `serial`, so none of theirs is running).
    let rc = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    assert_eq!(rc, -1, "a child is left behind");
}

#[test]
fn the_linux_probe_offers_the_traced_counts_for_diagnoses() {
    let _serial = serial();
    use std::sync::Arc;

    use pmu_conformance::cpu::CpuidReader;
    use pmu_conformance::fingerprint::Fingerprint;
    use pmu_conformance::probe::Probe;
    use pmu_conformance::probe::linux::{LinuxProbe, Machine};

    let table = EventTable::builtin();
    let fingerprint = Fingerprint::here(&table, &CpuidReader::native());
    let mut probe = LinuxProbe::new(Arc::new(Machine::new(table, &fingerprint)));
    // The size of exact-counts/conditional-branches: extrapolated, so quick.
    let w = Workload {
        kind: WorkloadKind::BranchLoop,
        size: 100_000,
    };
    let counts = probe.traced_counts(&w, ReadWith::Syscall).unwrap().unwrap();
    assert_eq!(counts, comparable(w.counts(ProbeKind::Linux).unwrap()));
}

#[test]
fn the_kernel_window_logged_by_qemu_retires_its_listing_at_two_sizes() {
    let _serial = serial();
    let image = pmu_conformance::executor::qemu::image::find(None)
        .unwrap_or_else(|e| panic!("{e} (`cargo xtask kernel` builds the image)"));
    for passes in [3, 500] {
        let traced = pmu_conformance::executor::qemu::window_trace::trace(&image, passes)
            .unwrap_or_else(|e| panic!("tracing the kernel window at {passes}: {e}"));
        let listed = WorkloadKind::BranchLoop
            .listing(ProbeKind::Kernel)
            .unwrap()
            .total(passes);
        assert_eq!(traced, listed, "the kernel window at {passes} passes");
    }
}

#[test]
fn every_kernel_exact_expectation_is_the_traced_count() {
    let _serial = serial();
    let suites = suites();
    let mut proven = 0;
    for suite in &suites {
        for case in suite
            .cases
            .iter()
            .filter(|c| c.probe == ProbeKind::Kernel && c.expect.is_some())
        {
            let t = trace_case(case, None, None, None).unwrap();
            let c = t.compared.as_ref().expect("the case states its expectation");
            assert!(c.agrees(), "{}/{}: {c:?}", suite.name, case.id.name);
            assert_eq!(t.listed, t.traced, "{}/{}", suite.name, case.id.name);
            proven += 1;
        }
    }
    assert!(proven >= 2, "only {proven} kernel expectations traced");
}

#[test]
fn a_trace_past_its_deadline_is_an_error_and_leaves_no_child() {
    let _serial = serial();
    let mut request = TraceRequest::new(
        Workload {
            kind: WorkloadKind::BranchLoop,
            size: 1_000_000,
        },
        ReadWith::Syscall,
    );
    request.deadline = std::time::Duration::from_millis(200);
    let started = std::time::Instant::now();
    let err = trace(&request).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, TraceError::Failed(m) if m.contains("deadline") || m.contains("killed")),
        "{err}"
    );
    let rc = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    assert_eq!(rc, -1, "a child is left behind");
}
