//! Environments: where a run happens, and under which id its expectations
//! are recorded.
//!
//! `matrices/*.yaml` lists the known environments. An environment names the
//! probe that serves it and so which cases it selects. Without `--env`, a run
//! happens on this machine under the id its fingerprint derives (for example
//! `kvm-amd-zen-nopmu`); `--env ID` picks a listed environment, or labels a
//! run on this machine with an id of the user's choosing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::case::{Case, ProbeKind};
use crate::input_error::{InputError, InputErrors, SourceText};

/// Which probe serves an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// perf_event_open on the machine the runner is on.
    Local,
}

impl Backend {
    const ALL: [(Backend, &'static str); 1] = [(Backend::Local, "linux")];

    pub fn name(self) -> &'static str {
        Backend::ALL
            .iter()
            .find(|(b, _)| *b == self)
            .map(|(_, n)| *n)
            .expect("every backend is named")
    }

    /// Whether this backend runs cases written for `probe`.
    pub fn serves(self, probe: ProbeKind) -> bool {
        match self {
            Backend::Local => probe == ProbeKind::Linux,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub id: String,
    pub about: String,
    pub backend: Backend,
    /// Where it was defined, or `None` for an id derived or given on the command line.
    pub defined_at: Option<String>,
}

impl Environment {
    /// The folder under `expected/` that holds this environment's expectations.
    pub fn expected_dir_name(&self) -> String {
        self.id.replace(':', "-")
    }

    pub fn selects(&self, case: &Case) -> bool {
        self.backend.serves(case.probe)
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
                let Some(backend) = Backend::ALL.iter().find(|(_, n)| *n == e.probe.value).map(|(b, _)| *b) else {
                    let known: Vec<_> = Backend::ALL.iter().map(|(_, n)| *n).collect();
                    errors.push(source.error_at(
                        &e.probe,
                        format!("unknown probe `{}`; known: {}", e.probe.value, known.join(", ")),
                    ));
                    continue;
                };
                let env = Environment {
                    id: e.id.value.clone(),
                    about: e.about,
                    backend,
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
            backend: Backend::Local,
            defined_at: None,
        })
    }
}
