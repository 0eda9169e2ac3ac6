//! Environments: where a run happens, and under which id its expectations
//! are recorded.
//!
//! `matrices/*.yaml` lists the known environments. Each names its kind (the
//! `probe:` field), which decides what executes its cases and which cases it
//! selects:
//!
//! - `linux`: perf_event_open on the machine the runner is on;
//! - `sim`: the reference model, with a preset CPU and named faults;
//! - `qemu`: the probe kernel, booted under QEMU with TCG or KVM;
//! - `qemu-linux`: a Linux guest under QEMU carrying the runner;
//! - `qemu-xen-dom0`: Xen under QEMU, with the probe kernel as its PVH dom0;
//! - `qemu-xen-domu`: Xen under QEMU, with a Linux PV dom0 carrying the
//!   runner, which runs an `xl` environment (`runs:`) inside it;
//! - `xl`: from a Xen dom0, the probe kernel as a PVH or HVM domU;
//! - `ssh`: a remote machine, reached with OpenSSH's client.
//!
//! A run names its environment one of three ways ([`Choice`]): not at all,
//! and it runs on this machine under the id its fingerprint derives (for
//! example `kvm-amd-zen-nopmu`); `--env ID`, which must be listed or be that
//! derived id; or `--label NAME`, a free name for a run on this machine (an
//! instance type, say). Ids and labels are [`EnvironmentId`]s, so each names
//! exactly one folder under `expected/` and none can leave it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pmu_model::{Config, Fault, Faults};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::case::Case;
use crate::executor::qemu::launcher::Machine;
use crate::executor::xl::config::GuestType;
use crate::input_error::{InputErrors, SourceText};
use crate::vocabulary::{Accel, EnvironmentId, IdError, ProbeKind};
use crate::yaml_number::{Meaning, Whole};

/// A model's seed: any 64-bit number.
struct Seed;

impl Meaning for Seed {
    const NAME: &'static str = "seed";
}

/// What runs an environment's cases.
#[derive(Clone, Debug)]
pub enum Target {
    /// perf_event_open on the machine the runner is on.
    Local,
    /// The reference model.
    Sim { preset: String, config: Config },
    /// The probe kernel under QEMU.
    Qemu(ProbeGuest),
    /// A Linux guest under QEMU, carrying the runner, which runs the linux
    /// cases inside it.
    QemuLinux(Box<LinuxGuest>),
    /// A remote machine: the runner copies itself there over ssh, runs the
    /// linux cases, and brings the report back.
    Ssh(Box<Remote>),
    /// From a Xen dom0: the probe kernel as a domU, through `xl create`.
    Xl(XlDomain),
}

/// A probe-kernel domU that the `xl` executor creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XlDomain {
    pub guest: GuestType,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// A Linux domU carrying the runner, which runs the linux cases inside
    /// it, with this kernel; none for the probe kernel's domUs.
    pub linux: Option<GuestKernel>,
    /// A Linux domU's, from `xl create` to its report.
    pub deadline: Duration,
}

impl XlDomain {
    /// This domain as a one-environment matrix under `id`, which loads back
    /// to the same domain: what a `qemu-xen-domu` dom0 runs.
    /// A Linux domU's kernel is written as `kernel` (the path it has in the dom0).
    pub fn matrix(&self, id: &EnvironmentId, kernel: &str) -> String {
        let linux = match self.linux {
            Some(_) => format!("    kernel: {kernel}\n    deadline: {}\n", self.deadline.as_secs()),
            None => String::new(),
        };
        format!(
            "about: the domU a qemu-xen-domu dom0 runs\nenvironments:\n  - id: {id}\n    about: as on the host\n    \
             probe: xl\n    guest: {}\n    memory: {}\n    vcpus: {}\n{linux}",
            self.guest.name(),
            self.memory_mib,
            self.vcpus
        )
    }
}

/// Xen under QEMU with a Linux PV dom0 that carries the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenDom0 {
    pub xen: XenBoot,
    /// The `xl` environment the dom0 runs.
    pub runs: EnvironmentId,
    /// Its domain.
    pub domu: XlDomain,
}

/// How a remote machine is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub host: String,
    pub user: Option<String>,
    pub port: u16,
    /// `ssh -i`: the private key to offer (and no other).
    pub identity: Option<PathBuf>,
    /// `UserKnownHostsFile`: where the remote's host key is checked (and,
    /// the first time, added: `StrictHostKeyChecking=accept-new`).
    pub known_hosts: Option<PathBuf>,
    /// From the connection's start to the report's arrival.
    pub deadline: Duration,
}

/// How the probe kernel is booted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeGuest {
    pub accel: Accel,
    /// QEMU's `-cpu`, where named (else TCG's default, or KVM's host CPU).
    pub cpu: Option<String>,
    /// QEMU's `-M`, where named (else microvm under KVM, pc under TCG).
    pub machine: Option<Machine>,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// Added after the verified arguments, each one argument.
    pub extra_args: Vec<String>,
    /// Where QEMU boots Xen, with the probe kernel as its PVH dom0.
    pub xen: Option<XenBoot>,
}

/// Xen under QEMU: which Xen, and what its command line adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenBoot {
    pub hypervisor: XenImage,
    /// Words added to Xen's command line after the verified ones
    /// (`vpmu=1`, say), each one word.
    pub args: Vec<String>,
}

/// The Xen hypervisor QEMU boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenImage {
    /// An uncompressed `xen` (multiboot1 ELF) at this path.
    Path(PathBuf),
    /// Debian's `xen-hypervisor-*-amd64`, which `cargo xtask xen` fetches
    /// with `apt-get download` and unpacks without installing.
    Debian,
}

