//! The PMU: counters, their MSRs, overflow, status, the LVT entry and PMIs.
//!
//! Semantics follow the Intel SDM (Vol. 3B ch. 20, Vol. 4) for architectural
//! PMU versions 2 to 5 and AMD's APM (Vol. 2 §13.2) for the core counters
//! and PerfMonV2; the faults in [`crate::fault`] change them where a
//! hypervisor does. Two clocks matter: a PMI is *raised* when an overflow
//! with INT set happens, *fires* a skid of instructions later (when the
//! hypervisor handles the hardware interrupt and its faults act), and is
//! *delivered* when the guest can take it.

use pmu_kernel_checks::Fault as Gp;
use pmu_kernel_checks::pmu::{amd, evtsel, intel};

use crate::config::{Config, Vendor};
use crate::fault::{Fault, Opportunities};
use crate::program::Instr;
use crate::random::Chance;

const GP: Result<u64, Gp> = Err(Gp::GP);

/// LVT mask bit.
pub const LVT_MASK: u32 = 1 << 16;
/// LVT bits 10:8, the delivery mode, and its NMI value (SDM Vol. 3A 11.5.1).
pub const LVT_DELIVERY_MODE: u32 = 0b111 << 8;
pub const LVT_NMI: u32 = 0b100 << 8;

/// Bits of an event select that are reserved: a write with any set raises #GP.
const INTEL_EVTSEL_RESERVED: u64 = !0u64 << 34;
const AMD_EVTSEL_RESERVED: u64 = (!0u64 << 42) | (0xf << 36);
/// IN_TXCP: count in transactions, checkpointed (Intel TSX).
const IN_TXCP: u64 = 1 << 33;

/// What an event select counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Instructions,
    Branches,
    ConditionalBranches,
    Cycles,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Gp(usize),
    Fixed(usize),
}

#[derive(Clone, Debug)]
pub struct Pmu {
    pub config: Config,
    chance: Chance,
    gp_sel: Vec<u64>,
    gp: Vec<u64>,
    fixed: Vec<u64>,
    fixed_ctrl: u64,
    global_ctrl: u64,
    /// Overflow status as the hardware has it.
    status: u64,
    /// Overflow status as the guest reads it (a shadow under xen-status-shadow).
    guest_status: u64,
    debugctl: u64,
    lvtpc: u32,
    /// The host's own LVTPC, under a hypervisor that has one between the
    /// counter and the guest (`Config::physical_lvtpc`): masked by the CPU
    /// on each PMI it delivers to the hypervisor, rewritten from the guest's
    /// mask bit when the guest writes its LVTPC.
    physical_masked: bool,
    /// Instructions left before a raised PMI fires.
    pending: Option<u32>,
    /// Whether the raised PMI's overflow came from an instruction that
    /// exits to the hypervisor, which emulates it and counts it in software.
    pending_emulated: bool,
    /// Whether the instruction retiring now exits to the hypervisor.
    retiring_emulated: bool,
    /// PMIs fired and waiting in the LAPIC for the guest to take them.
    latched: u32,
    /// PMIs the guest has taken.
    pub delivered: u64,
    /// PMIs the guest has taken as NMIs (the LVT entry in NMI mode), which
    /// no cleared IF holds back.
    pub nmis: u64,
    /// kvm-pinned-starvation: events each GP counter may still count this window.
    stop_after: Vec<Option<u64>>,
    /// Counters the quirk wrote 1 into under the intercept-reads fix: the
    /// guest reads each one less, until it writes the counter.
    quirk_bias: u64,
    /// Under the hold-PMI fix: a PMI was delivered and the guest has not yet
    /// acknowledged it through GLOBAL_OVF_CTRL, so the next is held.
    held: bool,
    /// Bumped whenever what counts, and how, may have changed (an MSR write,
    /// a freeze, a starved counter's countdown): see [`Pmu::controls_generation`].
    generation: u64,
    pub opportunities: Opportunities,
}

impl Pmu {
    pub fn new(config: Config) -> Pmu {
        let gp = usize::from(config.gp);
        let fixed = usize::from(config.fixed);
        let mut pmu = Pmu {
            chance: Chance::new(config.seed),
            gp_sel: vec![0; gp],
            gp: vec![0; gp],
            fixed: vec![0; fixed],
            fixed_ctrl: 0,
            global_ctrl: 0,
            status: 0,
            guest_status: 0,
            debugctl: 0,
            lvtpc: LVT_MASK,
            physical_masked: false,
            pending: None,
            pending_emulated: false,
            retiring_emulated: false,
            latched: 0,
            delivered: 0,
            nmis: 0,
            stop_after: vec![None; gp],
            quirk_bias: 0,
            held: false,
            generation: 0,
            opportunities: Opportunities::default(),
            config,
        };
        // At reset (version 2 and later) GLOBAL_CTRL enables every GP counter.
        if pmu.has_globals() {
            pmu.global_ctrl = pmu.gp_mask();
        }
        pmu
    }

    fn fault(&self, id: &str) -> bool {
        self.config.faults.has(id)
    }

