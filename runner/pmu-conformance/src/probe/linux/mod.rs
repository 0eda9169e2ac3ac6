//! The `linux` probe: perf_event_open on this machine, from this process.
//!
//! Each window opens a fresh counter (so its period and count start clean),
//! pins the thread to one CPU, arms notifications if the window samples, runs
//! the workload's inline-asm window, then reads the counter and rejects any
//! reading that was not counted for the whole window.

mod affinity;
mod notifications;
mod perf;
pub mod stray_traps;
pub mod trace;
mod windows;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

pub use notifications::current_disposition as notification_signal_disposition;

pub use self::perf::PARKED_PERIOD;
use self::perf::{Counter, CounterSpec, SampleRing, UserPage, describe_open_error, rdpmc_count};
use self::windows::WindowArgs;
use crate::cpu::{ArchitecturalPmu, CpuFeatures, CpuIdentity};
use crate::event_table::{EventTable, ResolvedEvent};
use crate::fingerprint::Fingerprint;
use crate::outcome::{Reason, ReasonCode};
use crate::probe::{Probe, ProbeError, Reading, Sampling, Window, WindowRun};
use crate::vocabulary::ReadWith;
use crate::workload::{Counts, Workload, WorkloadKind};

/// What the probe needs to know about this machine, shared by every case.
#[derive(Clone, Debug)]
pub struct Machine {
    pub table: EventTable,
    pub cpu: CpuIdentity,
    pub pmu: ArchitecturalPmu,
    pub features: CpuFeatures,
    /// Why a hardware event might be missing, for unsupported reasons.
    pub context: String,
    /// This machine, for the reason there is no PMU ([`Fingerprint::no_pmu`]).
    pub fingerprint: Fingerprint,
    /// Xen's `vpmu=ipc`/`vpmu=arch` flags, from /sys/hypervisor/pmu/pmu_features.
    pub xen_pmu_features: Option<u32>,
    /// Every core type's PMU: one on a uniform machine, one per core type
    /// on a hybrid part, the P-cores' first.
    pub core_types: Vec<affinity::CoreType>,
    /// The core type this machine's windows run on (the first, unless
    /// [`Machine::on_core`] chose another).
    pub core_type: String,
    /// The perf type for raw events: PERF_TYPE_RAW, or the core type's on hybrids.
    pub raw_type: u32,
    /// The CPU every window runs on.
    pub cpu_to_pin: usize,
    /// /sys/bus/event_source/devices/cpu/rdpmc, for rdpmc's unsupported reason.
    pub rdpmc_setting: String,
}

impl Machine {
    pub fn new(table: EventTable, fingerprint: &Fingerprint) -> Machine {
        let core_types = affinity::core_types();
        let first = core_types[0].clone();
        Machine {
            table,
            cpu: fingerprint.cpu.identity.clone(),
            pmu: fingerprint.pmu.architectural,
            features: fingerprint.cpu.features,
            context: fingerprint.pmu_context(),
            fingerprint: fingerprint.clone(),
            xen_pmu_features: fingerprint.linux.as_ref().and_then(|l| l.xen_pmu_features()),
            core_type: first.name.clone(),
            raw_type: first.perf_type,
            cpu_to_pin: affinity::first_allowed_cpu(first.cpus.as_deref()),
            core_types,
            rdpmc_setting: fingerprint
                .linux
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |l| l.rdpmc.clone()),
        }
    }

    /// This machine with its windows on the cores of `core_type`.
    pub fn on_core(&self, core_type: &affinity::CoreType) -> Machine {
        Machine {
            core_type: core_type.name.clone(),
            raw_type: core_type.perf_type,
            cpu_to_pin: affinity::first_allowed_cpu(core_type.cpus.as_deref()),
            ..self.clone()
        }
    }
}

/// One window at a time on this machine, through perf_event_open.
pub struct LinuxProbe {
    machine: Arc<Machine>,
}

