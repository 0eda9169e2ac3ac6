//! The kernel checks: one file per check, all written against [`Hardware`].
//!
//! Every check starts from a quiet PMU (counters stopped, status clear, the
//! LVT entry unmasked on [`PMI_VECTOR`]) and leaves it that way, so checks
//! can run in any order. An unexpected #GP while setting up is itself a
//! finding (`unexpected-gp`), except where a check says the access is
//! optional, which makes it `unsupported` with the reason.

mod all_counters;
mod counter_range_gp;
mod counter_width;
mod exact_count;
mod freeze_on_pmi;
mod lvtpc_mask;
mod overflow_at_zero;
mod overflow_status;
mod ovf_ack;
mod ovf_ctrl_reads_zero;
mod pmi_deschedule;
mod pmi_follows_lvtpc;
mod pmi_iff_int;
mod pmi_nmi;
mod pmi_on_exit;
mod pmi_rearm;
mod rdpmc;
mod reserved_bits_gp;
mod status_set;
mod write_running;

use alloc::format;
use alloc::string::String;

use crate::hardware::{Fault, Hardware, PMI_VECTOR};
use crate::plan::CaseRequest;
use crate::pmu::{Counter, Pmu};
use crate::record::{Magnitude, Reason, ReasonCode, Record, SignatureKind, Unit};
use crate::window::{LISTING, WindowArgs};

macro_rules! kernel_checks {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal, $module:ident;)*) => {
        /// The checks the probe kernel knows, by the name cases give them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum KernelCheck {
            $($(#[doc = $doc])* $variant,)*
        }

        impl KernelCheck {
            pub const ALL: &'static [KernelCheck] = &[$(KernelCheck::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(KernelCheck::$variant => $name,)*
                }
            }

            /// What the check requires, in the words of its doc comment.
            pub fn about(self) -> &'static str {
                match self {
                    $(KernelCheck::$variant => concat!($($doc),*),)*
                }
            }

            fn run(self, c: &mut Context<'_>) -> Result<Record, Stop> {
                match self {
                    $(KernelCheck::$variant => $module::run(c),)*
                }
            }
        }
    };
}

kernel_checks! {
    /// An architectural event over the WRMSR-bracketed loop counts exactly the listing.
    ExactCount => "exact-count", exact_count;
    /// Preset 1 − C: after C events the counter reads exactly 1 and its
    /// GLOBAL_STATUS bit is set, with INT or without (kvm-unit-tests' shape).
    OverflowStatus => "overflow-status", overflow_status;
    /// Preset −B on branches: the counter wraps on the last branch, reads 0
    /// when the PMI is handled, and must still read 0 after it (Xen writes 1).
    OverflowAtZero => "overflow-at-zero", overflow_at_zero;
    /// Writing one counter's bit to OVF_CTRL clears exactly that bit.
    OvfAck => "ovf-ack", ovf_ack;
    /// An overflow raises a PMI if and only if INT is set, exactly once.
    PmiIffInt => "pmi-iff-int", pmi_iff_int;
    /// An overflow on the stopping WRMSR, which a hypervisor emulates,
    /// raises exactly one PMI (KVM raised two before 73554b29bd70).
    PmiOnExit => "pmi-on-exit", pmi_on_exit;
    /// After a PMI the LVT entry is masked on Intel, and not on AMD.
    LvtpcMask => "lvtpc-mask", lvtpc_mask;
    /// No second PMI before acknowledgement and unmask (Intel); after them, a
    /// new overflow raises exactly one new PMI.
    PmiRearm => "pmi-rearm", pmi_rearm;
    /// After an acknowledged PMI, before the LVT entry is rewritten, a second
    /// overflow raises a PMI iff the entry reads unmasked (Xen's physical
    /// LVTPC holds it back while the guest's reads unmasked).
    PmiFollowsLvtpc => "pmi-follows-lvtpc", pmi_follows_lvtpc;
    /// With the LVT entry in NMI mode (Linux's and rr's), an overflow raises
    /// exactly one NMI, masking the entry on Intel and not on AMD.
    PmiNmi => "pmi-nmi", pmi_nmi;
    /// An overflow's status bit, count and PMI survive the vCPU being
    /// switched out before the guest takes the PMI.
    PmiDeschedule => "pmi-deschedule", pmi_deschedule;
    /// IA32_PERF_GLOBAL_OVF_CTRL reads as 0.
    OvfCtrlReadsZero => "ovf-ctrl-reads-zero", ovf_ctrl_reads_zero;
    /// Writes of reserved bits raise #GP.
    ReservedBitsGp => "reserved-bits-gp", reserved_bits_gp;
    /// STATUS_SET sets status bits and the clear MSR clears them (Intel v4+, AMD PerfMonV2).
    StatusSet => "status-set", status_set;
    /// With DEBUGCTL.FREEZE_PERFMON_ON_PMI, a PMI freezes the counters
    /// (v2/v3: clears GLOBAL_CTRL; v4+: sets CTR_Frz).
    FreezeOnPmi => "freeze-on-pmi", freeze_on_pmi;
    /// A counter beyond CPUID's count does not exist: its MSRs raise #GP.
    CounterRangeGp => "counter-range-gp", counter_range_gp;
    /// RDPMC reads every counter as its MSR holds it; a bad index raises #GP.
    Rdpmc => "rdpmc", rdpmc;
    /// A counter holds exactly CPUID's width: legacy writes sign-extend bit
    /// 31, full-width writes above the width raise #GP.
    CounterWidth => "counter-width", counter_width;
    /// Every counter at once: each GP counter and fixed counter 0 count the
    /// window's instructions exactly; fixed counters 1 and 2 count.
    AllCounters => "all-counters", all_counters;
    /// A counter written while it counts counts on from the value written.
    WriteRunning => "write-running", write_running;
}