    pub fn has_globals(&self) -> bool {
        match self.config.vendor {
            Vendor::Intel => self.config.version >= 2,
            Vendor::Amd => self.config.perfmon_v2,
        }
    }

    fn gp_mask(&self) -> u64 {
        (1u64 << self.config.gp) - 1
    }

    fn fixed_mask(&self) -> u64 {
        ((1u64 << self.config.fixed) - 1) << 32
    }

    fn width_mask(&self, c: Counter) -> u64 {
        let w = match c {
            Counter::Gp(_) => self.config.width,
            Counter::Fixed(_) => self.config.fixed_width,
        };
        if w >= 64 { u64::MAX } else { (1 << w) - 1 }
    }

    fn bit(c: Counter) -> u64 {
        match c {
            Counter::Gp(i) => 1 << i,
            Counter::Fixed(i) => 1 << (32 + i),
        }
    }

    pub fn counters(&self) -> impl Iterator<Item = Counter> + use<> {
        let (gp, fixed) = (self.gp.len(), self.fixed.len());
        (0..gp).map(Counter::Gp).chain((0..fixed).map(Counter::Fixed))
    }

    pub fn value(&self, c: Counter) -> u64 {
        match c {
            Counter::Gp(i) => self.gp[i],
            Counter::Fixed(i) => self.fixed[i],
        }
    }

    /// What the guest reads from counter `c` (RDPMC, RDMSR): its value,
    /// less the quirk's 1 where Xen intercepts the reads
    /// ([`crate::quirk_fix::PmcQuirkFix::InterceptReads`]).
    pub fn guest_value(&self, c: Counter) -> u64 {
        match self.quirk_bias & Pmu::bit(c) {
            0 => self.value(c),
            _ => self.value(c).wrapping_sub(1) & self.width_mask(c),
        }
    }

    fn value_mut(&mut self, c: Counter) -> &mut u64 {
        match c {
            Counter::Gp(i) => &mut self.gp[i],
            Counter::Fixed(i) => &mut self.fixed[i],
        }
    }

    fn frozen(&self) -> bool {
        self.status & intel::STATUS_CTR_FRZ != 0
    }

    /// Whether `c` is counting at all right now (mode and event aside).
    fn enabled(&self, c: Counter) -> bool {
        let global = !self.has_globals() || self.global_ctrl & Pmu::bit(c) != 0;
        let local = match c {
            Counter::Gp(i) => self.gp_sel[i] & evtsel::EN != 0,
            Counter::Fixed(i) => (self.fixed_ctrl >> (4 * i)) & 0b11 != 0,
        };
        global && local && !self.frozen()
    }

    fn event(&self, c: Counter) -> Option<Event> {
        match c {
            Counter::Fixed(0) => Some(Event::Instructions),
            Counter::Fixed(_) => Some(Event::Cycles),
            Counter::Gp(i) => {
                let sel = self.gp_sel[i];
                match self.config.vendor {
                    Vendor::Intel => match (sel & 0xff, (sel >> 8) & 0xff) {
                        (0xc0, 0x00) => Some(Event::Instructions),
                        (0xc4, 0x00) => Some(Event::Branches),
                        // Skylake's CONDITIONAL, Ice Lake's COND, the Atoms' JCC.
                        (0xc4, 0x01 | 0x11 | 0x7e) => Some(Event::ConditionalBranches),
                        (0x3c, _) => Some(Event::Cycles),
                        _ => None,
                    },
                    Vendor::Amd => match (sel & 0xff) | ((sel >> 24) & 0xf00) {
                        0xc0 => Some(Event::Instructions),
                        0xc2 => Some(Event::Branches),
                        0xd1 => Some(Event::ConditionalBranches),
                        0x76 => Some(Event::Cycles),
                        _ => None,
                    },
                }
            }
        }
    }

    fn counts_mode(&self, c: Counter, kernel: bool) -> bool {
        match c {
            Counter::Gp(i) => self.gp_sel[i] & if kernel { evtsel::OS } else { evtsel::USR } != 0,
            Counter::Fixed(i) => (self.fixed_ctrl >> (4 * i)) & if kernel { 0b01 } else { 0b10 } != 0,
        }
    }

    fn int(&self, c: Counter) -> bool {
        match c {
            Counter::Gp(i) => self.gp_sel[i] & evtsel::INT != 0,
            Counter::Fixed(i) => (self.fixed_ctrl >> (4 * i)) & 0b1000 != 0,
        }
    }

    /// What one instruction adds to `c`, before any fault that strikes by chance.
    fn increment(&self, c: Counter, i: &Instr) -> u64 {
        if !self.enabled(c) || !self.counts_mode(c, i.kernel) || self.fault("zero-counts") {
            return 0;
        }
        if let Counter::Gp(n) = c {
            if self.fault("kvm-in-txcp-drop") && self.gp_sel[n] & IN_TXCP != 0 {
                return 0;
            }
            if self.stop_after[n] == Some(0) {
                return 0;
            }
        }
        match self.event(c) {
            Some(Event::Instructions) => {
                u64::from(!(i.vm_exit && (self.fault("xen-vmexit-undercount") || self.fault("kvm-vmexit-undercount"))))
            }
            Some(Event::Branches) => u64::from(i.branch),
            Some(Event::ConditionalBranches) => u64::from(i.cond_branch),
            Some(Event::Cycles) => 1,
            None => 0,
        }
    }

