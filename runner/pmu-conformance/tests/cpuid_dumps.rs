//! CPU identification and event resolution, replayed from CPUID dumps.
//!
//! Each file under `tests/cpuid/` holds a dump (as `pmu-conformance env
//! --cpuid` prints it) and what the runner must conclude from it: the derived
//! environment id, the hypervisor, the PMU version, and each listed event's
//! encoding (or the start of its unsupported reason) and any erratum that
//! relaxes it, and which environments
//! have expectations recorded for the host class it derives. One trial per
//! file, so a user's dump from a new machine becomes a test by adding one file.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use libtest_mimic::Failed;
use pmu_conformance::cpu::{CpuidDump, CpuidReader};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::fingerprint::Fingerprint;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    expect: Expect,
    leaves: CpuidDump,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    derived_id: String,
    hypervisor: Option<String>,
    xen_version: Option<String>,
    pmu_version: u8,
    #[serde(default)]
    amd_perfmon_v2: bool,
    events: BTreeMap<String, String>,
    /// Environments whose guests on this machine derive this dump's host
    /// class, so expected/<environment>/<derived id>/ must exist: what ties a
    /// recorded set to the machines it was recorded on.
    #[serde(default)]
    recorded_in: Vec<String>,
    /// Events a published erratum makes overcount here, with the erratum's
    /// id; every other resolved event must have none.
    #[serde(default)]
    errata: BTreeMap<String, String>,
    /// The run warns that the guest's CPU model may not be its host's.
    #[serde(default)]
    cpu_model_warning: bool,
}

fn check(path: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let recorded: Recorded = serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let table = EventTable::builtin();
    let fingerprint = Fingerprint::from_parts(&table, &CpuidReader::replay(recorded.leaves), None);
    let expect = &recorded.expect;
    let mut problems = Vec::new();
    let mut compare = |what: &str, got: String, want: String| {
        if got != want {
            problems.push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    };
    compare("derived id", fingerprint.derived_id.clone(), expect.derived_id.clone());
    compare(
        "hypervisor",
        format!("{:?}", fingerprint.hypervisor.as_ref().map(|h| &h.name)),
        format!("{:?}", expect.hypervisor.as_ref()),
    );
    compare(
        "xen version",
        format!(
            "{:?}",
            fingerprint.hypervisor.as_ref().and_then(|h| h.xen_version.as_ref())
        ),
        format!("{:?}", expect.xen_version.as_ref()),
    );
    compare(
        "PMU version",
        fingerprint.pmu.architectural.version.to_string(),
        expect.pmu_version.to_string(),
    );
    compare(
        "CPU model warning",
        fingerprint.cpu_model_warning(&table).is_some().to_string(),
        expect.cpu_model_warning.to_string(),
    );
    compare(
        "PerfMonV2",
        fingerprint.pmu.amd_perfmon_v2.to_string(),
        expect.amd_perfmon_v2.to_string(),
    );
    let expected = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../expected");
    for environment in &expect.recorded_in {
        let folder = expected
            .join(environment.replace(':', "-"))
            .join(&fingerprint.derived_id);
        if !folder.is_dir() {
            problems.push(format!(
                "recorded_in: expected/{}/{} does not exist, so `{environment}` on this machine would run unrecorded",
                environment.replace(':', "-"),
                fingerprint.derived_id
            ));
        }
    }
    for (event, want) in &expect.events {
        let got = match table.resolve(
            event,
            &fingerprint.cpu.identity,
            &fingerprint.pmu.architectural,
            &fingerprint.cpu.features,
        ) {
            Ok(resolved) => {
                let erratum = resolved.erratum.map(|e| e.id.to_owned());
                if erratum != expect.errata.get(event).cloned() {
                    problems.push(format!(
                        "{event}: erratum {erratum:?}, expected {:?}",
                        expect.errata.get(event)
                    ));
                }
                resolved.encoding.to_string()
            }
            Err(reason) => format!("unsupported: {reason}"),
        };
        // Unsupported reasons are matched by their start; encodings exactly.
        let matches = if want.starts_with("unsupported:") {
            got.starts_with(want.as_str())
        } else {
            got == *want
        };
        if !matches {
            problems.push(format!("{event}: got {got:?}, expected {want:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn main() -> ExitCode {
    common::run_per_file("cpuid", "cpuid", check)
}