/// How a Linux guest is booted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxGuest {
    pub accel: Accel,
    /// QEMU's `-M`: `q35` (the default), `pc` or `microvm`.
    pub machine: Machine,
    /// QEMU's `-cpu`: `max` under TCG and `host` under KVM unless named.
    pub cpu: Option<String>,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: GuestKernel,
    /// Added after the verified arguments, each one argument.
    pub extra_args: Vec<String>,
    /// From QEMU's start to the guest's power-off.
    pub deadline: Duration,
    /// Where the guest is Xen's PV dom0 (`qemu-xen-domu`): QEMU boots Xen,
    /// the kernel is Debian's dom0 kernel, and the runner runs an `xl`
    /// environment's kernel cases in domUs.
    pub dom0: Option<XenDom0>,
}

/// The guest's Linux kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestKernel {
    /// A bzImage at this path (relative to the working directory).
    Path(PathBuf),
    /// Debian's cloud kernel, which `cargo xtask guest-kernel` fetches with
    /// `apt-get download` and unpacks without installing.
    Debian,
}

impl Target {
    /// Whether this target runs cases written for `probe`.
    pub fn serves(&self, probe: ProbeKind) -> bool {
        match self {
            Target::Local => probe == ProbeKind::Linux,
            Target::Sim { .. } => true,
            Target::Qemu(_) => probe == ProbeKind::Kernel,
            Target::QemuLinux(guest) if guest.dom0.is_some() => {
                let linux = guest.dom0.as_ref().is_some_and(|d| d.domu.linux.is_some());
                probe == if linux { ProbeKind::Linux } else { ProbeKind::Kernel }
            }
            Target::Xl(domain) if domain.linux.is_some() => probe == ProbeKind::Linux,
            Target::Xl(_) => probe == ProbeKind::Kernel,
            Target::QemuLinux(_) | Target::Ssh(_) => probe == ProbeKind::Linux,
        }
    }

    /// The kind, as matrices write it in `probe:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Local => "linux",
            Target::Sim { .. } => "sim",
            Target::Qemu(guest) if guest.xen.is_some() => "qemu-xen-dom0",
            Target::Qemu(_) => "qemu",
            Target::QemuLinux(guest) if guest.dom0.is_some() => "qemu-xen-domu",
            Target::QemuLinux(_) => "qemu-linux",
            Target::Ssh(_) => "ssh",
            Target::Xl(_) => "xl",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub id: EnvironmentId,
    pub about: String,
    pub target: Target,
    /// Where it was defined, or `None` for an id derived or given on the command line.
    pub defined_at: Option<String>,
}

impl Environment {
    pub fn selects(&self, case: &Case) -> bool {
        self.target.serves(case.probe)
    }
}