    /// Changes whenever [`Pmu::block_increments`] may answer differently for
    /// the same block, so a caller may keep its answer until then.
    pub fn controls_generation(&self) -> u64 {
        self.generation
    }

    /// What one pass of `block` adds to each counter, if nothing in it can
    /// strike by chance or wrap a counter; `None` when it must be stepped.
    pub fn block_increments(&self, block: &[Instr]) -> Option<Vec<(Counter, u64)>> {
        if self.stop_after.iter().any(|s| s.is_some_and(|n| n > 0)) {
            return None;
        }
        let vmware = self.fault("vmware-cpuid-branch-drop");
        let mut out = Vec::new();
        for c in self.counters() {
            let mut sum = 0;
            for i in block {
                let n = self.increment(c, i);
                if n > 0 && vmware && i.between_cpuids && self.event(c) == Some(Event::ConditionalBranches) {
                    return None;
                }
                sum += n;
            }
            if sum > 0 {
                out.push((c, sum));
            }
        }
        Some(out)
    }

    /// How many passes of a block of `len` instructions with these
    /// increments can run with no counter wrapping and no raised PMI firing.
    pub fn passes_without_event(&self, increments: &[(Counter, u64)], len: u64) -> u64 {
        let wrap = increments
            .iter()
            .map(|&(c, inc)| (self.width_mask(c) - self.value(c)) / inc)
            .min()
            .unwrap_or(u64::MAX);
        // A raised PMI fires after its `k` instructions: stop a pass short of that.
        let fire = self.pending.map_or(u64::MAX, |k| u64::from(k) / len.max(1));
        wrap.min(fire)
    }

    /// Applies `passes` passes of a block of `len` instructions in one step
    /// (see [`Pmu::block_increments`]).
    pub fn apply_passes(&mut self, increments: &[(Counter, u64)], passes: u64, len: u64) {
        for &(c, inc) in increments {
            *self.value_mut(c) += inc * passes;
        }
        if let Some(k) = self.pending {
            self.pending = Some(k - (passes * len) as u32);
        }
    }

    /// Retires one instruction.
    pub fn retire(&mut self, i: &Instr) {
        self.retiring_emulated = i.vm_exit;
        for c in self.counters() {
            let mut n = self.increment(c, i);
            if n == 0 {
                continue;
            }
            if i.between_cpuids && self.event(c) == Some(Event::ConditionalBranches) {
                self.opportunities.cpuid_branches += 1;
                let rate = self.config.faults.rate("vmware-cpuid-branch-drop");
                if self.chance.happens(rate) {
                    continue;
                }
            }
            if let Counter::Gp(g) = c
                && let Some(left) = self.stop_after[g]
            {
                self.stop_after[g] = Some(left.saturating_sub(1));
                self.generation += 1;
                n = n.min(left);
            }
            self.add(c, n);
        }
        self.retiring_emulated = false;
        self.tick();
    }

    /// Adds the user-mode overcount of an interrupt or fault that returns to
    /// user mode: its iret's tail retires as one instruction and one branch.
    pub fn return_to_user(&mut self) {
        let iret = Instr {
            branch: true,
            ..Instr::USER
        };
        for c in self.counters() {
            let n = match self.event(c) {
                Some(Event::Instructions | Event::Branches) => self.increment(c, &iret),
                _ => 0,
            };
            if n > 0 {
                self.add(c, n);
            }
        }
    }

    fn add(&mut self, c: Counter, n: u64) {
        let mask = self.width_mask(c);
        let value = self.value(c) + n;
        *self.value_mut(c) = value & mask;
        if value > mask {
            self.overflow(c);
        }
    }

    /// A counter wrapped: its status bit is set whether or not INT is; with
    /// INT, a PMI is raised (one covers every overflow until it fires).
    fn overflow(&mut self, c: Counter) {
        let bit = Pmu::bit(c);
        self.status |= bit;
        if !self.fault("xen-status-shadow") {
            self.guest_status |= bit;
        }
        if self.int(c) && self.pending.is_none() {
            self.opportunities.pmis += 1;
            let (lo, hi) = self.config.skid;
            let mut skid = self.chance.between(lo, hi);
            if let Some(Fault::LatePmi { rate, extra }) = self.config.faults.get("late-pmi")
                && self.chance.happens(rate)
            {
                skid += extra;
            }
            self.pending = Some(skid);
            self.pending_emulated = self.retiring_emulated;
        }
    }

    /// Counts down a raised PMI's skid by one retired instruction.
    fn tick(&mut self) {
        match self.pending {
            Some(0) => self.fire(),
            Some(k) => self.pending = Some(k - 1),
            None => {}
        }
    }