impl LinuxProbe {
    pub fn new(machine: Arc<Machine>) -> LinuxProbe {
        LinuxProbe { machine }
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// What an errno from perf_event_open means for the case.
    fn open_error(&self, error: &io::Error) -> Reason {
        describe_open_error(error, &self.machine.context, |seen| {
            self.machine.fingerprint.no_pmu(seen)
        })
    }

    fn spec(&self, event: &ResolvedEvent, workload: &Workload, sampling: Option<Sampling>) -> CounterSpec {
        // rr's probe opens with a parked period and sets the real one inside its window.
        let sample_period = sampling.map(|s| match workload.kind {
            WorkloadKind::RrXenProbe => PARKED_PERIOD,
            _ => s.period,
        });
        CounterSpec {
            encoding: event.encoding,
            raw_type: self.machine.raw_type,
            breakpoint_address: windows::marker_address(workload.kind),
            sample_period,
        }
    }

    /// Opens `window`'s counter once, as its run would, and closes it again:
    /// the cheap way to learn whether this machine can run it at all, and if
    /// not, why.
    pub fn trial_open(&self, window: &Window<'_>) -> Result<(), Reason> {
        let spec = self.spec(window.event, &window.workload, window.sampling);
        let counter = Counter::open(&spec).map_err(|e| self.open_error(&e))?;
        match window.read_with {
            ReadWith::Syscall => Ok(()),
            ReadWith::Rdpmc => user_page_for_rdpmc(&counter, &self.machine.rdpmc_setting).map(drop),
        }
    }
}

impl Probe for LinuxProbe {
    fn run(&mut self, window: &Window<'_>) -> Result<WindowRun, ProbeError> {
        affinity::pin_this_thread(self.machine.cpu_to_pin).map_err(ProbeError::Harness)?;
        let spec = self.spec(window.event, &window.workload, window.sampling);
        let counter = Counter::open(&spec).map_err(|e| ProbeError::Unsupported(self.open_error(&e)))?;
        let pages = match window.workload.kind {
            WorkloadKind::PageTouch => Some(FreshPages::map(window.workload.size).map_err(ProbeError::Harness)?),
            _ => None,
        };
        let (ring, armed) = match window.sampling {
            Some(_) => {
                let ring = SampleRing::map(&counter)
                    .map_err(|e| ProbeError::Harness(format!("mapping the sample ring: {e}")))?;
                let armed = notifications::Armed::new(counter.as_raw_fd())
                    .map_err(|e| ProbeError::Harness(format!("arming overflow notifications: {e}")))?;
                (Some(ring), Some(armed))
            }
            None => (None, None),
        };
        let user_page = match window.read_with {
            ReadWith::Syscall => None,
            ReadWith::Rdpmc => {
                Some(user_page_for_rdpmc(&counter, &self.machine.rdpmc_setting).map_err(ProbeError::Unsupported)?)
            }
        };
        let refresh = window.sampling.and_then(|s| s.refresh);
        let mut args = WindowArgs {
            fd: counter.as_raw_fd() as i64,
            arm_request: if refresh.is_some() {
                windows::REFRESH
            } else {
                windows::ENABLE
            },
            arm_arg: refresh.map_or(0, u64::from),
            iterations: window.workload.iterations(),
            period: window.sampling.map_or(0, |s| s.period),
            buffer: pages.as_ref().map_or(0, |p| p.address as u64),
            user_page: user_page.as_ref().map_or(0, UserPage::address),
            ..WindowArgs::default()
        };
        let traps = stray_traps::taken();
        match (window.read_with, window.workload.kind) {
            (ReadWith::Rdpmc, WorkloadKind::BranchLoop) => windows::run_branch_loop_rdpmc(&mut args),
            (ReadWith::Rdpmc, other) => {
                return Err(ProbeError::Harness(format!(
                    "`{other}` has no rdpmc window (validation should have said)"
                )));
            }
            (ReadWith::Syscall, kind) => windows::run(kind, &mut args),
        }

        if stray_traps::taken() != traps {
            let (at, code) = stray_traps::last();
            let marker = windows::marker_address(window.workload.kind);
            return Err(ProbeError::Disturbed(format!(
                "a breakpoint trap the kernel did not claim arrived during the window (at {at:#x}{}; {}), \
                 so the window's count cannot be trusted",
                if at == marker { ", the window's marker" } else { "" },
                stray_traps::origin(code)
            )));
        }
        let mut reading = counter.read().map_err(ProbeError::Harness)?;
        if let Some(page) = &user_page {
            if args.lock_before != args.lock_after || args.index == 0 {
                return Err(ProbeError::Harness(format!(
                    "the counter moved while rdpmc read it (seqlock {} then {}, index {}); its value is not the window's",
                    args.lock_before, args.lock_after, args.index
                )));
            }
            reading.value = rdpmc_count(args.pmc, page.pmc_width(), args.offset);
        }
        let notifications = match armed {
            Some(armed) => armed.collect(reading.value).map_err(ProbeError::Harness)?,
            None => Vec::new(),
        };
        let ring = ring.map(|r| r.tally()).transpose().map_err(ProbeError::Harness)?;
        drop(pages);
        check_window(&args)?;
        check_reading(&reading)?;
        if ring.is_some_and(|r| r.throttled) {
            return Err(ProbeError::Harness(
                "the kernel throttled the event (too many interrupts per second; \
                 see kernel.perf_event_max_sample_rate): raise the period"
                    .into(),
            ));
        }
        Ok(WindowRun {
            reading,
            notifications,
            overflows_handled: ring.map(|r| r.overflows),
        })
    }