/// How a run names its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    /// This machine, under the id its fingerprint derives.
    Derived,
    /// `--env ID`: a listed environment, or this machine's derived id.
    Named(&'a str),
    /// `--label NAME`: this machine, under a name of the user's choosing.
    Label(&'a str),
}

/// Why a run's environment could not be chosen. All are usage errors.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("{flag}: {error}")]
    BadId {
        flag: &'static str,
        #[source]
        error: IdError,
    },
    #[error(
        "unknown environment `{id}`{suggestion}\n  known: {known}\n  this machine derives `{derived}`; \
         to label a run on this machine, use `--label {id}`"
    )]
    Unknown {
        id: String,
        suggestion: String,
        known: String,
        derived: String,
    },
    #[error(
        "`{label}` is the {kind} environment defined at {defined_at}; a label names a run on this machine, \
         so choose another label, or run it with `--env {label}`"
    )]
    LabelIsAnEnvironment {
        label: String,
        kind: &'static str,
        defined_at: String,
    },
    #[error(
        "label `{label}` would record into expected/{folder}/, which environment `{other}` records into; \
         choose another label"
    )]
    LabelSharesAFolder {
        label: String,
        folder: String,
        other: String,
    },
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
    faults: Option<Spanned<Vec<Spanned<FaultEntry>>>>,
    /// sim: the seed.
    seed: Option<Spanned<Whole<Seed>>>,
    /// sim: run the model as a guest of this hypervisor (its CPUID
    /// signature, and Xen's physical LVTPC), so fingerprints and diagnoses
    /// see it.
    hypervisor: Option<Spanned<String>>,
    /// sim, a hypervisor preset: which releases it stands for.
    versions: Option<Spanned<String>>,
    /// sim, a hypervisor preset: where that is written down (known-bugs.yaml's forms).
    sources: Option<Spanned<Vec<String>>>,
    /// qemu, qemu-linux: `tcg` or `kvm`.
    accel: Option<Spanned<String>>,
    /// qemu, qemu-linux: QEMU's `-cpu` model.
    cpu: Option<Spanned<String>>,
    /// qemu, qemu-linux: QEMU's machine type: q35, pc or microvm.
    machine: Option<Spanned<String>>,
    /// qemu-linux: guest memory, MiB.
    memory: Option<Spanned<u32>>,
    /// qemu-linux: vCPUs.
    vcpus: Option<Spanned<u32>>,
    /// qemu-linux: the guest kernel: a path, or `debian`.
    kernel: Option<Spanned<String>>,
    /// qemu-linux: QEMU arguments after the verified ones, as a list.
    extra_args: Option<Spanned<Vec<String>>>,
    /// qemu-linux: seconds from QEMU's start to the guest's power-off;
    /// ssh: from the connection to the report.
    deadline: Option<Spanned<u64>>,
    /// ssh: the remote's host name or address.
    host: Option<Spanned<String>>,
    /// ssh: the user to log in as (default: ssh's own default).
    user: Option<Spanned<String>>,
    /// ssh: the port (default 22); read wide, so that 70000 is a located
    /// range error, not a type error that stops the file.
    port: Option<Spanned<u64>>,
    /// ssh: the private key file.
    identity: Option<Spanned<String>>,
    /// ssh: the known-hosts file.
    known_hosts: Option<Spanned<String>>,
    /// qemu-xen-dom0: the Xen hypervisor: a path, or `debian`.
    xen: Option<Spanned<String>>,
    /// qemu-xen-dom0: words added to Xen's command line, as a list.
    xen_args: Option<Spanned<Vec<String>>>,
    /// xl: `pvh` (the default) or `hvm`.
    guest: Option<Spanned<String>>,
    /// qemu-xen-domu: the `xl` environment its dom0 runs.
    runs: Option<Spanned<String>>,
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

    /// One matrix file, or every `*.yaml` file directly in a folder, in name order.
    pub fn from_path(path: &Path) -> Result<Matrices, InputErrors> {
        if path.is_dir() {
            return Matrices::load(&crate::input_file::yaml_sources(path, "matrix")?);
        }
        let shown = path.display().to_string();
        let text = crate::input_file::read(path, crate::input_file::YAML_LIMIT).map_err(|e| {
            InputErrors::from(crate::input_error::InputError::whole_file(
                &shown,
                format!("cannot read this matrix file: {e}"),
            ))
        })?;
        Matrices::load(&[SourceText::new(shown, text)])
    }

    pub fn load(sources: &[SourceText]) -> Result<Matrices, InputErrors> {
        let mut errors = InputErrors::default();
        let mut environments: BTreeMap<String, Environment> = BTreeMap::new();
        // Which id records into each folder under expected/.
        let mut folders: BTreeMap<String, (String, String)> = BTreeMap::new();
        // Each qemu-xen-domu environment's `runs:`, checked once all are loaded.
        let mut runs: Vec<(&SourceText, String, Spanned<String>)> = Vec::new();
        for source in sources {
            let file: MatrixFile = match source.parse_yaml() {
                Ok(f) => f,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for e in file.environments {
                let id = EnvironmentId::parse(&e.id.value).map_err(|why| source.error_at(&e.id, why.to_string()));
                let target = target(source, &e, &mut errors);
                let id = match id {
                    Ok(id) => id,
                    Err(error) => {
                        errors.push(error);
                        continue;
                    }
                };
                let defined_at = format!("{}:{}", source.path, e.id.referenced.line());
                if let Some(first) = environments.get(id.as_str()) {
                    errors.push(source.error_at(
                        &e.id,
                        format!(
                            "environment `{id}` is already defined at {}",
                            first.defined_at.clone().unwrap_or_default()
                        ),
                    ));
                    continue;
                }
                if let Some((other, at)) = folders.get(&id.folder()) {
                    errors.push(source.error_at(
                        &e.id,
                        format!(
                            "`{id}` and `{other}` (defined at {at}) would both record into expected/{}/; rename one",
                            id.folder()
                        ),
                    ));
                    continue;
                }
                let Some(target) = target else { continue };
                if let (Target::QemuLinux(_), Some(named)) = (&target, &e.runs) {
                    runs.push((source, id.to_string(), named.clone()));
                }
                folders.insert(id.folder(), (id.to_string(), defined_at.clone()));
                environments.insert(
                    id.to_string(),
                    Environment {
                        id,
                        about: e.about,
                        target,
                        defined_at: Some(defined_at),
                    },
                );
            }
        }
        for (source, id, named) in runs {
            let domu = match environments.get(&named.value).map(|e| &e.target) {
                Some(Target::Xl(domu)) => domu.clone(),
                Some(other) => {
                    errors.push(source.error_at(
                        &named,
                        format!(
                            "`{}` is a `{}` environment; `runs` names an `xl` one",
                            named.value,
                            other.kind()
                        ),
                    ));
                    continue;
                }
                None => {
                    errors.push(source.error_at(
                        &named,
                        format!("no `xl` environment `{}` is defined beside this one", named.value),
                    ));
                    continue;
                }
            };
            if let Some(Target::QemuLinux(guest)) = environments.get_mut(&id).map(|e| &mut e.target)
                && let Some(dom0) = guest.dom0.as_mut()
            {
                dom0.domu = domu;
            }
        }
        errors.or_ok(Matrices { environments })
    }

    /// The environment for a run, as [`Choice`] names it; `derived` is this
    /// machine's derived id.
    pub fn pick(&self, choice: Choice<'_>, derived: &str) -> Result<Environment, PickError> {
        let local = |id: EnvironmentId, about: &str| Environment {
            id,
            about: about.to_owned(),
            target: Target::Local,
            defined_at: None,
        };
        let parse = |flag: &'static str, text: &str| {
            EnvironmentId::parse(text).map_err(|error| PickError::BadId { flag, error })
        };
        match choice {
            Choice::Derived => {
                let id = parse("this machine's derived id", derived)?;
                Ok(self
                    .environments
                    .get(derived)
                    .cloned()
                    .unwrap_or_else(|| local(id, "this machine, under the id its fingerprint derives")))
            }
            Choice::Named(name) => {
                let id = parse("--env", name)?;
                if let Some(env) = self.environments.get(name) {
                    return Ok(env.clone());
                }
                if name == derived {
                    return Ok(local(id, "this machine, under the id its fingerprint derives"));
                }
                let mut known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
                known.push(derived);
                known.sort_unstable();
                known.dedup();
                let nearest = known
                    .iter()
                    .map(|k| (strsim::levenshtein(name, k), *k))
                    .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
                    .min();
                Err(PickError::Unknown {
                    id: name.to_owned(),
                    suggestion: nearest.map_or_else(String::new, |(_, k)| format!("; did you mean `{k}`?")),
                    known: known.join(", "),
                    derived: derived.to_owned(),
                })
            }
            Choice::Label(label) => {
                let id = parse("--label", label)?;
                if let Some(env) = self.environments.get(label) {
                    return match env.target {
                        Target::Local => Ok(env.clone()),
                        _ => Err(PickError::LabelIsAnEnvironment {
                            label: label.to_owned(),
                            kind: env.target.kind(),
                            defined_at: env.defined_at.clone().unwrap_or_default(),
                        }),
                    };
                }
                if let Some(other) = self.environments.values().find(|e| e.id.folder() == id.folder()) {
                    return Err(PickError::LabelSharesAFolder {
                        label: label.to_owned(),
                        folder: id.folder(),
                        other: other.id.to_string(),
                    });
                }
                Ok(local(id, "this machine, under a label given on the command line"))
            }
        }
    }
}

