//! Environments: where a run happens, and under which id its expectations
//! are recorded.
//!
//! `matrices/*.yaml` lists the known environments. Each names its probe,
//! which decides what executes its cases and which cases it selects:
//!
//! - `linux`: perf_event_open on the machine the runner is on;
//! - `sim`: the reference model, with a preset CPU and named faults;
//! - `qemu`: the probe kernel, booted under QEMU with TCG or KVM.
//!
//! Without `--env`, a run happens on this machine under the id its
//! fingerprint derives (for example `kvm-amd-zen-nopmu`); `--env ID` picks a
//! listed environment, or labels a run on this machine with an id of the
//! user's choosing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use pmu_model::{Config, Fault, Faults};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::case::Case;
use crate::input_error::{InputError, InputErrors, SourceText};
use crate::vocabulary::Accel;
use crate::vocabulary::ProbeKind;

/// What runs an environment's cases.
#[derive(Clone, Debug)]
pub enum Target {
    /// perf_event_open on the machine the runner is on.
    Local,
    /// The reference model.
    Sim { preset: String, config: Config },
    /// The probe kernel under QEMU.
    Qemu { accel: Accel },
}

impl Target {
    /// Whether this target runs cases written for `probe`.
    pub fn serves(&self, probe: ProbeKind) -> bool {
        match self {
            Target::Local => probe == ProbeKind::Linux,
            Target::Sim { .. } => true,
            Target::Qemu { .. } => probe == ProbeKind::Kernel,
        }
    }

    pub fn probe_name(&self) -> &'static str {
        match self {
            Target::Local => "linux",
            Target::Sim { .. } => "sim",
            Target::Qemu { .. } => "qemu",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub id: String,
    pub about: String,
    pub target: Target,
    /// Where it was defined, or `None` for an id derived or given on the command line.
    pub defined_at: Option<String>,
}

impl Environment {
    /// The folder under `expected/` that holds this environment's expectations.
    pub fn expected_dir_name(&self) -> String {
        self.id.replace(':', "-")
    }