impl KernelCheck {
    pub fn from_name(name: &str) -> Option<KernelCheck> {
        KernelCheck::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// Spins a PMI wait gets: about as long as kvm-unit-tests waits.
pub const PMI_WAIT_SPINS: u32 = 100_000;

/// A check's early end, already phrased as its record.
/// Boxed: a record is large, and every check's `Result` carries one.
pub struct Stop(pub alloc::boxed::Box<Record>);

impl From<Record> for Stop {
    fn from(record: Record) -> Stop {
        Stop(alloc::boxed::Box::new(record))
    }
}

/// What a running check has to hand.
pub struct Context<'a> {
    pub hw: &'a mut dyn Hardware,
    pub pmu: Pmu,
    pub case: &'a CaseRequest,
}

impl Context<'_> {
    pub fn id(&self) -> &str {
        &self.case.id
    }

    pub fn unsupported(&self, code: ReasonCode, reason: impl Into<String>) -> Stop {
        Stop::from(Record::unsupported(self.id(), code, reason))
    }

    /// A check that counts only instructions, sent another event by the
    /// host: a plan it cannot follow, an internal error that says `why`.
    pub fn require_instructions(&self, why: &str) -> Result<(), Stop> {
        if self.case.params.event == crate::pmu::ArchEvent::Instructions {
            return Ok(());
        }
        Err(Stop::from(Record::error(self.id(), ReasonCode::Internal, why)))
    }

    /// The case cannot run here, for `why`.
    pub fn refused(&self, why: Reason) -> Stop {
        self.unsupported(why.code, why.message)
    }

    /// An access to `msr` the architecture allows raised an exception: sized
    /// by the MSR, so a diagnosis can name which.
    pub fn msr_fault(&self, msr: u32, what: &str, fault: Fault) -> Stop {
        Stop::from(Record::fail(
            self.id(),
            SignatureKind::UnexpectedGp,
            Magnitude::new(msr, Unit::Msr),
            format!("{what} raised vector {}", fault.vector),
            format!("{what}: unexpected exception"),
        ))
    }

    /// An access the architecture allows raised an exception.
    pub fn fault(&self, what: &str, fault: Fault) -> Stop {
        Stop::from(Record::fail(
            self.id(),
            SignatureKind::UnexpectedGp,
            Magnitude::new(fault.vector, Unit::Vector),
            format!("{what} raised vector {}", fault.vector),
            format!("{what}: unexpected exception"),
        ))
    }

    pub fn rdmsr(&mut self, msr: u32) -> Result<u64, Stop> {
        self.hw
            .rdmsr(msr)
            .map_err(|f| self.msr_fault(msr, &format!("RDMSR {msr:#x}"), f))
    }