    /// Fires a raised PMI now, skid or not (the window's code has ended and
    /// the kernel runs on).
    pub fn fire_pending(&mut self) {
        if self.pending.is_some() {
            self.fire();
        }
    }

    /// The hardware interrupt: the hypervisor handles it (where its faults
    /// act), then latches it at the guest's LAPIC unless the LVT is masked.
    fn fire(&mut self) {
        use crate::quirk_fix::PmcQuirkFix;
        // Under the hold-PMI fix, a PMI waits for the last one's acknowledgement.
        if self.held && self.fault("xen-pmc-quirk") {
            return;
        }
        self.pending = None;
        let emulated = std::mem::take(&mut self.pending_emulated);
        if self.chance.happens(self.config.faults.rate("lost-pmi")) {
            return;
        }
        // Switched out between overflow and PMI: Xen's save does not keep
        // hardware GLOBAL_STATUS and masks the physical LVTPC, so on return
        // neither the bit nor the PMI is there (xen:vpmu_intel.c:270-271, vpmu.c:372).
        if self.chance.happens(self.config.faults.rate("xen-status-not-saved")) {
            self.status = 0;
            return;
        }
        if self.fault("xen-pmc-quirk") {
            let fix = self.config.pmc_quirk_fix;
            if PmcQuirkFix::quirks(fix, self.config.signature) {
                for c in self.counters().collect::<Vec<_>>() {
                    if self.status & Pmu::bit(c) != 0 && self.value(c) == 0 {
                        *self.value_mut(c) = 1;
                        if fix == Some(PmcQuirkFix::InterceptReads) {
                            self.quirk_bias |= Pmu::bit(c);
                        }
                    }
                }
            }
            self.held = fix == Some(PmcQuirkFix::HoldPmi);
        }
        if self.fault("xen-status-shadow") {
            self.guest_status |= self.status;
        }
        // Xen's handler then acknowledges the hardware status
        // (xen:vpmu_intel.c:787-789), so no stale bit survives into the next
        // PMI's quirk; the guest sees the shadow (or its own view) only.
        if self.config.under_xen() {
            self.status &= intel::STATUS_CTR_FRZ;
        }
        if self.debugctl & intel::DEBUGCTL_FREEZE_PERFMON_ON_PMI != 0 {
            self.generation += 1;
            if self.config.version >= 4 {
                self.status |= intel::STATUS_CTR_FRZ;
                self.guest_status |= intel::STATUS_CTR_FRZ;
            } else {
                self.global_ctrl = 0;
            }
        }
        // A masked physical LVT holds the interrupt back from the
        // hypervisor, so it never reaches the guest (xen:apic.c
        // pmu_interrupt does not unmask it; vpmu.c vpmu_lvtpc_update does,
        // from the guest's write).
        if self.config.physical_lvtpc {
            if self.physical_masked {
                return;
            }
            if self.config.vendor == Vendor::Intel {
                self.physical_masked = true;
            }
        }
        // A masked LVT entry drops the interrupt; it is not held for later.
        // KVM before 73554b29bd70 injected a second PMI when the overflow
        // came from an instruction it emulated during a VM exit that also ran
        // the PMI's irq_work, with the guest's LVTPC unmasked.
        if self.lvtpc & LVT_MASK == 0 {
            let n = if emulated && self.fault("kvm-duplicate-pmi") {
                2
            } else {
                1
            };
            if self.lvtpc & LVT_DELIVERY_MODE == LVT_NMI {
                // An NMI is taken at once, interrupts off or not.
                self.nmis += u64::from(n);
                self.mask_on_delivery();
            } else {
                self.latched += n;
            }
        }
    }

    /// A context switch: the vCPU is switched out and back in. Under
    /// xen-status-not-saved a PMI raised but not yet handled by the
    /// hypervisor is lost with its hardware status bit
    /// (xen:vpmu_intel.c:270-271, vpmu.c:372); a PMI already latched at the
    /// guest's LAPIC survives in the vLAPIC. Loading the vPMU rewrites the
    /// physical LVTPC from the guest's (xen:vpmu.c:389).
    pub fn deschedule(&mut self) {
        if self.pending.is_some() && self.fault("xen-status-not-saved") {
            self.pending = None;
            self.status = 0;
        }
        if self.config.physical_lvtpc {
            self.physical_masked = self.lvtpc & LVT_MASK != 0;
        }
    }

    /// Delivery masks the LVT entry on Intel (SDM 11.5.1); AMD's does not.
    fn mask_on_delivery(&mut self) {
        let never_masked = self.fault("xen-lvtpc-never-masked") || self.fault("kvm-lvtpc-never-masked");
        let masks = match self.config.vendor {
            Vendor::Intel => !never_masked,
            Vendor::Amd => self.fault("kvm-amd-lvtpc-masked"),
        };
        if masks {
            self.lvtpc |= LVT_MASK;
        }
    }

    /// Whether a PMI waits for the guest to take it.
    pub fn pmi_latched(&self) -> bool {
        self.latched > 0
    }

