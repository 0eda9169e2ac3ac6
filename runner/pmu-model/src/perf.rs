//! Linux perf, as far as a user-mode counter needs it, driving the model.
//!
//! This follows `arch/x86/events/core.c` and `intel/core.c`: a counter is
//! preset to −left (left is the period still to go, at least 2), the PMI
//! handler reads GLOBAL_STATUS, adds each overflowed counter's delta (masked
//! to the counter's width) to the event's count, starts the next period
//! (carrying the events past the boundary), acknowledges the status, and
//! unmasks the LVT entry. A counting event uses the longest period, so it
//! never notifies. REFRESH(n) stops the event after n overflows, the last
//! notified as POLL_HUP; IOC_PERIOD applies the new period at once.

use pmu_kernel_checks::pmu::{amd, evtsel, intel};

use crate::config::Vendor;
use crate::machine::{Driver, Interrupts, Machine};
use crate::pmu::{Counter, LVT_MASK, Pmu};
use crate::program::{Op, Program};

/// One perf event on GP counter 0, as the Linux probe opens it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfEvent {
    /// The raw config: event, umask, and any of bits 32–35 (AMD's event
    /// bits 11:8, Intel's IN_TX/IN_TXCP).
    pub config: u64,
    /// Sampling period, or `None` to count only.
    pub sample_period: Option<u64>,
    /// Allow this many notifications (IOC_REFRESH) instead of indefinitely.
    pub refresh: Option<u32>,
    /// The period an in-window IOC_PERIOD sets (rr's probe).
    pub period_in_window: Option<u64>,
}

/// One notification: the count when it reached the workload's thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub count: u64,
    pub hangup: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfResult {
    /// The count read after the window.
    pub count: u64,
    pub notifications: Vec<Notification>,
    /// Overflows perf handled (its sample records).
    pub overflows: u64,
}

struct PerfDriver {
    event: PerfEvent,
    counter: Counter,
    active: bool,
    count: u64,
    prev: u64,
    period: u64,
    left: i128,
    limit: Option<u32>,
    result: PerfResult,
}

impl PerfDriver {
    fn mask(pmu: &Pmu) -> u64 {
        (1u64 << pmu.config.width) - 1
    }

    fn evtsel_msr(pmu: &Pmu) -> u32 {
        match pmu.config.vendor {
            Vendor::Intel => intel::PERFEVTSEL0,
            Vendor::Amd => amd::PERF_CTL0,
        }
    }

    fn counter_msr(pmu: &Pmu) -> u32 {
        match pmu.config.vendor {
            Vendor::Intel if pmu.config.full_width_writes => intel::A_PMC0,
            Vendor::Intel => intel::PMC0,
            Vendor::Amd => amd::PERF_CTR0,
        }
    }

    fn global_ctrl(pmu: &Pmu) -> Option<u32> {
        pmu.has_globals().then_some(match pmu.config.vendor {
            Vendor::Intel => intel::PERF_GLOBAL_CTRL,
            Vendor::Amd => amd::GLOBAL_CTL,
        })
    }

    /// x86_perf_event_update: adds the counter's movement to the count.
    fn update(&mut self, pmu: &mut Pmu) {
        let now = pmu.guest_value(self.counter);
        let delta = now.wrapping_sub(self.prev) & PerfDriver::mask(pmu);
        self.prev = now;
        self.count += delta;
        self.left -= i128::from(delta);
    }

    /// x86_perf_event_set_period: starts the next period, carrying what went
    /// past the boundary; returns whether a period ended.
    fn set_period(&mut self, pmu: &mut Pmu) -> bool {
        let period = i128::from(self.period);
        let mut ended = false;
        if self.left <= -period {
            self.left = period;
            ended = true;
        } else if self.left <= 0 {
            self.left += period;
            ended = true;
        }
        // x86 programs at least 2 (a period of 1 becomes 2).
        let left = self.left.max(2) as u64;
        let preset = left.wrapping_neg() & PerfDriver::mask(pmu);
        let _ = pmu.wrmsr(PerfDriver::counter_msr(pmu), preset);
        self.prev = preset;
        ended
    }