/// A QEMU environment's `accel` (required) and `cpu` (optional).
fn qemu_accel_and_cpu(
    source: &SourceText,
    e: &EnvironmentEntry,
    errors: &mut InputErrors,
) -> Option<(Accel, Option<String>)> {
    let kind = e.probe.value.as_str();
    let accel = match e.accel.as_ref().map(|a| a.value.as_str()) {
        Some("tcg") => Accel::Tcg,
        Some("kvm") => Accel::Kvm,
        Some(other) => {
            let a = e.accel.as_ref().expect("matched Some");
            errors.push(source.error_at(a, format!("unknown accel `{other}`; use tcg or kvm")));
            return None;
        }
        None => {
            errors.push(source.error_at(
                &e.probe,
                format!("a `{kind}` environment needs `accel: tcg` or `accel: kvm`"),
            ));
            return None;
        }
    };
    let cpu = match &e.cpu {
        Some(c) if c.value.is_empty() || c.value.starts_with('-') || c.value.contains(char::is_whitespace) => {
            errors.push(source.error_at(
                c,
                format!(
                    "`{}` is not a QEMU CPU model such as `Skylake-Client`, `EPYC` or `host,pmu=off`",
                    c.value
                ),
            ));
            return None;
        }
        c => c.as_ref().map(|c| c.value.clone()),
    };
    Some((accel, cpu))
}