    /// The guest takes every latched PMI. On Intel, delivery masks the LVT
    /// entry (SDM 11.5.1); AMD's does not. Returns how many were taken.
    pub fn take_pmis(&mut self) -> u32 {
        let n = std::mem::take(&mut self.latched);
        if n > 0 {
            self.mask_on_delivery();
        }
        self.delivered += u64::from(n);
        n
    }

    pub fn lvtpc(&self) -> u32 {
        self.lvtpc
    }

    pub fn set_lvtpc(&mut self, value: u32) {
        self.lvtpc = value;
        self.physical_masked = value & LVT_MASK != 0;
    }

    /// Called around every write that can start a counter: what changes when
    /// a counter goes from stopped to counting.
    fn started(&mut self, before: &[bool]) {
        for (c, was) in self.counters().zip(before.to_vec()).collect::<Vec<_>>() {
            if was || !self.enabled(c) {
                continue;
            }
            if let Counter::Gp(g) = c {
                self.opportunities.enables += 1;
                let rate = self.config.faults.rate("kvm-pinned-starvation");
                self.stop_after[g] = if self.chance.happens(rate) {
                    Some(u64::from(self.chance.between(0, 1000)))
                } else {
                    None
                };
            }
        }
    }

    fn enabled_now(&self) -> Vec<bool> {
        self.counters().map(|c| self.enabled(c)).collect()
    }

    /// A write to GLOBAL_STATUS's clear (`set` false) or set MSR: a bit
    /// outside `writable` raises #GP; otherwise the hardware status and the
    /// guest's view of it change together.
    fn write_status(&mut self, value: u64, writable: u64, set: bool) -> Result<(), Gp> {
        if value & !writable != 0 {
            return Err(Gp::GP);
        }
        if set {
            self.status |= value;
            self.guest_status |= value;
        } else {
            self.status &= !value;
            self.guest_status &= !value;
        }
        Ok(())
    }

    /// RDPMC (SDM Vol. 2B, RDPMC; APM Vol. 3, RDPMC): Intel's ECX bit 30
    /// selects a fixed counter, and an index past the counters raises #GP, as
    /// does AMD's past its core counters. The model has no fast reads
    /// (ECX bit 31): it raises #GP for them, as parts without them do.
    pub fn rdpmc(&self, ecx: u32) -> Result<u64, Gp> {
        if ecx & (1 << 31) != 0 {
            return GP;
        }
        let (fixed, i) = match self.config.vendor {
            Vendor::Intel => (ecx & (1 << 30) != 0, (ecx & !(1 << 30)) as usize),
            Vendor::Amd => (false, ecx as usize),
        };
        match (fixed, i) {
            (true, i) if i < self.fixed.len() => Ok(self.guest_value(Counter::Fixed(i))),
            (false, i) if i < self.gp.len() => Ok(self.guest_value(Counter::Gp(i))),
            _ => GP,
        }
    }

    pub fn rdmsr(&mut self, msr: u32) -> Result<u64, Gp> {
        match self.config.vendor {
            Vendor::Intel => self.rdmsr_intel(msr),
            Vendor::Amd => self.rdmsr_amd(msr),
        }
    }

    pub fn wrmsr(&mut self, msr: u32, value: u64) -> Result<(), Gp> {
        self.generation += 1;
        let before = self.enabled_now();
        let result = match self.config.vendor {
            Vendor::Intel => self.wrmsr_intel(msr, value),
            Vendor::Amd => self.wrmsr_amd(msr, value),
        };
        if result.is_ok() {
            // Parallels: a counter written reads 2^31 off (rr #1818).
            if self.fault("parallels-2^31-offset")
                && let Some(c) = self.counter_at(msr)
            {
                *self.value_mut(c) ^= 1 << 31;
            }
            self.started(&before);
        }
        result
    }

    /// The counter an MSR reads and writes, through any of its aliases.
    fn counter_at(&self, msr: u32) -> Option<Counter> {
        match self.config.vendor {
            Vendor::Intel => self
                .gp_index(msr, intel::PMC0, 1)
                .or_else(|| self.gp_index(msr, intel::A_PMC0, 1))
                .map(Counter::Gp)
                .or_else(|| {
                    let i = msr.checked_sub(intel::FIXED_CTR0)?;
                    (i < u32::from(self.config.fixed)).then_some(Counter::Fixed(i as usize))
                }),
            Vendor::Amd => match self.amd_counter_index(msr) {
                Some((i, false)) => Some(Counter::Gp(i)),
                _ => None,
            },
        }
    }

    fn gp_index(&self, msr: u32, base: u32, stride: u32) -> Option<usize> {
        let offset = msr.checked_sub(base)?;
        (offset % stride == 0 && offset / stride < u32::from(self.config.gp)).then_some((offset / stride) as usize)
    }

    /// Status bits software may name: counters, plus (v4) the v4 bits and, always, OvfBuf and CondChgd.
    fn status_writable(&self) -> u64 {
        let v4 = if self.config.version >= 4 {
            (1 << 55) | (0xf << 58)
        } else {
            0
        };
        self.gp_mask() | self.fixed_mask() | v4 | (0b11 << 62)
    }

