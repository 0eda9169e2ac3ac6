//! Properties of the model under its Linux-perf driver, for any loop length
//! and sampling period: a faithful PMU counts exactly and notifies once per
//! period boundary; each counting fault shows as its source says, whatever
//! the sizes. The suites' verdicts on `sim:` environments rest on these.

use pmu_kernel_checks::listing::Counts;
use pmu_model::machine::Machine;
use pmu_model::perf::{self, PerfEvent, PerfResult};
use pmu_model::pmu::Pmu;
use pmu_model::program::{Op, Program};
use pmu_model::{Config, Fault, Faults};
use proptest::prelude::*;

/// `passes` of a loop of `body` user instructions ending in its one
/// conditional back-edge, between perf's enable and disable (each a syscall).
fn window(passes: u64, body: u64) -> Program {
    let pass = Counts {
        instructions: body + 1,
        conditional_branches: 1,
        branches: 1,
        ..Counts::ZERO
    };
    let mut program = Program::default();
    program
        .kernel(40)
        .op(Op::Arm)
        .kernel(40)
        .run(pass, false, passes)
        .kernel(40)
        .op(Op::Disarm)
        .kernel(40);
    program
}

/// Branches retired: 0xc4 on Intel, 0xc2 on AMD.
fn branches(config: &Config) -> u64 {
    match config.vendor {
        pmu_model::config::Vendor::Intel => 0x00c4,
        pmu_model::config::Vendor::Amd => 0x00c2,
    }
}

fn run(config: Config, passes: u64, body: u64, period: Option<u64>) -> PerfResult {
    let event = PerfEvent {
        config: branches(&config),
        sample_period: period,
        refresh: None,
        period_in_window: None,
    };
    let mut machine = Machine::new(Pmu::new(config));
    perf::run(&mut machine, &window(passes, body), event)
}

fn faithful() -> impl Strategy<Value = Config> {
    prop_oneof![Just(Config::intel_skylake()), Just(Config::amd_zen3())]
}

proptest! {
    // No failure files: these tests live outside src/, and CI writes nothing.
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_faithful_pmu_counts_exactly(config in faithful(), passes in 1u64..20_000, body in 0u64..8) {
        let r = run(config, passes, body, None);
        prop_assert_eq!(r.count, passes);
        prop_assert!(r.notifications.is_empty());
    }

    #[test]
    fn a_faithful_pmu_notifies_once_per_period(
        config in faithful(),
        passes in 1u64..20_000,
        body in 0u64..8,
        // Longer than the model's skid (at most 24 events), so no two
        // boundaries share a PMI: where they do, Linux merges them, and so does the model.
        period in 32u64..5_000,
    ) {
        let r = run(config, passes, body, Some(period));
        prop_assert_eq!(r.count, passes);
        prop_assert_eq!(r.notifications.len() as u64, passes / period);
        // Each notification comes after its boundary and before the next one.
        for (k, n) in r.notifications.iter().enumerate() {
            let boundary = (k as u64 + 1) * period;
            prop_assert!(n.count >= boundary && n.count < boundary + period, "{k}: {n:?}");
        }
    }

    #[test]
    fn the_xen_quirk_adds_one_only_when_the_pmi_finds_zero(passes in 2u64..5_000, period in 2u64..5_000) {
        let config = Config { faults: Faults(vec![Fault::XenPmcQuirk]), ..Config::intel_skylake() };
        let r = run(config, passes, 0, Some(period));
        // perf re-presets the counter in its handler, so the written 1 is
        // lost unless the PMI lands with the counter at exactly 0 and perf
        // reads it before writing: the count is exact or one over per PMI.
        let over = r.count - passes;
        prop_assert!(over <= r.overflows, "{} over with {} PMIs", over, r.overflows);
    }

    #[test]
    fn zero_counts_counts_nothing_at_any_size(passes in 1u64..20_000, period in proptest::option::of(2u64..5_000)) {
        let config = Config { faults: Faults(vec![Fault::ZeroCounts]), ..Config::intel_skylake() };
        let r = run(config, passes, 1, period);
        prop_assert_eq!(r.count, 0);
        prop_assert!(r.notifications.is_empty());
    }

    #[test]
    fn parallels_offsets_every_count_by_2_to_the_31(passes in 1u64..20_000) {
        let config = Config { faults: Faults(vec![Fault::Parallels2p31Offset]), ..Config::intel_skylake() };
        let r = run(config, passes, 0, None);
        prop_assert_eq!(r.count.abs_diff(passes), 1 << 31);
    }
}