    fn stop(&mut self, pmu: &mut Pmu) {
        if let Some(ctrl) = PerfDriver::global_ctrl(pmu) {
            let _ = pmu.wrmsr(ctrl, 0);
        }
        let _ = pmu.wrmsr(PerfDriver::evtsel_msr(pmu), 0);
        self.active = false;
    }
}

impl Driver for PerfDriver {
    fn op(&mut self, pmu: &mut Pmu, op: Op) {
        match op {
            Op::Arm => {
                // A counting event uses the longest period the counter can be
                // preset to: half its range with full-width writes (and on
                // AMD), but 2^31 − 1 through Intel's legacy alias, which only
                // takes 32 bits (intel_pmu.max_period in Linux).
                let full_width = pmu.config.vendor == Vendor::Amd || pmu.config.full_width_writes;
                let max_period = if full_width {
                    PerfDriver::mask(pmu) >> 1
                } else {
                    (1 << 31) - 1
                };
                self.period = self.event.sample_period.unwrap_or(max_period);
                self.left = i128::from(self.period);
                self.limit = self.event.refresh;
                let raw = self.event.config & (0xffff | (0xf << 32));
                let _ = pmu.wrmsr(
                    PerfDriver::evtsel_msr(pmu),
                    raw | evtsel::USR | evtsel::INT | evtsel::EN,
                );
                self.set_period(pmu);
                if let Some(ctrl) = PerfDriver::global_ctrl(pmu) {
                    let _ = pmu.wrmsr(ctrl, 1);
                }
                pmu.set_lvtpc(pmu.lvtpc() & !LVT_MASK);
                self.active = true;
            }
            Op::Reset => {
                self.update(pmu);
                self.count = 0;
            }
            Op::Period => {
                if let Some(p) = self.event.period_in_window {
                    self.update(pmu);
                    self.period = p;
                    self.left = 0;
                    self.set_period(pmu);
                }
            }
            Op::Disarm => {
                if self.active {
                    self.update(pmu);
                    self.stop(pmu);
                }
            }
            Op::Wrmsr { .. } => {}
        }
    }

    fn pmi(&mut self, pmu: &mut Pmu) {
        let status_msr = pmu.has_globals().then_some(match pmu.config.vendor {
            Vendor::Intel => (intel::PERF_GLOBAL_STATUS, intel::PERF_GLOBAL_OVF_CTRL),
            Vendor::Amd => (amd::GLOBAL_STATUS, amd::GLOBAL_STATUS_CLR),
        });
        let overflowed = match status_msr {
            Some((status, _)) => pmu.rdmsr(status).unwrap_or(0) & 1 != 0,
            // Without global status, AMD's handler asks each counter: one that
            // has wrapped has its top bit clear.
            None => pmu.guest_value(self.counter) >> (pmu.config.width - 1) == 0,
        };
        if overflowed && self.active {
            self.update(pmu);
            if self.set_period(pmu) {
                self.result.overflows += 1;
                if self.event.sample_period.is_some() {
                    let hangup = match &mut self.limit {
                        Some(n) => {
                            *n -= 1;
                            *n == 0
                        }
                        None => false,
                    };
                    self.result.notifications.push(Notification {
                        count: self.count,
                        hangup,
                    });
                    if hangup {
                        self.stop(pmu);
                    }
                }
            }
        }
        if let Some((status, clear)) = status_msr {
            let bits = pmu.rdmsr(status).unwrap_or(0);
            let _ = pmu.wrmsr(clear, bits);
        }
        pmu.set_lvtpc(pmu.lvtpc() & !LVT_MASK);
    }
}

/// Runs `program` (built with [`Op::Arm`] … [`Op::Disarm`]) under perf.
pub fn run(machine: &mut Machine, program: &Program, event: PerfEvent) -> PerfResult {
    let mut driver = PerfDriver {
        event,
        counter: Counter::Gp(0),
        active: false,
        count: 0,
        prev: 0,
        period: 0,
        left: 0,
        limit: None,
        result: PerfResult::default(),
    };
    machine.run(program, Interrupts::Taken, &mut driver);
    driver.result.count = driver.count;
    driver.result
}