    fn traced_counts(&mut self, workload: &Workload, read_with: ReadWith) -> Option<Result<Counts, String>> {
        Some(trace::extrapolated_counts(workload, read_with).map_err(|e| e.to_string()))
    }
}

/// The counter's mmap page, if the kernel lets user space rdpmc the counter.
fn user_page_for_rdpmc(counter: &Counter, setting: &str) -> Result<UserPage, Reason> {
    let page = UserPage::map(counter).map_err(|e| {
        Reason::new(
            ReasonCode::PerfRefused,
            format!("mapping the counter's perf page for rdpmc: {e}"),
        )
    })?;
    if !page.rdpmc_allowed() {
        return Err(Reason::new(
            ReasonCode::PerfRefused,
            format!(
                "cap_user_rdpmc is 0 for this counter: the kernel does not let user space read it with rdpmc \
             (/sys/bus/event_source/devices/cpu/rdpmc is {setting})"
            ),
        ));
    }
    Ok(page)
}

/// Every ioctl the window made must have succeeded.
fn check_window(args: &WindowArgs) -> Result<(), ProbeError> {
    let failed = |what: &str, rc: i64| {
        ProbeError::Harness(format!(
            "{what} failed inside the window: {}",
            io::Error::from_raw_os_error(-rc as i32)
        ))
    };
    if args.arm_result < 0 {
        return Err(failed("arming the counter (ENABLE/REFRESH)", args.arm_result));
    }
    match args.failed_step {
        0 => {}
        1 => return Err(failed("PERF_EVENT_IOC_RESET", args.step_result)),
        _ => return Err(failed("PERF_EVENT_IOC_PERIOD", args.step_result)),
    }
    if args.disarm_result < 0 {
        return Err(failed("PERF_EVENT_IOC_DISABLE", args.disarm_result));
    }
    Ok(())
}

/// A count is only a count of the window if the counter ran for all of it.
fn check_reading(r: &Reading) -> Result<(), ProbeError> {
    if r.time_enabled == 0 {
        return Err(ProbeError::Harness("the counter was never enabled".into()));
    }
    if r.time_running < r.time_enabled {
        return Err(ProbeError::Harness(format!(
            "the counter was multiplexed: it ran {} of {} ns enabled ({:.1} %), so its count is not the window's",
            r.time_running,
            r.time_enabled,
            100.0 * r.time_running as f64 / r.time_enabled as f64
        )));
    }
    Ok(())
}

/// Anonymous pages that have never been touched, with transparent huge pages
/// off so that each 4 KiB page faults on its own.
struct FreshPages {
    address: *mut libc::c_void,
    length: usize,
}

impl FreshPages {
    fn map(pages: u64) -> Result<FreshPages, String> {
        let length = usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(4096))
            .ok_or("too many pages")?;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(format!("mapping {pages} fresh pages: {}", io::Error::last_os_error()));
        }
        let pages = FreshPages { address, length };
        if unsafe { libc::madvise(address, length, libc::MADV_NOHUGEPAGE) } != 0 {
            return Err(format!("madvise(MADV_NOHUGEPAGE): {}", io::Error::last_os_error()));
        }
        Ok(pages)
    }
}

impl Drop for FreshPages {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped.
        unsafe { libc::munmap(self.address, self.length) };
    }
}