    /// A write the architecture allows; #GP is a failure, except where it
    /// is Xen's `vpmu=ipc` or `vpmu=arch` refusing an event select off its
    /// list (zero included), which is a refusal. Which filter is on cannot be
    /// seen from the guest, so any select `vpmu=ipc` refuses counts.
    pub fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), Stop> {
        let pmu = self.pmu;
        let filtered = pmu.hypervisor == "xen"
            && (0..pmu.gp).any(|i| pmu.evtsel(i) == msr)
            && crate::refusal::xen_filter_refuses(crate::refusal::XEN_FEATURE_IPC_ONLY, value);
        self.hw.wrmsr(msr, value).map_err(|f| {
            if filtered {
                self.refused(crate::refusal::xen_filter(value))
            } else {
                self.msr_fault(msr, &format!("WRMSR {msr:#x} = {value:#x}"), f)
            }
        })
    }

    /// Every counter stopped: GLOBAL_CTRL, each event select, the fixed control.
    fn stop_all(&mut self) -> Result<(), Stop> {
        let pmu = self.pmu;
        if let Some(g) = pmu.globals {
            self.wrmsr(g.ctrl, 0)?;
        }
        for i in 0..pmu.gp {
            self.wrmsr(pmu.evtsel(i), 0)?;
        }
        if pmu.fixed > 0 {
            self.wrmsr(crate::pmu::intel::FIXED_CTR_CTRL, 0)?;
        }
        Ok(())
    }

    /// Stops and clears everything, drains a latched PMI, unmasks the LVT.
    pub fn quiesce(&mut self) -> Result<(), Stop> {
        let pmu = self.pmu;
        self.stop_all()?;
        for i in 0..pmu.gp {
            self.wrmsr(pmu.counter_msr(Counter::Gp(i)), 0)?;
        }
        for i in 0..pmu.fixed {
            self.wrmsr(pmu.counter_msr(Counter::Fixed(i)), 0)?;
        }
        self.clear_status()?;
        self.hw.set_lvtpc(u32::from(PMI_VECTOR));
        self.hw.wait_for_pmi(0);
        self.hw.set_lvtpc(u32::from(PMI_VECTOR));
        Ok(())
    }

    pub fn status(&mut self) -> Result<u64, Stop> {
        match self.pmu.globals {
            Some(g) => self.rdmsr(g.status),
            None => Ok(0),
        }
    }

    /// Acknowledges `bits` through the status-clear MSR.
    pub fn acknowledge(&mut self, bits: u64) -> Result<(), Stop> {
        match self.pmu.globals {
            Some(g) => self.wrmsr(g.status_clear, bits),
            None => Ok(()),
        }
    }

    pub fn clear_status(&mut self) -> Result<(), Stop> {
        let status = self.status()?;
        if status != 0 { self.acknowledge(status) } else { Ok(()) }
    }

    /// The event select encoding for `event` on `counter`.
    fn encoding(&self, counter: Counter, event: crate::pmu::ArchEvent) -> Result<u64, Stop> {
        match counter {
            // Fixed counter 0 is INST_RETIRED.ANY; the others are not loop events.
            Counter::Fixed(0) if event == crate::pmu::ArchEvent::Instructions => Ok(0),
            Counter::Fixed(i) => Err(self.unsupported(
                ReasonCode::CounterNotAdvertised,
                format!("fixed counter {i} does not count {}", crate::plan::event_name(event)),
            )),
            Counter::Gp(_) => self.pmu.encoding(event).map_err(|why| self.refused(why)),
        }
    }

    /// Programs `counters` (with INT as given and their values preset),
    /// runs one window over them, and returns nothing: read them after.
    pub fn window(&mut self, counters: &[(Counter, bool, u64)], iterations: u64) -> Result<(), Stop> {
        self.window_of(self.case.params.event, counters, iterations, false)
    }

    /// [`Context::window`] where every fixed counter counts its own event
    /// (fixed 1 and 2: core and reference cycles), for checks that run every
    /// counter at once.
    pub fn window_all(&mut self, counters: &[(Counter, bool, u64)], iterations: u64) -> Result<(), Stop> {
        self.window_of(self.case.params.event, counters, iterations, true)
    }

    /// Runs the counted window with the bracket `msr` = `enable` … `disable`,
    /// leaving the counters as they are: for a check that programs them itself.
    pub fn bracketed(&mut self, msr: u32, enable: u64, disable: u64, iterations: u64) -> Result<(), Stop> {
        self.clear_status()?;
        let args = WindowArgs {
            msr,
            _pad: 0,
            enable,
            disable,
            iterations,
        };
        self.hw.run_window(&args);
        Ok(())
    }

    /// [`Context::window`] for `event` rather than the case's.
    fn window_of(
        &mut self,
        event: crate::pmu::ArchEvent,
        counters: &[(Counter, bool, u64)],
        iterations: u64,
        fixed_own_events: bool,
    ) -> Result<(), Stop> {
        let pmu = self.pmu;
        self.stop_all()?;
        let mut start = 0;
        let mut bracket = None;
        let mut fixed_ctrl = 0u64;
        for &(counter, int, preset) in counters {
            if !pmu.has(counter) {
                return Err(self.unsupported(
                    ReasonCode::CounterNotAdvertised,
                    format!("CPUID advertises no {}", crate::plan::counter_name(counter)),
                ));
            }
            let encoding = match counter {
                Counter::Fixed(_) if fixed_own_events => 0,
                _ => self.encoding(counter, event)?,
            };
            match counter {
                Counter::Gp(i) => {
                    let en = if pmu.globals.is_some() {
                        crate::pmu::evtsel::EN
                    } else {
                        0
                    };
                    let int_bit = if int { crate::pmu::evtsel::INT } else { 0 };
                    self.wrmsr(pmu.evtsel(i), encoding | crate::pmu::evtsel::OS | int_bit | en)?;
                }
                Counter::Fixed(i) => {
                    fixed_ctrl |= (0b0001 | if int { 0b1000 } else { 0 }) << (4 * u32::from(i));
                    self.wrmsr(crate::pmu::intel::FIXED_CTR_CTRL, fixed_ctrl)?;
                }
            }
            let (msr, on, off) = pmu
                .start_stop(self.hw, counter)
                .map_err(|f| self.fault("reading the counter's event select", f))?;
            start |= on;
            bracket = Some((msr, off));
            self.wrmsr(pmu.counter_msr(counter), preset)?;
        }
        let (msr, stop) = bracket.ok_or_else(|| {
            Stop::from(Record::error(
                self.id(),
                ReasonCode::Internal,
                "a window with no counter",
            ))
        })?;
        if pmu.globals.is_none() && counters.len() > 1 {
            return Err(self.unsupported(
                ReasonCode::TooFewCounters,
                "without global controls, one window drives one counter",
            ));
        }
        // A trial of both bracket values, so a #GP cannot happen inside the window.
        self.wrmsr(msr, stop)?;
        self.bracketed(msr, start, stop, iterations)
    }

    /// One window of the case's passes with `counter` preset to `preset` and
    /// INT set, then an interrupt window: the PMIs taken in it.
    pub fn overflow_pmis(&mut self, counter: Counter, preset: u64) -> Result<u64, Stop> {
        let before = self.hw.pmis();
        self.window(&[(counter, true, preset)], self.case.params.iterations)?;
        Ok(self.hw.wait_for_pmi(PMI_WAIT_SPINS) - before)
    }

    /// A counter's value, masked to its width.
    pub fn read(&mut self, counter: Counter) -> Result<u64, Stop> {
        let width = self.pmu.counter_width(counter);
        let raw = self.rdmsr(self.pmu.counter_msr(counter))?;
        Ok(if width >= 64 { raw } else { raw & ((1 << width) - 1) })
    }

    /// The events one window of `iterations` retires on `counter`, measured
    /// from zero, as the base for overflow presets.
    pub fn calibrate(&mut self, counter: Counter, iterations: u64) -> Result<u64, Stop> {
        self.window(&[(counter, false, 0)], iterations)?;
        let events = self.read(counter)?;
        self.quiesce()?;
        if events < 2 {
            return Err(Stop::from(Record::fail(
                self.id(),
                SignatureKind::Undercount,
                Magnitude::new(0, Unit::PercentCounted),
                format!("counted {events} in a window of {iterations} passes"),
                "the counter does not count",
            )));
        }
        Ok(events)
    }

    /// AMD guests without a vPMU (KVM with the PMU off, QEMU's TCG) still
    /// accept writes to the counter MSRs, read back 0 and never count:
    /// Linux's `check_hw_exists` tests the same way before it trusts a PMU.
    /// A counter that neither holds a value nor counts is no PMU at all, so
    /// every check is `unsupported` rather than failing on it. A counter that
    /// does one and not the other is left to the checks, which say what is wrong.
    fn require_a_live_counter(&mut self) -> Result<(), Stop> {
        const MARK: u64 = 0xabcd;
        let counter = Counter::Gp(0);
        let msr = self.pmu.counter_msr(counter);
        self.wrmsr(msr, MARK)?;
        let read_back = self.read(counter)?;
        self.wrmsr(msr, 0)?;
        if read_back == MARK {
            return Ok(());
        }
        self.window_of(crate::pmu::ArchEvent::Instructions, &[(counter, false, 0)], 100, false)?;
        let counted = self.read(counter)?;
        self.quiesce()?;
        if counted == 0 {
            return Err(self.unsupported(
                ReasonCode::NoPmu,
                format!(
                    "no usable PMU: {} reads {read_back:#x} after a write of {MARK:#x} and counts no instructions \
                 (Linux's check_hw_exists rejects such a PMU too)",
                    crate::plan::counter_name(counter)
                ),
            ));
        }
        Ok(())
    }

    /// What the listing says the window retires for the case's event.
    pub fn listed(&self, iterations: u64) -> u64 {
        let total = LISTING.total(iterations);
        match self.case.params.event {
            crate::pmu::ArchEvent::Instructions => total.instructions,
            crate::pmu::ArchEvent::Branches => total.branches,
        }
    }
}

