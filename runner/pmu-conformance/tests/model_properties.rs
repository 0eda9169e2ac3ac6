//! The reference model through the Linux probe's own interface, for every
//! workload, every exact event, any size and any period: a faithful PMU
//! counts exactly what the workload's listing says and notifies once per
//! period boundary; each fault leaves the mark its source documents. The
//! `sim:` verdicts and the detection matrix rest on these properties.

use pmu_conformance::event_table::{EventTable, Exactness, Rearm, ResolvedEvent};
use pmu_conformance::executor::sim::SimExecutor;
use pmu_conformance::probe::sim::SimProbe;
use pmu_conformance::probe::{Probe, Sampling, Window, WindowRun};
use pmu_conformance::vocabulary::ProbeKind;
use pmu_conformance::vocabulary::ReadWith;
use pmu_conformance::workload::{Quantity, Workload, WorkloadKind};
use pmu_model::{Config, Fault, Faults};
use proptest::prelude::*;
use std::sync::Arc;

/// Every event that resolves on `preset`'s CPU and counts a quantity exactly.
fn exact_events(preset: &str) -> Vec<ResolvedEvent> {
    let table = EventTable::builtin();
    let sim = SimExecutor::new(preset, Config::preset(preset).unwrap(), Arc::new(table.clone()));
    let fp = sim.fingerprint();
    table
        .events
        .iter()
        .filter(|(_, def)| def.exactness == Exactness::Exact)
        .filter_map(|(name, _)| {
            table
                .resolve(name, &fp.cpu.identity, &fp.pmu.architectural, &fp.cpu.features)
                .ok()
        })
        .filter(|e| e.counts.is_some())
        .collect()
}

fn workload() -> impl Strategy<Value = Workload> {
    (proptest::sample::select(WorkloadKind::ALL.to_vec()), 3u64..5_000).prop_map(|(kind, size)| Workload { kind, size })
}

fn run(config: Config, event: &ResolvedEvent, workload: Workload, period: Option<u64>) -> WindowRun {
    let window = Window {
        event,
        workload,
        sampling: period.map(|period| Sampling { period, refresh: None }),
        read_with: ReadWith::Syscall,
    };
    SimProbe::new(config).run(&window).expect("the model runs every window")
}

fn expected(event: &ResolvedEvent, workload: Workload) -> u64 {
    let counts = workload
        .counts(ProbeKind::Linux)
        .expect("every workload has a Linux listing");
    event.counts.expect("exact events count a quantity").of(&counts)
}

/// The input that taught the rule above: rr's probe ends on a boundary (2225
/// = 25 × 89), so its last PMI lands after the disabling ioctl and is dropped.
#[test]
fn a_pmi_after_the_window_closes_is_dropped_as_linux_drops_it() {
    let event = exact_events("intel-skylake")
        .into_iter()
        .find(|e| e.counts == Some(Quantity::ConditionalBranches))
        .unwrap();
    let workload = Workload {
        kind: WorkloadKind::RrXenProbe,
        size: 2225,
    };
    let r = run(Config::intel_skylake(), &event, workload, Some(89));
    assert_eq!(r.reading.value, 2225);
    assert!(
        r.notifications.len() == 24 || r.notifications.len() == 25,
        "{:?}",
        r.notifications
    );
}

proptest! {
    // No failure files: these tests live outside src/, and CI writes nothing.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_faithful_pmu_counts_every_workload_exactly(
        preset in proptest::sample::select(vec!["intel-skylake", "amd-zen3"]),
        workload in workload(),
        // Longer than the model's skid (at most 24 events), so no two
        // boundaries share a PMI: where they do, Linux merges them, and so does the model.
        period in proptest::option::of(32u64..2_000),
    ) {
        for event in exact_events(preset) {
            let r = run(Config::preset(preset).unwrap(), &event, workload, period);
            let want = expected(&event, workload);
            prop_assert_eq!(r.reading.value, want, "{} over {}", event.name, workload);
            prop_assert_eq!(r.reading.time_running, r.reading.time_enabled);
            if let (Some(period), Rearm::Absolute) = (period, event.rearm) {
                let boundaries = want / period;
                let got = r.notifications.len() as u64;
                // A PMI whose skid carries it past the disabling ioctl finds the
                // event stopped, and Linux drops it (x86_pmu_handle_irq skips
                // inactive counters): the last boundary may go unnotified when
                // fewer events than the skid (at most 24 instructions) follow it.
                let skid = u64::from(Config::preset(preset).unwrap().skid.1);
                if want % period >= skid {
                    prop_assert_eq!(got, boundaries, "{} over {}", event.name, workload);
                } else {
                    prop_assert!(got + 1 >= boundaries && got <= boundaries, "{} over {}: {got}", event.name, workload);
                }
                for (k, n) in r.notifications.iter().enumerate() {
                    let boundary = (k as u64 + 1) * period;
                    prop_assert!(n.count >= boundary && n.count <= want, "{}: notification {k} at {}", event.name, n.count);
                }
            }
        }
    }

    /// Instructions that exit to Xen go uncounted: a CPUID loop counts
    /// exactly its CPUIDs fewer instructions than on a faithful PMU (same
    /// seed, so the same interrupts), whatever its length.
    #[test]
    fn xen_undercounts_by_one_per_exiting_instruction(size in 1u64..5_000) {
        let table = EventTable::builtin();
        let sim = SimExecutor::new("intel-skylake", Config::intel_skylake(), Arc::new(table.clone()));
        let fp = sim.fingerprint();
        let event = table.resolve("instructions", &fp.cpu.identity, &fp.pmu.architectural, &fp.cpu.features).unwrap();
        let workload = Workload { kind: WorkloadKind::CpuidLoop, size };
        let faithful = run(Config::intel_skylake(), &event, workload, None).reading.value;
        let xen = Config { faults: Faults(vec![Fault::XenVmexitUndercount]), ..Config::intel_skylake() };
        let undercounted = run(xen, &event, workload, None).reading.value;
        prop_assert_eq!(faithful - undercounted, workload.counts(ProbeKind::Linux).unwrap().vm_exits);
    }

    /// A PMI that is always lost never notifies. A duplicated PMI finds
    /// GLOBAL_STATUS already acknowledged, so perf notifies nothing extra:
    /// only the probe kernel, which counts PMIs, sees the duplicate.
    #[test]
    fn lost_pmis_silence_perf_and_duplicates_do_not_show_in_it(size in 100u64..5_000, period in 32u64..100) {
        let event = exact_events("intel-skylake")
            .into_iter()
            .find(|e| e.counts == Some(Quantity::ConditionalBranches))
            .unwrap();
        let workload = Workload { kind: WorkloadKind::BranchLoop, size };
        let boundaries = size / period;
        let lost = Config { faults: Faults(vec![Fault::LostPmi { rate: 1.0 }]), ..Config::intel_skylake() };
        let r = run(lost, &event, workload, Some(period));
        prop_assert_eq!(r.notifications.len(), 0);
        let twice = Config { faults: Faults(vec![Fault::KvmDuplicatePmi]), ..Config::intel_skylake() };
        let r = run(twice, &event, workload, Some(period));
        prop_assert_eq!(r.reading.value, size);
        prop_assert_eq!(r.notifications.len() as u64, boundaries);
    }
}
