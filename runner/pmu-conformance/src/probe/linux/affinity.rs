//! Which CPU windows run on, and which PMU type raw events use.
//!
//! Windows run pinned to one CPU so a counter never migrates mid-window. On
//! hybrid Intel parts Linux drives each core type with its own PMU, with its
//! own dynamic type: `cpu_core` for the P-cores, `cpu_atom` (and on some
//! parts `cpu_lowpower`) for the E-cores, each covering the CPUs its `cpus`
//! file lists. A window for one core type is pinned to one of its CPUs and
//! opened with its type.

use std::cell::Cell;
use std::fs;
use std::path::Path;

use perf_event_open_sys::bindings;

const SOURCES: &str = "/sys/bus/event_source/devices";

/// One core PMU: where its windows run and how raw events name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreType {
    /// `cpu` on a uniform machine; `cpu_core`, `cpu_atom`, … on a hybrid one.
    pub name: String,
    /// The perf type raw events are opened with: PERF_TYPE_RAW for `cpu`.
    pub perf_type: u32,
    /// The CPUs it covers, where it covers only some.
    pub cpus: Option<Vec<usize>>,
}

/// This machine's core PMUs (see [`core_types_under`]).
pub fn core_types() -> Vec<CoreType> {
    core_types_under(Path::new(SOURCES))
}

/// The core PMUs under `sources` (a copy of /sys/bus/event_source/devices
/// in tests): `cpu` alone on a uniform machine, else every `cpu_*` with a
/// readable type, `cpu_core` first. With none at all (no PMU), `cpu`, so
/// that an open fails and says why.
pub fn core_types_under(sources: &Path) -> Vec<CoreType> {
    let uniform = || CoreType {
        name: "cpu".to_owned(),
        perf_type: bindings::PERF_TYPE_RAW,
        cpus: None,
    };
    if fs::metadata(sources.join("cpu")).is_ok() {
        return vec![uniform()];
    }
    let mut found: Vec<CoreType> = fs::read_dir(sources)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let kind = name.strip_prefix("cpu_")?;
                    if kind.is_empty() {
                        return None;
                    }
                    let perf_type = fs::read_to_string(e.path().join("type")).ok()?.trim().parse().ok()?;
                    let cpus = fs::read_to_string(e.path().join("cpus"))
                        .ok()
                        .map(|l| parse_cpu_list(&l));
                    Some(CoreType { name, perf_type, cpus })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|c| (c.name != "cpu_core", c.name.clone()));
    if found.is_empty() { vec![uniform()] } else { found }
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
    use super::*;

    fn write(dir: &Path, pmu: &str, perf_type: &str, cpus: Option<&str>) {
        let d = dir.join(pmu);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("type"), perf_type).unwrap();
        if let Some(c) = cpus {
            fs::write(d.join("cpus"), c).unwrap();
        }
    }

    #[test]
    fn a_hybrid_part_has_one_core_type_per_cpu_pmu_p_cores_first() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "cpu_atom", "10\n", Some("16-23\n"));
        write(dir.path(), "cpu_core", "4\n", Some("0-15\n"));
        write(dir.path(), "software", "1\n", None);
        let types = core_types_under(dir.path());
        assert_eq!(
            types,
            [
                CoreType {
                    name: "cpu_core".into(),
                    perf_type: 4,
                    cpus: Some((0..16).collect())
                },
                CoreType {
                    name: "cpu_atom".into(),
                    perf_type: 10,
                    cpus: Some((16..24).collect())
                },
            ]
        );
    }

    #[test]
    fn a_uniform_machine_or_none_at_all_has_the_one_cpu_pmu() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(core_types_under(dir.path())[0].name, "cpu");
        write(dir.path(), "cpu", "4\n", None);
        write(dir.path(), "cpu_core", "8\n", None);
        let types = core_types_under(dir.path());
        assert_eq!((types.len(), types[0].perf_type), (1, bindings::PERF_TYPE_RAW));
    }

    #[test]
    fn cpu_lists_parse_ranges_and_singletons() {
        assert_eq!(super::parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(super::parse_cpu_list(""), Vec::<usize>::new());
    }
}