    fn rdmsr_intel(&mut self, msr: u32) -> Result<u64, Gp> {
        let globals = self.has_globals();
        if let Some(i) = self.gp_index(msr, intel::PMC0, 1) {
            return Ok(self.guest_value(Counter::Gp(i)));
        }
        if self.config.full_width_writes
            && let Some(i) = self.gp_index(msr, intel::A_PMC0, 1)
        {
            return Ok(self.guest_value(Counter::Gp(i)));
        }
        if self.config.legacy_pmc_reads_zero && (intel::PMC0..intel::PMC0 + 2).contains(&msr) {
            return Ok(0);
        }
        if let Some(i) = self.gp_index(msr, intel::PERFEVTSEL0, 1) {
            return Ok(self.gp_sel[i]);
        }
        match msr {
            m if (intel::FIXED_CTR0..intel::FIXED_CTR0 + u32::from(self.config.fixed)).contains(&m) => {
                Ok(self.guest_value(Counter::Fixed((m - intel::FIXED_CTR0) as usize)))
            }
            intel::FIXED_CTR_CTRL if self.config.fixed > 0 => Ok(self.fixed_ctrl),
            intel::PERF_GLOBAL_STATUS if globals => Ok(self.guest_status),
            intel::PERF_GLOBAL_CTRL if globals => Ok(self.global_ctrl),
            // Acknowledged by writes; reads give 0.
            intel::PERF_GLOBAL_OVF_CTRL if globals => Ok(0),
            intel::PERF_GLOBAL_STATUS_SET if self.config.version >= 4 => Ok(0),
            intel::PERF_CAPABILITIES if self.config.full_width_writes => Ok(1 << 13),
            intel::DEBUGCTL => Ok(self.debugctl),
            _ => GP,
        }
    }

    fn wrmsr_intel(&mut self, msr: u32, value: u64) -> Result<(), Gp> {
        let globals = self.has_globals();
        if let Some(i) = self.gp_index(msr, intel::PMC0, 1) {
            // The legacy alias takes bits 31:0 and sign-extends bit 31.
            let extended = value as u32 as i32 as i64 as u64;
            self.gp[i] = extended & self.width_mask(Counter::Gp(i));
            self.quirk_bias &= !Pmu::bit(Counter::Gp(i));
            return Ok(());
        }
        if self.config.full_width_writes
            && let Some(i) = self.gp_index(msr, intel::A_PMC0, 1)
        {
            if value & !self.width_mask(Counter::Gp(i)) != 0 {
                return Err(Gp::GP);
            }
            self.gp[i] = value;
            self.quirk_bias &= !Pmu::bit(Counter::Gp(i));
            return Ok(());
        }
        if self.config.legacy_pmc_reads_zero && (intel::PMC0..intel::PMC0 + 2).contains(&msr) {
            return Ok(());
        }
        if let Some(i) = self.gp_index(msr, intel::PERFEVTSEL0, 1) {
            if value & INTEL_EVTSEL_RESERVED != 0 {
                return Err(Gp::GP);
            }
            if self.config.xen_ipc_only
                && pmu_kernel_checks::refusal::xen_filter_refuses(
                    pmu_kernel_checks::refusal::XEN_FEATURE_IPC_ONLY,
                    value,
                )
            {
                return Err(Gp::GP);
            }
            self.gp_sel[i] = value;
            return Ok(());
        }
        match msr {
            m if (intel::FIXED_CTR0..intel::FIXED_CTR0 + u32::from(self.config.fixed)).contains(&m) => {
                let c = Counter::Fixed((m - intel::FIXED_CTR0) as usize);
                *self.value_mut(c) = value & self.width_mask(c);
                self.quirk_bias &= !Pmu::bit(c);
                Ok(())
            }
            intel::FIXED_CTR_CTRL if self.config.fixed > 0 => {
                if value >> (4 * u32::from(self.config.fixed)) != 0 {
                    return Err(Gp::GP);
                }
                self.fixed_ctrl = value;
                Ok(())
            }
            intel::PERF_GLOBAL_CTRL if globals => {
                if value & !(self.gp_mask() | self.fixed_mask()) != 0 {
                    return Err(Gp::GP);
                }
                self.global_ctrl = value;
                Ok(())
            }
            intel::PERF_GLOBAL_OVF_CTRL if globals => {
                self.write_status(value, self.status_writable(), false)?;
                // The acknowledgement releases a PMI the hold-PMI fix held back.
                if std::mem::take(&mut self.held) && self.pending.is_some() {
                    self.fire();
                }
                Ok(())
            }
            intel::PERF_GLOBAL_STATUS_SET if self.config.version >= 4 => {
                self.write_status(value, self.status_writable(), true)
            }
            intel::DEBUGCTL => {
                // LBR and BTF, and freeze on PMI where the platform allows it.
                let freeze = if self.config.debugctl_freeze {
                    intel::DEBUGCTL_FREEZE_PERFMON_ON_PMI
                } else {
                    0
                };
                if value & !(0b11 | freeze) != 0 {
                    return Err(Gp::GP);
                }
                self.debugctl = value;
                Ok(())
            }
            _ => Err(Gp::GP),
        }
    }

