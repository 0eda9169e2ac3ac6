//! Which CPU windows run on, and which PMU type raw events use.
//!
//! Windows run pinned to one CPU so a counter never migrates mid-window. On
//! hybrid Intel parts the core PMU is `cpu_core` (with its own dynamic type)
//! rather than `cpu`, and the event table's encodings are the P-cores', so we
//! pin to a P-core there.

use std::cell::Cell;
use std::fs;

use perf_event_open_sys::bindings;

const SOURCES: &str = "/sys/bus/event_source/devices";

/// The perf type for raw events, and the CPUs its PMU covers if it is a hybrid one.
pub fn core_pmu() -> (u32, Option<Vec<usize>>) {
    if fs::metadata(format!("{SOURCES}/cpu")).is_ok() {
        return (bindings::PERF_TYPE_RAW, None);
    }
    let core_type = fs::read_to_string(format!("{SOURCES}/cpu_core/type"))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    match core_type {
        Some(t) => {
            let cpus = fs::read_to_string(format!("{SOURCES}/cpu_core/cpus"))
                .ok()
                .map(|l| parse_cpu_list(&l));
            (t, cpus)
        }
        None => (bindings::PERF_TYPE_RAW, None),
    }
}

/// The lowest CPU this process may run on (and, if given, that is in `among`).
pub fn first_allowed_cpu(among: Option<&[usize]>) -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    let allowed = |cpu: usize| !ok || unsafe { libc::CPU_ISSET(cpu, &set) };
    let candidates: Vec<usize> = match among {
        Some(list) => list.to_vec(),
        None => (0..libc::CPU_SETSIZE as usize).collect(),
    };
    candidates.into_iter().find(|&c| allowed(c)).unwrap_or(0)
}

thread_local! {
    static PINNED_TO: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Pins the calling thread to `cpu`, once per thread.
pub fn pin_this_thread(cpu: usize) -> Result<(), String> {
    if PINNED_TO.get() == Some(cpu) {
        return Ok(());
    }
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(format!(
            "pinning the measuring thread to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    PINNED_TO.set(Some(cpu));
    Ok(())
}

/// Parses sysfs CPU lists such as `0-7,16-23`.
fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists_parse_ranges_and_singletons() {
        assert_eq!(super::parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(super::parse_cpu_list(""), Vec::<usize>::new());
    }
}