    pub fn selects(&self, case: &Case) -> bool {
        self.target.serves(case.probe)
    }
}

/// Every environment the matrices list, by id.
#[derive(Clone, Debug, Default)]
pub struct Matrices {
    pub environments: BTreeMap<String, Environment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    #[allow(dead_code, reason = "documentation for readers of the file")]
    about: String,
    environments: Vec<EnvironmentEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentEntry {
    id: Spanned<String>,
    about: String,
    probe: Spanned<String>,
    /// sim: a model preset.
    model: Option<Spanned<String>>,
    /// sim: faults, by known-bug id, with an optional rate.
    #[serde(default)]
    faults: Vec<Spanned<FaultEntry>>,
    /// sim: the seed.
    seed: Option<u64>,
    /// qemu: `tcg` or `kvm`.
    accel: Option<Spanned<String>>,
}

/// `lost-pmi` or `{id: lost-pmi, rate: 0.01}`.
struct FaultEntry {
    id: String,
    rate: Option<f64>,
}

// By hand, not an untagged enum: serde's untagged enums lose `Spanned`'s location.
impl<'de> Deserialize<'de> for FaultEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FaultEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a fault id, or `{id: <fault>, rate: <probability>}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FaultEntry, E> {
                Ok(FaultEntry {
                    id: v.to_owned(),
                    rate: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FaultEntry, A::Error> {
                let (mut id, mut rate) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => id = Some(map.next_value::<String>()?),
                        "rate" => rate = Some(map.next_value::<f64>()?),
                        other => return Err(de::Error::unknown_field(other, &["id", "rate"])),
                    }
                }
                Ok(FaultEntry {
                    id: id.ok_or_else(|| de::Error::missing_field("id"))?,
                    rate,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Matrices {
    /// The matrices compiled into the binary from `matrices/*.yaml`.
    pub fn builtin() -> Result<Matrices, InputErrors> {
        let sources: Vec<_> = crate::builtin::MATRICES
            .iter()
            .map(|(p, t)| SourceText::new(*p, *t))
            .collect();
        Matrices::load(&sources)
    }

    pub fn from_dir(dir: &Path) -> Result<Matrices, InputErrors> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| InputError::whole_file(dir.display().to_string(), format!("cannot read: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        let mut sources = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| InputError::whole_file(path.display().to_string(), format!("cannot read: {e}")))?;
            sources.push(SourceText::new(path.display().to_string(), text));
        }
        Matrices::load(&sources)
    }

    pub fn load(sources: &[SourceText]) -> Result<Matrices, InputErrors> {
        let mut errors = InputErrors::default();
        let mut environments = BTreeMap::new();
        for source in sources {
            let file: MatrixFile = match source.parse_yaml() {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for e in file.environments {
                let Some(target) = target(source, &e, &mut errors) else {
                    continue;
                };
                let env = Environment {
                    id: e.id.value.clone(),
                    about: e.about,
                    target,
                    defined_at: Some(format!("{}:{}", source.path, e.id.referenced.line())),
                };
                if let Some(first) = environments.insert(e.id.value.clone(), env) {
                    errors.push(source.error_at(
                        &e.id,
                        format!(
                            "environment `{}` is already defined at {}",
                            e.id.value,
                            first.defined_at.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        errors.or_ok(Matrices { environments })
    }

    /// The environment for a run: the one `--env` names, or this machine under
    /// `derived_id`. An unlisted id labels a run on this machine.
    pub fn pick(&self, requested: Option<&str>, derived_id: &str) -> Environment {
        let id = requested.unwrap_or(derived_id);
        self.environments.get(id).cloned().unwrap_or_else(|| Environment {
            id: id.to_owned(),
            about: if requested.is_some() {
                "this machine, under an id given on the command line".to_owned()
            } else {
                "this machine, under the id its fingerprint derives".to_owned()
            },
            target: Target::Local,
            defined_at: None,
        })
    }
}

/// Validates an entry's probe and the fields that belong to it.
fn target(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<Target> {
    let only = |field: &str, probe: &str, at: Option<(u64, u64)>, errors: &mut InputErrors| {
        if let Some((line, column)) = at {
            errors.push(source.error_at_position(line, column, format!("`{field}` is for `{probe}` environments")));
        }
    };
    let at = |s: &Option<Spanned<String>>| s.as_ref().map(|s| (s.referenced.line(), s.referenced.column()));
    match e.probe.value.as_str() {
        "linux" => {
            only("model", "sim", at(&e.model), errors);
            only("accel", "qemu", at(&e.accel), errors);
            Some(Target::Local)
        }
        "qemu" => {
            only("model", "sim", at(&e.model), errors);
            let accel = match e.accel.as_ref().map(|a| a.value.as_str()) {
                Some("tcg") => Accel::Tcg,
                Some("kvm") => Accel::Kvm,
                Some(other) => {
                    let a = e.accel.as_ref().expect("matched Some");
                    errors.push(source.error_at(a, format!("unknown accel `{other}`; use tcg or kvm")));
                    return None;
                }
                None => {
                    errors.push(source.error_at(&e.probe, "a `qemu` environment needs `accel: tcg` or `accel: kvm`"));
                    return None;
                }
            };
            Some(Target::Qemu { accel })
        }
        "sim" => {
            only("accel", "qemu", at(&e.accel), errors);
            let Some(model) = &e.model else {
                errors.push(source.error_at(
                    &e.probe,
                    format!(
                        "a `sim` environment needs a `model`: one of {}",
                        Config::PRESETS.join(", ")
                    ),
                ));
                return None;
            };
            let Some(mut config) = Config::preset(&model.value) else {
                errors.push(source.error_at(
                    model,
                    format!("unknown model `{}`; known: {}", model.value, Config::PRESETS.join(", ")),
                ));
                return None;
            };
            let mut faults = Vec::new();
            for f in &e.faults {
                let Some(fault) = Fault::from_id(&f.value.id) else {
                    let known: Vec<_> = Fault::ALL.iter().map(Fault::id).collect();
                    errors.push(source.error_at(
                        f,
                        format!("unknown fault `{}`; known: {}", f.value.id, known.join(", ")),
                    ));
                    continue;
                };
                match (f.value.rate, fault.rate()) {
                    (Some(r), Some(_)) if (0.0..=1.0).contains(&r) => faults.push(fault.with_rate(r)),
                    (Some(r), Some(_)) => errors.push(source.error_at(f, format!("rate {r} is not a probability"))),
                    (Some(_), None) => {
                        errors.push(source.error_at(f, format!("`{}` always strikes; it takes no rate", f.value.id)))
                    }
                    (None, _) => faults.push(fault),
                }
            }
            config.faults = Faults(faults);
            if let Some(seed) = e.seed {
                config.seed = seed;
            }
            Some(Target::Sim {
                preset: model.value.clone(),
                config,
            })
        }
        other => {
            errors.push(source.error_at(&e.probe, format!("unknown probe `{other}`; known: linux, sim, qemu")));
            None
        }
    }
}