    fn amd_counter_index(&self, msr: u32) -> Option<(usize, bool)> {
        // (index, is the event select)
        if let Some(i) = self.gp_index(msr, amd::PERF_CTL0, 2) {
            return Some((i, true));
        }
        if let Some(i) = self.gp_index(msr, amd::PERF_CTR0, 2) {
            return Some((i, false));
        }
        let legacy = |base: u32| {
            msr.checked_sub(base)
                .filter(|&o| o < 4 && o < u32::from(self.config.gp))
        };
        if let Some(o) = legacy(amd::PERFEVTSEL0_LEGACY) {
            return Some((o as usize, true));
        }
        legacy(amd::PERFCTR0_LEGACY).map(|o| (o as usize, false))
    }

    fn rdmsr_amd(&mut self, msr: u32) -> Result<u64, Gp> {
        let v2 = self.config.perfmon_v2;
        match self.amd_counter_index(msr) {
            Some((i, true)) => Ok(self.gp_sel[i]),
            Some((i, false)) => Ok(self.gp[i]),
            None => match msr {
                amd::GLOBAL_STATUS if v2 => Ok(self.guest_status),
                amd::GLOBAL_CTL if v2 => Ok(self.global_ctrl),
                amd::GLOBAL_STATUS_CLR | amd::GLOBAL_STATUS_SET if v2 => Ok(0),
                _ => GP,
            },
        }
    }

