//! The probe kernel's checks, run on the model: every check passes (or is
//! unsupported, with its reason) on a faithful PMU, and each fault gives the
//! signature its source predicts.

use pmu_kernel_checks::checks::{self, KernelCheck};
use pmu_kernel_checks::plan::{CaseRequest, Params};
use pmu_kernel_checks::pmu::{ArchEvent, Counter, Pmu};
use pmu_kernel_checks::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit, Verdict};
use pmu_kernel_checks::window::LISTING;
use pmu_model::hardware::ModelHardware;
use pmu_model::{Config, Fault, Faults};

fn run(config: Config, check: KernelCheck, params: Params) -> Record {
    let mut hw = ModelHardware::new(config);
    let pmu = Pmu::detect(&mut hw);
    checks::run(
        &mut hw,
        pmu,
        &CaseRequest {
            id: format!("k/{}", check.name()),
            check,
            params,
        },
    )
}

fn params(check: KernelCheck) -> Params {
    let iterations = 1000;
    match check {
        KernelCheck::ExactCount => Params {
            event: ArchEvent::Instructions,
            iterations,
            runs: 3,
            expect: Some(LISTING.total(iterations).instructions),
            ..Params::default()
        },
        KernelCheck::PmiOnExit | KernelCheck::AllCounters | KernelCheck::WriteRunning => Params {
            event: ArchEvent::Instructions,
            iterations,
            ..Params::default()
        },
        _ => Params {
            iterations,
            ..Params::default()
        },
    }
}

fn with(faults: &[Fault]) -> Config {
    Config {
        faults: Faults(faults.to_vec()),
        ..Config::intel_skylake()
    }
}

#[test]
fn a_faithful_pmu_passes_every_check() {
    for config in [Config::intel_skylake(), Config::amd_zen3()] {
        for &check in KernelCheck::ALL {
            let r = run(config.clone(), check, params(check));
            let ok = r.verdict == Verdict::Pass || (r.verdict == Verdict::Unsupported && r.reason.is_some());
            assert!(ok, "{:?} {}: {r:?}", config.vendor, check.name());
        }
    }
}

fn signature(faults: &[Fault], check: KernelCheck, p: Params) -> Option<SignatureKind> {
    let r = run(with(faults), check, p);
    r.signature.map(|s| s.kind)
}

#[test]
fn xen_faults_show_as_their_sources_predict() {
    let no_int = Params {
        int: false,
        ..params(KernelCheck::OverflowStatus)
    };
    assert_eq!(
        signature(&[Fault::XenStatusShadow], KernelCheck::OverflowStatus, no_int),
        Some(SignatureKind::StatusNotSet)
    );
    assert_eq!(
        signature(
            &[Fault::XenLvtpcNeverMasked],
            KernelCheck::LvtpcMask,
            params(KernelCheck::LvtpcMask)
        ),
        Some(SignatureKind::LvtpcNotMasked)
    );
    // Xen's physical LVTPC, masked by the CPU on the PMI Xen took, holds the
    // next one back until the guest rewrites its LVT: no second PMI, so
    // pmi-rearm passes on Xen however the guest's LVT is left.
    let xen = |faults: &[Fault]| Config {
        faults: Faults(faults.to_vec()),
        ..Config::intel_skylake().under("xen").unwrap()
    };
    let rearm = run(
        xen(&[Fault::XenLvtpcNeverMasked]),
        KernelCheck::PmiRearm,
        params(KernelCheck::PmiRearm),
    );
    assert_eq!(rearm.verdict, Verdict::Pass, "{rearm:?}");
    let mask = run(
        xen(&[Fault::XenLvtpcNeverMasked]),
        KernelCheck::LvtpcMask,
        params(KernelCheck::LvtpcMask),
    );
    assert_eq!(mask.signature.map(|s| s.kind), Some(SignatureKind::LvtpcNotMasked));
    // Without a physical LVTPC (KVM before a16eb25b09c0), the same guest LVT lets a second PMI through.
    assert_eq!(
        signature(
            &[Fault::KvmLvtpcNeverMasked],
            KernelCheck::PmiRearm,
            params(KernelCheck::PmiRearm)
        ),
        Some(SignatureKind::PmiExtra)
    );
    assert_eq!(
        signature(
            &[Fault::XenPmcQuirk],
            KernelCheck::OverflowAtZero,
            params(KernelCheck::OverflowAtZero)
        ),
        Some(SignatureKind::Overcount)
    );
    assert_eq!(
        signature(
            &[Fault::XenVmexitUndercount],
            KernelCheck::ExactCount,
            params(KernelCheck::ExactCount)
        ),
        Some(SignatureKind::Undercount)
    );
}