/// Runs one requested case.
pub fn run(hw: &mut dyn Hardware, pmu: Pmu, case: &CaseRequest) -> Record {
    if let Some(why) = pmu.missing() {
        return Record::unsupported(&case.id, why.code, why.message);
    }
    let mut context = Context { hw, pmu, case };
    let result = context
        .quiesce()
        .and_then(|()| context.require_a_live_counter())
        .and_then(|()| case.check.run(&mut context));
    let record = result.unwrap_or_else(|stop| *stop.0);
    // Leave the PMU quiet for the next case, whatever this one did.
    let _ = context.quiesce();
    record
}

/// The failure for `got` PMIs (or NMIs) where `expected` were due: lost
/// when fewer arrived, extra when more; sized by `got` in `unit`.
pub fn pmi_count_failure(
    c: &Context<'_>,
    got: u64,
    expected: u64,
    unit: Unit,
    detail: impl Into<String>,
    summary: impl Into<String>,
) -> Record {
    let kind = if got < expected {
        SignatureKind::PmiLost
    } else {
        SignatureKind::PmiExtra
    };
    Record::fail(c.id(), kind, Magnitude::new(got, unit), detail, summary)
}

/// The verdict on the LVT entry `lvt` after a delivered PMI: delivery masks
/// it on Intel (SDM Vol. 3A 11.5.1) and must not on AMD; `delivered` says
/// how it came (`masked by the PMI`, `1 NMI, and delivery masked…`) in the
/// passing words. Carries the `masked` fact.
pub fn lvt_mask_verdict(c: &Context<'_>, lvt: u32, passed_masked: &str, passed_unmasked: &str) -> Record {
    use crate::hardware::LVT_MASK;
    use crate::pmu::Vendor;
    let masked = lvt & LVT_MASK != 0;
    let record = match (c.pmu.vendor, masked) {
        (Vendor::Amd, true) => Record::fail(
            c.id(),
            SignatureKind::LvtpcMasked,
            Magnitude::new(lvt, Unit::Register),
            "AMD must not mask the LVT on a PMI",
            format!("LVTPC {lvt:#x}"),
        ),
        (Vendor::Amd, false) => Record::pass(c.id(), format!("{passed_unmasked} (LVTPC {lvt:#x})")),
        (_, false) => Record::fail(
            c.id(),
            SignatureKind::LvtpcNotMasked,
            Magnitude::new(lvt, Unit::Register),
            "the mask bit stayed clear after the PMI",
            format!("LVTPC {lvt:#x}"),
        ),
        (_, true) => Record::pass(c.id(), format!("{passed_masked} (LVTPC {lvt:#x})")),
    };
    record.fact("masked", masked)
}

/// `1 PMI`, `2 PMIs`.
pub fn pmis(n: u64) -> String {
    if n == 1 {
        String::from("1 PMI")
    } else {
        format!("{n} PMIs")
    }
}

/// `+3`, `0`, `-2`.
pub fn signed(d: i128) -> String {
    if d > 0 { format!("+{d}") } else { format!("{d}") }
}