    fn wrmsr_amd(&mut self, msr: u32, value: u64) -> Result<(), Gp> {
        let v2 = self.config.perfmon_v2;
        match self.amd_counter_index(msr) {
            Some((i, true)) => {
                if value & AMD_EVTSEL_RESERVED != 0 && !self.config.reserved_bits_ignored {
                    return Err(Gp::GP);
                }
                self.gp_sel[i] = value & !AMD_EVTSEL_RESERVED;
                Ok(())
            }
            Some((i, false)) => {
                if value & !self.width_mask(Counter::Gp(i)) != 0 {
                    return Err(Gp::GP);
                }
                self.gp[i] = value;
                Ok(())
            }
            None => match msr {
                amd::GLOBAL_CTL if v2 => {
                    if value & !self.gp_mask() != 0 && !self.config.reserved_bits_ignored {
                        return Err(Gp::GP);
                    }
                    self.global_ctrl = value & self.gp_mask();
                    Ok(())
                }
                amd::GLOBAL_STATUS_CLR if v2 && self.config.reserved_bits_ignored => {
                    self.write_status(value & self.gp_mask(), self.gp_mask(), false)
                }
                amd::GLOBAL_STATUS_CLR if v2 => self.write_status(value, self.gp_mask(), false),
                amd::GLOBAL_STATUS_SET if v2 && !self.fault("kvm-amd-status-set-gp") => {
                    self.write_status(value, self.gp_mask(), true)
                }
                _ => Err(Gp::GP),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Faults;

    fn skylake(faults: &[Fault]) -> Pmu {
        Pmu::new(Config {
            faults: Faults(faults.to_vec()),
            skid: (0, 0),
            ..Config::intel_skylake()
        })
    }

    const BRANCH: Instr = Instr {
        branch: true,
        cond_branch: true,
        ..Instr::KERNEL
    };

    /// Counts kernel-mode conditional branches on GP0 with INT, preset to overflow after `n`.
    fn arm(pmu: &mut Pmu, n: u64) {
        pmu.wrmsr(intel::PERFEVTSEL0, 0x01c4 | evtsel::OS | evtsel::INT | evtsel::EN)
            .unwrap();
        pmu.wrmsr(intel::A_PMC0, n.wrapping_neg() & ((1 << 48) - 1)).unwrap();
        pmu.set_lvtpc(32);
        pmu.wrmsr(intel::PERF_GLOBAL_CTRL, 1).unwrap();
    }

    #[test]
    fn overflow_sets_status_and_raises_one_pmi_that_masks_the_lvt() {
        let mut pmu = skylake(&[]);
        arm(&mut pmu, 3);
        for _ in 0..3 {
            pmu.retire(&BRANCH);
        }
        assert_eq!(pmu.rdmsr(intel::PERF_GLOBAL_STATUS), Ok(1));
        assert_eq!(pmu.value(Counter::Gp(0)), 0);
        assert_eq!(pmu.take_pmis(), 1);
        assert_ne!(pmu.lvtpc() & LVT_MASK, 0);
        // Acknowledged through OVF_CTRL, which reads back 0.
        pmu.wrmsr(intel::PERF_GLOBAL_OVF_CTRL, 1).unwrap();
        assert_eq!(
            (
                pmu.rdmsr(intel::PERF_GLOBAL_STATUS),
                pmu.rdmsr(intel::PERF_GLOBAL_OVF_CTRL)
            ),
            (Ok(0), Ok(0))
        );
    }

    #[test]
    fn xen_writes_one_into_a_counter_that_reads_zero_at_the_pmi() {
        let mut pmu = skylake(&[Fault::XenPmcQuirk]);
        arm(&mut pmu, 3);
        for _ in 0..3 {
            pmu.retire(&BRANCH);
        }
        assert_eq!(pmu.value(Counter::Gp(0)), 1);
    }

    #[test]
    fn each_proposed_fix_changes_what_the_quirk_does_its_own_way() {
        use crate::quirk_fix::PmcQuirkFix;
        let fixed = |fix| {
            Pmu::new(Config {
                pmc_quirk_fix: Some(fix),
                ..skylake(&[Fault::XenPmcQuirk]).config
            })
        };
        // Restricted to Nehalem: a Skylake counter stays at 0.
        let mut old = fixed(PmcQuirkFix::OldCpusOnly);
        arm(&mut old, 3);
        (0..3).for_each(|_| old.retire(&BRANCH));
        assert_eq!((old.value(Counter::Gp(0)), old.rdmsr(intel::A_PMC0)), (0, Ok(0)));
        // Reads intercepted: the counter holds 1, the guest reads 0, and a
        // write of its own ends the correction.
        let mut reads = fixed(PmcQuirkFix::InterceptReads);
        arm(&mut reads, 3);
        (0..3).for_each(|_| reads.retire(&BRANCH));
        assert_eq!(reads.value(Counter::Gp(0)), 1);
        assert_eq!((reads.rdmsr(intel::A_PMC0), reads.rdpmc(0)), (Ok(0), Ok(0)));
        reads.wrmsr(intel::A_PMC0, 5).unwrap();
        assert_eq!(reads.rdmsr(intel::A_PMC0), Ok(5));
        // PMI held: no write; a second overflow before the acknowledgement
        // raises no PMI until the guest writes GLOBAL_OVF_CTRL.
        let mut hold = fixed(PmcQuirkFix::HoldPmi);
        arm(&mut hold, 1);
        hold.retire(&BRANCH);
        assert_eq!((hold.value(Counter::Gp(0)), hold.take_pmis()), (0, 1));
        hold.set_lvtpc(32);
        hold.wrmsr(intel::A_PMC0, (1 << 48) - 1).unwrap();
        hold.retire(&BRANCH);
        hold.retire(&BRANCH);
        assert_eq!(hold.take_pmis(), 0, "held until acknowledged");
        hold.wrmsr(intel::PERF_GLOBAL_OVF_CTRL, 1).unwrap();
        assert_eq!(hold.take_pmis(), 1, "released by the acknowledgement");
    }

    #[test]
    fn xen_status_shadow_hides_overflows_without_int_until_a_pmi() {
        let mut pmu = skylake(&[Fault::XenStatusShadow]);
        pmu.wrmsr(intel::PERFEVTSEL0, 0x01c4 | evtsel::OS | evtsel::EN).unwrap();
        pmu.wrmsr(intel::A_PMC0, (1 << 48) - 1).unwrap();
        pmu.wrmsr(intel::PERF_GLOBAL_CTRL, 1).unwrap();
        pmu.retire(&BRANCH);
        assert_eq!(pmu.rdmsr(intel::PERF_GLOBAL_STATUS), Ok(0));
    }

    #[test]
    fn the_legacy_alias_sign_extends_bit_31_and_reserved_bits_fault() {
        let mut pmu = skylake(&[]);
        pmu.wrmsr(intel::PMC0, 0xffff_fffe).unwrap();
        assert_eq!(pmu.value(Counter::Gp(0)), (1 << 48) - 2);
        assert_eq!(pmu.wrmsr(intel::A_PMC0, 1 << 48), Err(Gp::GP));
        assert_eq!(pmu.wrmsr(intel::PERF_GLOBAL_CTRL, 1 << 4), Err(Gp::GP));
        assert_eq!(pmu.wrmsr(intel::PERFEVTSEL0 + 4, 0), Err(Gp::GP));
        assert_eq!(pmu.wrmsr(intel::PERF_GLOBAL_STATUS, 0), Err(Gp::GP));
    }

    #[test]
    fn amd_does_not_mask_the_lvt() {
        let mut pmu = Pmu::new(Config {
            skid: (0, 0),
            ..Config::amd_zen3()
        });
        pmu.wrmsr(amd::PERF_CTL0, 0xd1 | evtsel::OS | evtsel::INT | evtsel::EN)
            .unwrap();
        pmu.wrmsr(amd::PERF_CTR0, (1 << 48) - 1).unwrap();
        pmu.wrmsr(amd::GLOBAL_CTL, 1).unwrap();
        pmu.set_lvtpc(32);
        pmu.retire(&BRANCH);
        assert_eq!(pmu.take_pmis(), 1);
        assert_eq!(pmu.lvtpc() & LVT_MASK, 0);
    }
}