#[test]
fn an_unsupported_check_says_why() {
    // Xen caps the guest at version 3, without STATUS_SET.
    let r = run(
        Config {
            version: 3,
            ..Config::intel_skylake()
        },
        KernelCheck::StatusSet,
        Params::default(),
    );
    assert_eq!(r.verdict, Verdict::Unsupported);
    assert!(r.reason.unwrap().message.contains("version 3"));
    let r = run(
        Config {
            version: 0,
            ..Config::intel_skylake()
        },
        KernelCheck::OvfAck,
        Params::default(),
    );
    assert_eq!(
        r.reason.as_ref().map(|r| r.message.as_str()),
        Some("CPUID.0AH: PMU version 0 (no architectural PMU)")
    );
    let fixed = Params {
        counter: Counter::Fixed(0),
        event: ArchEvent::Instructions,
        ..Params::default()
    };
    assert_eq!(
        run(Config::intel_skylake(), KernelCheck::OverflowStatus, fixed).verdict,
        Verdict::Pass
    );
}

#[test]
fn xen_keeps_two_lvts_so_a_second_pmi_does_not_follow_the_one_the_guest_reads() {
    let xen = |faults: &[Fault]| Config {
        faults: Faults(faults.to_vec()),
        ..Config::intel_skylake().under("xen").unwrap()
    };
    let check = KernelCheck::PmiFollowsLvtpc;
    let r = run(xen(&[Fault::XenLvtpcNeverMasked]), check, params(check));
    assert_eq!(
        r.signature.as_ref().map(|s| s.kind),
        Some(SignatureKind::PmiBlocked),
        "{r:?}"
    );
    // KVM before a16eb25b09c0 never masked either, but has no second LVT:
    // the PMI comes, as the unmasked entry says.
    let r = run(with(&[Fault::KvmLvtpcNeverMasked]), check, params(check));
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    // Xen with its vLAPIC masking (a fix) passes: masked, and no PMI.
    let r = run(xen(&[]), check, params(check));
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(r.summary.contains("masked: no PMI"), "{r:?}");
}

#[test]
fn an_nmi_mode_pmi_is_one_nmi_and_masks_as_fixed_mode_does() {
    let check = KernelCheck::PmiNmi;
    let r = run(Config::intel_skylake(), check, params(check));
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(r.summary.contains("1 NMI, and delivery masked"), "{r:?}");
    let r = run(Config::amd_zen3(), check, params(check));
    assert!(r.summary.contains("left unmasked"), "{r:?}");
    assert_eq!(
        signature(&[Fault::XenLvtpcNeverMasked], check, params(check)),
        Some(SignatureKind::LvtpcNotMasked)
    );
    assert_eq!(
        signature(&[Fault::LostPmi { rate: 1.0 }], check, params(check)),
        Some(SignatureKind::PmiLost)
    );
}

#[test]
fn a_deschedule_keeps_the_status_the_count_and_the_pmi() {
    let check = KernelCheck::PmiDeschedule;
    let p = Params {
        runs: 5,
        ..params(check)
    };
    let r = run(Config::intel_skylake(), check, p.clone());
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(r.summary.starts_with("5 overflows, each followed by 8 yields"), "{r:?}");
    assert_eq!(
        signature(&[Fault::LostPmi { rate: 1.0 }], check, p.clone()),
        Some(SignatureKind::PmiLost)
    );
    // A PMI that reached Xen before the switch is kept in its vLAPIC: the
    // source's loss needs the switch inside the overflow's skid, which the
    // model (like a guest) cannot place after a window.
    let xen = Config {
        faults: Faults(vec![Fault::XenStatusNotSaved { rate: 0.0 }]),
        ..Config::intel_skylake().under("xen").unwrap()
    };
    assert_eq!(run(xen, check, p).verdict, Verdict::Pass);
}

/// The model's hardware, but its counter MSRs behave as AMD guests without a
/// vPMU have them: writes vanish and reads return 0.
struct DeadCounters(ModelHardware, Pmu);