/// A QEMU environment's `machine`, where it names one: `Some(None)` where it
/// does not, `None` after an error.
fn machine_of(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<Option<Machine>> {
    let Some(at) = &e.machine else { return Some(None) };
    match at.value.as_str() {
        "q35" => Some(Some(Machine::Q35)),
        "pc" => Some(Some(Machine::Pc)),
        "microvm" => Some(Some(Machine::Microvm)),
        other => {
            errors.push(source.error_at(at, format!("unknown machine `{other}`; use q35, pc or microvm")));
            None
        }
    }
}

/// A whole-number field between `lo` and `hi`, or `default` where it is
/// absent or out of range (an error at it).
fn within(
    source: &SourceText,
    field: &Option<Spanned<u32>>,
    name: &str,
    (lo, hi): (u32, u32),
    default: u32,
    errors: &mut InputErrors,
) -> u32 {
    match field {
        None => default,
        Some(v) if (lo..=hi).contains(&v.value) => v.value,
        Some(v) => {
            errors.push(source.error_at(v, format!("`{name}` must be between {lo} and {hi}")));
            default
        }
    }
}

/// A QEMU environment's `memory` (MiB, default `memory`), `vcpus` and
/// `extra_args`, each checked.
fn sizes_and_extra_args(
    source: &SourceText,
    e: &EnvironmentEntry,
    memory: u32,
    errors: &mut InputErrors,
) -> (u32, u32, Vec<String>) {
    let memory_mib = within(source, &e.memory, "memory", (64, 65_536), memory, errors);
    let vcpus = within(source, &e.vcpus, "vcpus", (1, 64), 1, errors);
    let extra_args = e.extra_args.as_ref().map(|a| a.value.clone()).unwrap_or_default();
    if let Some(args) = &e.extra_args
        && args.value.iter().any(|a| a.is_empty() || a.contains('\0'))
    {
        errors.push(source.error_at(args, "each of `extra_args` is one non-empty QEMU argument"));
    }
    (memory_mib, vcpus, extra_args)
}

/// An `xl` environment's domain: `guest` (default `pvh`), `memory` (MiB,
/// default 32) and `vcpus`, each checked.
fn xl_domain(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<XlDomain> {
    let before = errors.0.len();
    let guest = match e.guest.as_ref().map(|g| g.value.as_str()) {
        None | Some("pvh") => GuestType::Pvh,
        Some("hvm") => GuestType::Hvm,
        Some(other) => {
            let at = e.guest.as_ref().expect("matched Some");
            errors.push(source.error_at(at, format!("unknown guest type `{other}`; use pvh or hvm")));
            GuestType::Pvh
        }
    };
    let linux = match &e.kernel {
        None => None,
        Some(k) if k.value == "debian" => Some(GuestKernel::Debian),
        Some(k) if !k.value.trim().is_empty() && !k.value.contains('\0') => {
            Some(GuestKernel::Path(k.value.clone().into()))
        }
        Some(k) => {
            errors.push(source.error_at(k, "`kernel` is a path to a Linux kernel, or `debian`"));
            None
        }
    };
    // A Linux domU carrying the runner needs more than the probe kernel.
    let memory = if linux.is_some() { 256 } else { 32 };
    let memory_mib = within(source, &e.memory, "memory", (16, 65_536), memory, errors);
    let vcpus = within(source, &e.vcpus, "vcpus", (1, 64), 1, errors);
    let deadline = deadline_of(source, e, 300, 3600, errors);
    if linux.is_none()
        && let Some(d) = &e.deadline
    {
        errors.push(source.error_at(
            d,
            "`deadline` is for an xl environment with a Linux `kernel`; the probe kernel's cases keep their own",
        ));
    }
    (errors.0.len() == before).then_some(XlDomain {
        guest,
        memory_mib,
        vcpus,
        linux,
        deadline,
    })
}

/// A `qemu-xen-domu` environment: Xen under QEMU with Debian's Linux as its
/// PV dom0, which runs the `xl` environment named by `runs` (whose domain
/// is filled in once every environment is loaded).
fn xen_domu(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<LinuxGuest> {
    let (accel, cpu) = qemu_accel_and_cpu(source, e, errors)?;
    let before = errors.0.len();
    let machine = machine_of(source, e, errors).flatten().unwrap_or(Machine::Pc);
    // Xen, a 512 MiB dom0 and its domUs.
    let (memory_mib, vcpus, extra_args) = sizes_and_extra_args(source, e, 1024, errors);
    let xen = xen_boot(source, e, errors);
    let runs = match &e.runs {
        Some(r) => EnvironmentId::parse(&r.value)
            .map_err(|why| errors.push(source.error_at(r, why.to_string())))
            .ok(),
        None => {
            errors.push(source.error_at(
                &e.probe,
                "a `qemu-xen-domu` environment needs `runs`: the `xl` environment its dom0 runs",
            ));
            None
        }
    };
    let deadline = deadline_of(source, e, 180, 3600, errors);
    (errors.0.len() == before).then_some(LinuxGuest {
        accel,
        machine,
        cpu,
        memory_mib,
        vcpus,
        kernel: GuestKernel::Debian,
        extra_args,
        deadline,
        dom0: Some(XenDom0 {
            xen,
            runs: runs?,
            domu: XlDomain {
                guest: GuestType::Pvh,
                memory_mib: 32,
                vcpus: 1,
                linux: None,
                deadline: Duration::from_secs(300),
            },
        }),
    })
}

/// A `qemu-linux` environment: how its guest boots, each field checked.
fn linux_guest(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<LinuxGuest> {
    let (accel, cpu) = qemu_accel_and_cpu(source, e, errors)?;
    let before = errors.0.len();
    let machine = machine_of(source, e, errors).flatten().unwrap_or(Machine::Q35);
    let (memory_mib, vcpus, extra_args) = sizes_and_extra_args(source, e, 512, errors);
    let kernel = match &e.kernel {
        Some(k) if k.value == "debian" => GuestKernel::Debian,
        Some(k) if !k.value.trim().is_empty() => GuestKernel::Path(k.value.clone().into()),
        Some(k) => {
            errors.push(source.error_at(k, "`kernel` is a path to a bzImage, or `debian`"));
            GuestKernel::Debian
        }
        None => {
            errors.push(source.error_at(
                &e.probe,
                "a `qemu-linux` environment needs a `kernel`: a path to a bzImage, or `debian`",
            ));
            GuestKernel::Debian
        }
    };
    let deadline = deadline_of(source, e, 120, 3600, errors);
    (errors.0.len() == before).then_some(LinuxGuest {
        accel,
        machine,
        cpu,
        memory_mib,
        vcpus,
        kernel,
        extra_args,
        deadline,
        dom0: None,
    })
}

/// An environment's `deadline`: seconds, from 1 to `max`, or `default`.
fn deadline_of(
    source: &SourceText,
    e: &EnvironmentEntry,
    default: u64,
    max: u64,
    errors: &mut InputErrors,
) -> Duration {
    let seconds = match &e.deadline {
        None => default,
        Some(d) if (1..=max).contains(&d.value) => d.value,
        Some(d) => {
            errors.push(source.error_at(d, format!("`deadline` is seconds, between 1 and {max}")));
            default
        }
    };
    Duration::from_secs(seconds)
}

/// An `ssh` environment: where the remote is and how to log in, each field checked.
fn remote(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<Remote> {
    let before = errors.0.len();
    // Nothing that ssh would read as an option, and nothing a shell would split.
    let plain = |text: &str| {
        !text.is_empty()
            && !text.starts_with('-')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "._-:[]%".contains(c))
    };
    let host = match &e.host {
        Some(h) if plain(&h.value) => h.value.clone(),
        Some(h) => {
            errors.push(source.error_at(h, format!("`{}` is not a host name or address", h.value)));
            String::new()
        }
        None => {
            errors.push(source.error_at(&e.probe, "an `ssh` environment needs a `host`"));
            String::new()
        }
    };
    let user = match &e.user {
        Some(u) if plain(&u.value) && !u.value.contains(['[', ']', ':', '%']) => Some(u.value.clone()),
        Some(u) => {
            errors.push(source.error_at(u, format!("`{}` is not a user name", u.value)));
            None
        }
        None => None,
    };
    let port = match &e.port {
        Some(p) => u16::try_from(p.value).ok().filter(|&p| p != 0).unwrap_or_else(|| {
            errors.push(source.error_at(p, "`port` is between 1 and 65535"));
            22
        }),
        None => 22,
    };
    let file = |field: &Option<Spanned<String>>, what: &str, errors: &mut InputErrors| match field {
        Some(f) if !f.value.trim().is_empty() && !f.value.contains('\0') => Some(PathBuf::from(&f.value)),
        Some(f) => {
            errors.push(source.error_at(f, format!("`{what}` is a path to a file")));
            None
        }
        None => None,
    };
    let identity = file(&e.identity, "identity", errors);
    let known_hosts = file(&e.known_hosts, "known_hosts", errors);
    let deadline = deadline_of(source, e, 600, 86_400, errors);
    (errors.0.len() == before).then_some(Remote {
        host,
        user,
        port,
        identity,
        known_hosts,
        deadline,
    })
}

/// Every kind an environment's `probe:` may name.
const KINDS: &[&str] = &[
    "linux",
    "sim",
    "qemu",
    "qemu-linux",
    "qemu-xen-dom0",
    "qemu-xen-domu",
    "xl",
    "ssh",
];

/// A `qemu-xen-dom0` environment's Xen: `xen` (default `debian`) and
/// `xen_args`, each checked.
fn xen_boot(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> XenBoot {
    let hypervisor = match &e.xen {
        None => XenImage::Debian,
        Some(x) if x.value == "debian" => XenImage::Debian,
        Some(x) if !x.value.trim().is_empty() && !x.value.contains('\0') => XenImage::Path(x.value.clone().into()),
        Some(x) => {
            errors.push(source.error_at(x, "`xen` is a path to an uncompressed Xen, or `debian`"));
            XenImage::Debian
        }
    };
    let args = e.xen_args.as_ref().map(|a| a.value.clone()).unwrap_or_default();
    if let Some(given) = &e.xen_args
        && given
            .value
            .iter()
            .any(|a| a.is_empty() || a.contains(char::is_whitespace) || a.contains('\0'))
    {
        errors.push(source.error_at(
            given,
            "each of `xen_args` is one word of Xen's command line, such as `vpmu=1`",
        ));
    }
    XenBoot { hypervisor, args }
}

/// Validates an entry's kind and the fields that belong to it: each field
/// given to an environment of another kind is an error at that field.
fn target(source: &SourceText, e: &EnvironmentEntry, errors: &mut InputErrors) -> Option<Target> {
    let kind = e.probe.value.as_str();
    // (field, the kinds it belongs to, where it was given)
    const SIM: &[&str] = &["sim"];
    const QEMU: &[&str] = &["qemu", "qemu-linux", "qemu-xen-dom0", "qemu-xen-domu"];
    const SIZES: &[&str] = &["qemu", "qemu-linux", "qemu-xen-dom0", "qemu-xen-domu", "xl"];
    const XEN: &[&str] = &["qemu-xen-dom0", "qemu-xen-domu"];
    const LINUX_GUEST: &[&str] = &["qemu-linux", "xl"];
    const DOMU: &[&str] = &["qemu-xen-domu"];
    const XL: &[&str] = &["xl"];
    const SSH: &[&str] = &["ssh"];
    const DEADLINE: &[&str] = &["qemu-linux", "qemu-xen-domu", "xl", "ssh"];
    let fields = [
        ("model", SIM, e.model.as_ref().map(|s| location(&s.referenced))),
        ("faults", SIM, e.faults.as_ref().map(|s| location(&s.referenced))),
        ("seed", SIM, e.seed.as_ref().map(|s| location(&s.referenced))),
        (
            "hypervisor",
            SIM,
            e.hypervisor.as_ref().map(|s| location(&s.referenced)),
        ),
        ("versions", SIM, e.versions.as_ref().map(|s| location(&s.referenced))),
        ("sources", SIM, e.sources.as_ref().map(|s| location(&s.referenced))),
        ("accel", QEMU, e.accel.as_ref().map(|s| location(&s.referenced))),
        ("cpu", QEMU, e.cpu.as_ref().map(|s| location(&s.referenced))),
        ("machine", QEMU, e.machine.as_ref().map(|s| location(&s.referenced))),
        ("memory", SIZES, e.memory.as_ref().map(|s| location(&s.referenced))),
        ("vcpus", SIZES, e.vcpus.as_ref().map(|s| location(&s.referenced))),
        ("guest", XL, e.guest.as_ref().map(|s| location(&s.referenced))),
        ("runs", DOMU, e.runs.as_ref().map(|s| location(&s.referenced))),
        (
            "kernel",
            LINUX_GUEST,
            e.kernel.as_ref().map(|s| location(&s.referenced)),
        ),
        (
            "extra_args",
            QEMU,
            e.extra_args.as_ref().map(|s| location(&s.referenced)),
        ),
        (
            "deadline",
            DEADLINE,
            e.deadline.as_ref().map(|s| location(&s.referenced)),
        ),
        ("xen", XEN, e.xen.as_ref().map(|s| location(&s.referenced))),
        ("xen_args", XEN, e.xen_args.as_ref().map(|s| location(&s.referenced))),
        ("host", SSH, e.host.as_ref().map(|s| location(&s.referenced))),
        ("user", SSH, e.user.as_ref().map(|s| location(&s.referenced))),
        ("port", SSH, e.port.as_ref().map(|s| location(&s.referenced))),
        ("identity", SSH, e.identity.as_ref().map(|s| location(&s.referenced))),
        (
            "known_hosts",
            SSH,
            e.known_hosts.as_ref().map(|s| location(&s.referenced)),
        ),
    ];
    if KINDS.contains(&kind) {
        for (field, belongs_to, at) in fields {
            if let Some((line, column)) = at.filter(|_| !belongs_to.contains(&kind)) {
                errors.push(source.error_at_position(
                    line,
                    column,
                    format!(
                        "`{field}` is for `{}` environments; this one is `{kind}`",
                        belongs_to.join("` or `")
                    ),
                ));
            }
        }
    }
    match kind {
        "linux" => Some(Target::Local),
        "qemu" | "qemu-xen-dom0" => {
            let (accel, cpu) = qemu_accel_and_cpu(source, e, errors)?;
            let before = errors.0.len();
            let machine = machine_of(source, e, errors)?;
            let under_xen = kind == "qemu-xen-dom0";
            // Xen and its dom0 take more than the probe kernel alone.
            let memory = if under_xen { 512 } else { 128 };
            let (memory_mib, vcpus, extra_args) = sizes_and_extra_args(source, e, memory, errors);
            let xen = under_xen.then(|| xen_boot(source, e, errors));
            (errors.0.len() == before).then_some(Target::Qemu(ProbeGuest {
                accel,
                cpu,
                machine,
                memory_mib,
                vcpus,
                extra_args,
                xen,
            }))
        }
        "qemu-linux" => linux_guest(source, e, errors).map(|g| Target::QemuLinux(Box::new(g))),
        "qemu-xen-domu" => xen_domu(source, e, errors).map(|g| Target::QemuLinux(Box::new(g))),
        "xl" => xl_domain(source, e, errors).map(Target::Xl),
        "ssh" => remote(source, e, errors).map(|r| Target::Ssh(Box::new(r))),
        "sim" => {
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
            // A hypervisor preset stands for releases that shipped: it says which, and why.
            if config.hypervisor.is_some() {
                match (&e.versions, &e.sources) {
                    (Some(_), Some(sources)) if !sources.value.is_empty() => {
                        for s in &sources.value {
                            if let Err(why) = crate::known_bugs::check_source(s) {
                                errors.push(source.error_at(sources, why));
                            }
                        }
                    }
                    _ => errors.push(source.error_at(
                        model,
                        format!(
                            "`{}` is a hypervisor's vPMU: say which releases this environment stands for \
                             (`versions`) and where that is written down (`sources`)",
                            model.value
                        ),
                    )),
                }
            }
            let mut faults = Vec::new();
            for f in e.faults.iter().flat_map(|f| &f.value) {
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
            if let Some(h) = &e.hypervisor {
                match config.clone().under(&h.value) {
                    Some(guest) => config = guest,
                    None => {
                        let known: Vec<&str> = Config::HYPERVISORS.iter().map(|(n, _)| *n).collect();
                        errors.push(source.error_at(
                            h,
                            format!("unknown hypervisor `{}`; known: {}", h.value, known.join(", ")),
                        ));
                    }
                }
            }
            if let Some(seed) = &e.seed {
                config.seed = seed.value.get();
            }
            Some(Target::Sim {
                preset: model.value.clone(),
                config,
            })
        }
        other => {
            errors.push(source.error_at(
                &e.probe,
                format!("unknown probe `{other}`; known: {}", KINDS.join(", ")),
            ));
            None
        }
    }
}

fn location(at: &serde_saphyr::Location) -> (u64, u64) {
    (at.line(), at.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        match Matrices::load(&[SourceText::new("matrices/test.yaml", text)]) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .0
                .iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
                .collect(),
        }
    }

    #[test]
    fn fields_of_another_kind_are_errors_at_the_field() {
        let errors = errors_of(
            "about: x\nenvironments:\n  - id: here\n    about: x\n    probe: linux\n    faults: [lost-pmi]\n    seed: 3\n  \
             - id: guest\n    about: x\n    probe: qemu\n    accel: tcg\n    model: intel-skylake\n  \
             - id: sim:m\n    about: x\n    probe: sim\n    model: intel-skylake\n    cpu: EPYC\n",
        );
        assert_eq!(
            errors,
            [
                "6:13: `faults` is for `sim` environments; this one is `linux`",
                "7:11: `seed` is for `sim` environments; this one is `linux`",
                "12:12: `model` is for `sim` environments; this one is `qemu`",
                "17:10: `cpu` is for `qemu` or `qemu-linux` or `qemu-xen-dom0` or `qemu-xen-domu` environments; this one is `sim`",
            ]
        );
    }

    #[test]
    fn a_remote_is_checked_field_by_field_and_nothing_reaches_ssh_as_an_option() {
        let errors = errors_of(
            "about: x\nenvironments:\n  - id: r\n    about: x\n    probe: ssh\n    host: -oProxyCommand=x\n    \
             user: 'a b'\n    port: 0\n    deadline: 0\n    identity: ''\n  \
             - id: s\n    about: x\n    probe: ssh\n  \
             - id: t\n    about: x\n    probe: qemu\n    accel: tcg\n    host: example.org\n  \
             - id: u\n    about: x\n    probe: ssh\n    host: 192.0.2.1\n    port: 70000\n",
        );
        assert_eq!(errors.len(), 8, "{errors:#?}");
        for (at, says) in [
            ("6:11", "`-oProxyCommand=x` is not a host name or address"),
            ("7:11", "`a b` is not a user name"),
            ("8:11", "`port` is between 1 and 65535"),
            ("9:15", "`deadline` is seconds, between 1 and 86400"),
            ("10:15", "`identity` is a path to a file"),
            ("13:12", "an `ssh` environment needs a `host`"),
            ("18:11", "`host` is for `ssh` environments; this one is `qemu`"),
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(at) && e.contains(says)),
                "{at} {says}: {errors:#?}"
            );
        }
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("23:11") && e.contains("between 1 and 65535")),
            "a port past u16: {errors:#?}"
        );
    }

    #[test]
    fn a_linux_guest_is_checked_field_by_field() {
        let errors = errors_of(
            "about: x\nenvironments:\n  - id: g\n    about: x\n    probe: qemu-linux\n    accel: tcg\n    machine: vax\n    \
             memory: 8\n    deadline: 0\n    extra_args: ['']\n  \
             - id: h\n    about: x\n    probe: qemu-linux\n    accel: kvm\n  \
             - id: k\n    about: x\n    probe: qemu\n    accel: tcg\n    kernel: debian\n",
        );
        assert_eq!(
            errors,
            [
                "7:14: unknown machine `vax`; use q35, pc or microvm",
                "8:13: `memory` must be between 64 and 65536",
                "10:17: each of `extra_args` is one non-empty QEMU argument",
                "5:12: a `qemu-linux` environment needs a `kernel`: a path to a bzImage, or `debian`",
                "9:15: `deadline` is seconds, between 1 and 3600",
                "13:12: a `qemu-linux` environment needs a `kernel`: a path to a bzImage, or `debian`",
                "19:13: `kernel` is for `qemu-linux` or `xl` environments; this one is `qemu`",
            ],
            "{errors:#?}"
        );
        let m = Matrices::builtin().unwrap();
        let Target::QemuLinux(g) = &m
            .environments
            .values()
            .find(|e| e.id.as_str() == "qemu-linux-tcg")
            .unwrap()
            .target
        else {
            panic!("qemu-linux-tcg is a Linux guest")
        };
        assert_eq!(
            (g.kernel.clone(), g.memory_mib, g.deadline.as_secs()),
            (GuestKernel::Debian, 512, 120)
        );
    }

    #[test]
    fn a_xen_dom0_is_checked_field_by_field() {
        let errors = errors_of(
            "about: x\nenvironments:\n  - id: x\n    about: x\n    probe: qemu-xen-dom0\n    accel: tcg\n    \
             xen_args: ['vpmu=1 bts']\n    xen: ''\n  \
             - id: y\n    about: x\n    probe: qemu\n    accel: tcg\n    xen: debian\n",
        );
        assert_eq!(
            errors,
            [
                "8:10: `xen` is a path to an uncompressed Xen, or `debian`",
                "7:15: each of `xen_args` is one word of Xen's command line, such as `vpmu=1`",
                "13:10: `xen` is for `qemu-xen-dom0` or `qemu-xen-domu` environments; this one is `qemu`",
            ],
            "{errors:#?}"
        );
        let m = Matrices::builtin().unwrap();
        let e = &m.environments["xen-tcg-dom0-vpmu"];
        let Target::Qemu(g) = &e.target else {
            panic!("a probe kernel guest")
        };
        assert_eq!(e.target.kind(), "qemu-xen-dom0");
        assert_eq!(
            (g.memory_mib, g.xen.clone()),
            (
                512,
                Some(XenBoot {
                    hypervisor: XenImage::Debian,
                    args: vec!["vpmu=1".to_owned()]
                })
            )
        );
    }

    #[test]
    fn a_xen_domu_runs_an_xl_environment_defined_beside_it() {
        let errors = errors_of(
            "about: x\nenvironments:\n  - id: a\n    about: x\n    probe: qemu-xen-domu\n    accel: tcg\n    \
             runs: b\n  \
             - id: b\n    about: x\n    probe: linux\n  \
             - id: c\n    about: x\n    probe: qemu-xen-domu\n    accel: tcg\n    runs: nowhere\n  \
             - id: d\n    about: x\n    probe: qemu-xen-domu\n    accel: tcg\n  \
             - id: e\n    about: x\n    probe: xl\n    guest: pv\n    memory: 8\n    runs: b\n",
        );
        assert_eq!(
            errors,
            [
                "18:12: a `qemu-xen-domu` environment needs `runs`: the `xl` environment its dom0 runs",
                "25:11: `runs` is for `qemu-xen-domu` environments; this one is `xl`",
                "23:12: unknown guest type `pv`; use pvh or hvm",
                "24:13: `memory` must be between 16 and 65536",
                "7:11: `b` is a `linux` environment; `runs` names an `xl` one",
                "15:11: no `xl` environment `nowhere` is defined beside this one",
            ],
            "{errors:#?}"
        );
        let m = Matrices::builtin().unwrap();
        let e = &m.environments["xen-tcg-domu"];
        assert_eq!(e.target.kind(), "qemu-xen-domu");
        assert!(e.target.serves(ProbeKind::Kernel) && !e.target.serves(ProbeKind::Linux));
        let Target::QemuLinux(g) = &e.target else {
            panic!("a Linux dom0")
        };
        let dom0 = g.dom0.as_ref().expect("a dom0");
        let Target::Xl(pvh) = &m.environments[dom0.runs.as_str()].target else {
            panic!("runs names an xl environment")
        };
        assert_eq!(&dom0.domu, pvh, "the domain is the xl environment's");
        // What the dom0 is given loads back to the same domain.
        let hvm = XlDomain {
            guest: GuestType::Hvm,
            memory_mib: 48,
            vcpus: 2,
            linux: None,
            deadline: Duration::from_secs(300),
        };
        let text = hvm.matrix(&dom0.runs, "/unused");
        let back = Matrices::load(&[SourceText::new("/domu.yaml", text.as_str())]).unwrap();
        assert!(matches!(&back.environments[dom0.runs.as_str()].target, Target::Xl(d) if *d == hvm));
        // A Linux domU: the dom0 serves the linux cases, and its matrix names
        // the kernel by its path inside the dom0.
        let e = &m.environments["xen-tcg-domu-linux"];
        assert!(e.target.serves(ProbeKind::Linux) && !e.target.serves(ProbeKind::Kernel));
        let Target::QemuLinux(g) = &e.target else {
            panic!("a Linux dom0")
        };
        let domu = &g.dom0.as_ref().unwrap().domu;
        assert_eq!(domu.linux, Some(GuestKernel::Debian));
        let text = domu.matrix(&dom0.runs, "/domu-vmlinuz");
        let back = Matrices::load(&[SourceText::new("/domu.yaml", text.as_str())]).unwrap();
        let Target::Xl(inner) = &back.environments[dom0.runs.as_str()].target else {
            panic!("an xl environment")
        };
        assert_eq!(inner.linux, Some(GuestKernel::Path("/domu-vmlinuz".into())));
        assert_eq!((inner.memory_mib, inner.deadline), (domu.memory_mib, domu.deadline));
    }

    #[test]
    fn ids_are_validated_and_may_not_share_a_folder() {
        let errors = errors_of(
            "about: x\nenvironments:\n  - id: sim:a\n    about: x\n    probe: sim\n    model: intel-skylake\n  \
             - id: sim-a\n    about: x\n    probe: linux\n  - id: ../up\n    about: x\n    probe: linux\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "7:9: `sim-a` and `sim:a` (defined at matrices/test.yaml:3) would both record into expected/sim-a/"
            ),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("10:9: `../up` is not a valid id"), "{errors:?}");
    }

    #[test]
    fn a_run_picks_a_listed_environment_its_derived_id_or_a_label() {
        let matrices = Matrices::builtin().unwrap();
        let derived = "kvm-intel-ice-lake-nopmu";
        assert_eq!(matrices.pick(Choice::Derived, derived).unwrap().id.as_str(), derived);
        assert_eq!(
            matrices.pick(Choice::Named(derived), derived).unwrap().id.as_str(),
            derived
        );
        let sim = matrices.pick(Choice::Named("sim:ideal"), derived).unwrap();
        assert_eq!(sim.target.kind(), "sim");
        let labelled = matrices.pick(Choice::Label("aws-c7i.metal"), derived).unwrap();
        assert_eq!(
            (labelled.id.folder().as_str(), labelled.target.kind()),
            ("aws-c7i.metal", "linux")
        );
        let unknown = matrices
            .pick(Choice::Named("qemu-tgc"), derived)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("did you mean `qemu-tcg`?"), "{unknown}");
        let far = matrices
            .pick(Choice::Named("nothing-like-it"), derived)
            .unwrap_err()
            .to_string();
        assert!(!far.contains("did you mean"), "{far}");
    }
}