impl pmu_kernel_checks::Hardware for DeadCounters {
    fn cpuid(&mut self, leaf: u32, subleaf: u32) -> [u32; 4] {
        self.0.cpuid(leaf, subleaf)
    }
    fn rdmsr(&mut self, msr: u32) -> Result<u64, pmu_kernel_checks::Fault> {
        if self.is_counter(msr) { Ok(0) } else { self.0.rdmsr(msr) }
    }
    fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), pmu_kernel_checks::Fault> {
        if self.is_counter(msr) {
            Ok(())
        } else {
            self.0.wrmsr(msr, value)
        }
    }
    fn rdpmc(&mut self, _index: u32) -> Result<u64, pmu_kernel_checks::Fault> {
        Ok(0)
    }
    fn lvtpc(&mut self) -> u32 {
        self.0.lvtpc()
    }
    fn set_lvtpc(&mut self, value: u32) {
        self.0.set_lvtpc(value)
    }
    fn pmis(&mut self) -> u64 {
        self.0.pmis()
    }
    fn wait_for_pmi(&mut self, spins: u32) -> u64 {
        self.0.wait_for_pmi(spins)
    }
    fn run_window(&mut self, args: &pmu_kernel_checks::window::WindowArgs) {
        self.0.run_window(args)
    }
    fn nmis(&mut self) -> u64 {
        self.0.nmis()
    }
    fn wait_for_nmi(&mut self, spins: u32) -> u64 {
        self.0.wait_for_nmi(spins)
    }
    fn deschedule(&mut self, rounds: u32) -> pmu_kernel_checks::hardware::Yield {
        self.0.deschedule(rounds)
    }
}

impl DeadCounters {
    fn is_counter(&self, msr: u32) -> bool {
        (0..self.1.gp).any(|i| self.1.counter_msr(Counter::Gp(i)) == msr)
    }
}

#[test]
fn counters_that_neither_hold_nor_count_are_no_pmu() {
    let mut model = ModelHardware::new(Config::amd_zen3());
    let pmu = Pmu::detect(&mut model);
    let mut hw = DeadCounters(model, pmu);
    for &check in KernelCheck::ALL {
        let case = CaseRequest {
            id: format!("k/{}", check.name()),
            check,
            params: params(check),
        };
        let r = checks::run(&mut hw, pmu, &case);
        assert_eq!(r.verdict, Verdict::Unsupported, "{}: {r:?}", check.name());
        assert!(r.reason.unwrap().message.contains("no usable PMU"), "{}", check.name());
    }
    // A counter that holds writes but never counts is a finding, not "no PMU".
    let r = run(
        with(&[Fault::ZeroCounts]),
        KernelCheck::ExactCount,
        params(KernelCheck::ExactCount),
    );
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
}

/// On AMD the exact count carries its documented allowance, and says so.
#[test]
fn amd_exact_counts_state_their_allowance() {
    let amd = run(
        Config::amd_zen3(),
        KernelCheck::ExactCount,
        params(KernelCheck::ExactCount),
    );
    assert_eq!(amd.verdict, Verdict::Pass, "{amd:?}");
    assert!(amd.facts.iter().any(|(name, _)| name == "amd_allowance"), "{amd:?}");
    let intel = run(
        Config::intel_skylake(),
        KernelCheck::ExactCount,
        params(KernelCheck::ExactCount),
    );
    assert!(
        !intel.facts.iter().any(|(name, _)| name == "amd_allowance"),
        "{intel:?}"
    );
    // Beyond the allowance is still a finding on AMD.
    let zero = run(
        Config {
            faults: Faults(vec![Fault::ZeroCounts]),
            ..Config::amd_zen3()
        },
        KernelCheck::ExactCount,
        params(KernelCheck::ExactCount),
    );
    assert_eq!(zero.verdict, Verdict::Fail, "{zero:?}");
}

/// "No PMI without INT" is a negative control: where PMIs never arrive at
/// all it would pass for nothing, so it first needs a PMI with INT set.
#[test]
fn no_pmi_without_int_counts_only_beside_a_pmi_with_int() {
    let no_int = Params {
        int: false,
        ..params(KernelCheck::PmiIffInt)
    };
    let r = run(Config::intel_skylake(), KernelCheck::PmiIffInt, no_int.clone());
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    let every_pmi_lost = with(&[Fault::LostPmi { rate: 1.0 }]);
    let r = run(every_pmi_lost, KernelCheck::PmiIffInt, no_int);
    assert_eq!(r.verdict, Verdict::Error, "{r:?}");
    assert!(
        r.reason
            .unwrap()
            .message
            .starts_with("not exercised: the positive control")
    );
}

/// KVM on AMD drops reserved bits instead of raising #GP, as its source
/// says AMD does; that conforms on AMD, so a faithful KVM AMD guest passes.
#[test]
fn reserved_bits_ignored_on_amd_under_kvm_conform() {
    let kvm_amd = Config::preset("kvm-amd-zen3").unwrap();
    let r = run(
        kvm_amd,
        KernelCheck::ReservedBitsGp,
        params(KernelCheck::ReservedBitsGp),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(r.summary.contains("were ignored"), "{r:?}");
    // Bare AMD, as modelled, raises #GP for each.
    let bare = run(
        Config::amd_zen3(),
        KernelCheck::ReservedBitsGp,
        params(KernelCheck::ReservedBitsGp),
    );
    assert!(bare.summary.contains("raised #GP"), "{bare:?}");
}

/// counter-range-gp never tries an MSR that cannot show a counter's
/// absence: one KVM answers silently, or an advertised counter's own.
#[test]
fn counter_range_gp_skips_what_cannot_show_absence() {
    // AMD without PerfCtrExtCore: 4 legacy counters, and the "fifth event
    // select" 0xc0010004 is PERFCTR0 itself.
    let legacy = Config {
        gp: 4,
        perfmon_v2: false,
        ..Config::amd_zen3()
    };
    // select" 0xc0010004 is PERFCTR0 itself: only 0xc0010008 is tried.
    let r = run(legacy, KernelCheck::CounterRangeGp, params(KernelCheck::CounterRangeGp));
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    assert!(
        r.facts.iter().any(|(k, v)| k == "not_tried" && *v == 1u64.into()),
        "{r:?}"
    );
    // Intel with one counter and no full-width alias: 0x187 and 0xc2 are
    // both KVM's silent MSRs.
    let one = Config {
        gp: 1,
        full_width_writes: false,
        ..Config::intel_skylake()
    };
    let r = run(one, KernelCheck::CounterRangeGp, params(KernelCheck::CounterRangeGp));
    assert_eq!(r.verdict, Verdict::Unsupported, "{r:?}");
    assert!(r.reason.unwrap().message.contains("0x187 (KVM answers it silently)"));
    // With four, counter 4's MSRs (0x18a, 0xc5) are tried, and raise #GP.
    let r = run(
        Config::intel_skylake(),
        KernelCheck::CounterRangeGp,
        params(KernelCheck::CounterRangeGp),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
}

/// On a part erratum SRF7 affects, the probe kernel's exact instruction
/// count relaxes to "at least", as kvm-unit-tests does, and says so; a
/// Skylake is held to the exact count.
#[test]
fn srf7_parts_count_at_least() {
    let overcounting = |signature| Config {
        signature,
        faults: Faults(vec![Fault::Parallels2p31Offset]),
        ..Config::intel_skylake()
    };
    let p = Params {
        event: ArchEvent::Instructions,
        ..params(KernelCheck::ExactCount)
    };
    // Sierra Forest, CPUID.1:EAX 0x000a06f1.
    let srf = run(overcounting(0x000a_06f1), KernelCheck::ExactCount, p.clone());
    assert_eq!(srf.verdict, Verdict::Pass, "{srf:?}");
    assert!(srf.summary.contains("at least, by erratum SRF7"), "{srf:?}");
    let skylake = run(overcounting(0x0005_06e3), KernelCheck::ExactCount, p);
    assert_eq!(skylake.verdict, Verdict::Fail, "{skylake:?}");
}

/// KVM's duplicate PMI needed an emulated instruction to overflow the
/// counter: an overflow on the stopping WRMSR (which exits) raises two, one
/// on a branch in the loop raises one.
#[test]
fn the_duplicate_pmi_strikes_only_an_overflow_on_an_emulated_instruction() {
    let duplicate = with(&[Fault::KvmDuplicatePmi]);
    let on_exit = run(
        duplicate.clone(),
        KernelCheck::PmiOnExit,
        params(KernelCheck::PmiOnExit),
    );
    assert_eq!(on_exit.verdict, Verdict::Fail, "{on_exit:?}");
    let signature = on_exit.signature.unwrap();
    assert_eq!(signature.kind, SignatureKind::PmiExtra);
    assert_eq!(signature.magnitude, Magnitude::new(2, Unit::PmisPerOverflow));
    let on_a_branch = run(duplicate, KernelCheck::PmiIffInt, params(KernelCheck::PmiIffInt));
    assert_eq!(on_a_branch.verdict, Verdict::Pass, "{on_a_branch:?}");
}

/// A hypervisor's refusal is a reason with the hypervisor's own code: KVM on
/// a hybrid host, Xen without a vPMU, Xen's vpmu=ipc refusing a branch event
/// select (and the zero that stops a counter).
#[test]
fn refusals_are_reasons_with_their_hypervisors_codes() {
    let code = |preset: &str, check: KernelCheck| {
        let r = run(Config::preset(preset).unwrap(), check, params(check));
        assert_eq!(r.verdict, Verdict::Unsupported, "{preset} {}: {r:?}", check.name());
        r.reason.unwrap().code
    };
    assert_eq!(
        code("kvm-intel-alder-lake", KernelCheck::PmiIffInt),
        ReasonCode::KvmHybridHost
    );
    assert_eq!(
        code("xen-intel-skylake-vpmu-off", KernelCheck::PmiIffInt),
        ReasonCode::XenNoVpmu
    );
    assert_eq!(
        code("xen-intel-skylake-vpmu-ipc", KernelCheck::PmiIffInt),
        ReasonCode::XenEventFilter
    );
    // The same filter on bare metal would be a fault, not a refusal.
    let filtered_bare = Config {
        xen_ipc_only: true,
        ..Config::intel_skylake()
    };
    let r = run(filtered_bare, KernelCheck::PmiIffInt, params(KernelCheck::PmiIffInt));
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert_eq!(r.signature.unwrap().kind, SignatureKind::UnexpectedGp);
}

/// The checks kvm-unit-tests has and the probe kernel lacked, each shown to
/// fail on the fault it is there for: a counter that ignores writes while it
/// runs, RDPMC past the counters answering, a counter wider than CPUID says.
#[test]
fn the_counter_checks_fail_where_their_property_breaks() {
    // Xen's shadow status: a running counter written near its top wraps
    // without setting the status bit the guest reads.
    let shadow = run(
        with(&[Fault::XenStatusShadow]),
        KernelCheck::WriteRunning,
        params(KernelCheck::WriteRunning),
    );
    assert_eq!(shadow.signature.map(|s| s.kind), Some(SignatureKind::StatusNotSet));
    // Every counter at once sees the uncounted stopping WRMSR as -1 per VM exit.
    let undercount = run(
        with(&[Fault::KvmVmexitUndercount]),
        KernelCheck::AllCounters,
        params(KernelCheck::AllCounters),
    );
    assert_eq!(
        undercount.signature.map(|s| s.magnitude),
        Some(Magnitude::new(-1, Unit::EventsPerVmExit))
    );
    // A CPUID that claims fewer counters than the model has: RDPMC of the
    // first unadvertised index answers, and its MSRs hold the value.
    let mut hw = ModelHardware::new(Config::intel_skylake());
    let mut pmu = Pmu::detect(&mut hw);
    pmu.gp -= 1;
    let r = checks::run(
        &mut hw,
        pmu,
        &CaseRequest {
            id: "k/rdpmc".into(),
            check: KernelCheck::Rdpmc,
            params: params(KernelCheck::Rdpmc),
        },
    );
    let signature = r.signature.expect("RDPMC past CPUID's counters must fail");
    assert_eq!(
        (signature.kind, signature.magnitude),
        (SignatureKind::NoGp, Magnitude::new(3, Unit::RdpmcIndex))
    );
    // A CPUID that claims narrower counters than the model has: the width fails.
    let mut hw = ModelHardware::new(Config::intel_skylake());
    let mut pmu = Pmu::detect(&mut hw);
    pmu.width = 40;
    let r = checks::run(
        &mut hw,
        pmu,
        &CaseRequest {
            id: "k/width".into(),
            check: KernelCheck::CounterWidth,
            params: params(KernelCheck::CounterWidth),
        },
    );
    // The legacy write's sign extension fills 48 bits, not 40.
    assert_eq!(
        r.signature.as_ref().map(|s| s.kind),
        Some(SignatureKind::WrongValue),
        "{r:?}"
    );
}
