//! Tidy: tests that read the tree itself and keep it honest.
//!
//! Each failure names the file and the fix. They run with every `cargo test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use pmu_conformance::case::{CheckKind, SuiteSources, load_suites};
use pmu_conformance::environment::{Matrices, Target};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::executor::sim::SimExecutor;
use pmu_conformance::expectation::store::snapshot_path;
use pmu_conformance::known_bugs::{KnownBugs, Shows};
use pmu_conformance::vocabulary::{EnvironmentId, ProbeKind};
use pmu_conformance::workload::WorkloadKind;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !matches!(path.file_name().and_then(|n| n.to_str()), Some("target" | ".git")) {
                out.extend(files(&path, suffix));
            }
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[test]
fn every_rust_file_opens_with_a_doc_comment() {
    let missing: Vec<String> = ["runner", "ci"]
        .iter()
        .flat_map(|dir| files(&root().join(dir), ".rs"))
        .filter(|path| !std::fs::read_to_string(path).unwrap().trim_start().starts_with("//!"))
        .map(|path| format!("{}:1: add a `//!` comment saying why this file exists", relative(&path)))
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn every_crate_says_what_it_is() {
    let missing: Vec<String> = files(&root(), "Cargo.toml")
        .into_iter()
        .filter(|path| path.parent() != Some(root().as_path()))
        .filter(|path| {
            !std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .any(|l| l.starts_with("description = "))
        })
        .map(|path| format!("{}: add a one-line `description`", relative(&path)))
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

/// Every environment folder under expected/ is a listed environment, and
/// holds only host-class folders (each a valid id; for a sim environment,
/// exactly the model's class). Each class folder holds an expectation for
/// every case the environment selects, and nothing else.
#[test]
fn expectations_match_the_cases_their_environments_select() {
    let table = EventTable::builtin();
    let suites = load_suites(&SuiteSources::builtin(), &table, &KnownBugs::builtin()).unwrap();
    let matrices = Matrices::builtin().unwrap();
    let expected = root().join("expected");
    let mut problems = Vec::new();
    let subfolders = |dir: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        found
    };
    for dir in subfolders(&expected) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "src" {
            continue;
        }
        let Some(env) = matrices.environments.values().find(|e| e.id.folder() == name) else {
            problems.push(format!(
                "{}: no environment in matrices/ is named `{name}`; add it there or remove the folder",
                relative(&dir)
            ));
            continue;
        };
        let model_class = match &env.target {
            Target::Sim { preset, config } => Some(
                SimExecutor::new(preset, config.clone(), Arc::new(table.clone()))
                    .fingerprint()
                    .derived_id
                    .clone(),
            ),
            _ => None,
        };
        for stray in std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
        {
            problems.push(format!(
                "{}: expectations live in a host-class folder, expected/{name}/<host class>/; move or remove it",
                relative(&stray)
            ));
        }
        for class_dir in subfolders(&dir) {
            let class = class_dir.file_name().unwrap().to_string_lossy().into_owned();
            if let Err(e) = EnvironmentId::parse(&class) {
                problems.push(format!("{}: not a host class: {e}", relative(&class_dir)));
                continue;
            }
            if let Some(model) = &model_class
                && *model != class
            {
                problems.push(format!(
                    "{}: `{}` runs on a model whose host class is `{model}`; no run can compare with this folder",
                    relative(&class_dir),
                    env.id
                ));
                continue;
            }
            let wanted: BTreeSet<PathBuf> = suites
                .iter()
                .flat_map(|s| &s.cases)
                .filter(|c| env.selects(c))
                .map(|c| snapshot_path(&class_dir, &c.id))
                .collect();
            let present: BTreeSet<PathBuf> = files(&class_dir, ".snap").into_iter().collect();
            for path in wanted.difference(&present) {
                problems.push(format!(
                    "{}: missing; record it with `cargo xtask bless --env {} --exact <suite/case>` on such a machine",
                    relative(path),
                    env.id
                ));
            }
            for path in present.difference(&wanted) {
                problems.push(format!("{}: no case produces it any more; remove it", relative(path)));
            }
            for path in files(&class_dir, ".snap.new") {
                problems.push(format!(
                    "{}: a pending snapshot; review it with `cargo insta review`",
                    relative(&path)
                ));
            }
        }
        if let Some(model) = model_class
            && !dir.join(&model).is_dir()
        {
            problems.push(format!(
                "{}/{model}: missing; record it with `cargo xtask bless --env {}`",
                relative(&dir),
                env.id
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_check_and_workload_has_a_case() {
    let suites = load_suites(&SuiteSources::builtin(), &EventTable::builtin(), &KnownBugs::builtin()).unwrap();
    let cases: Vec<_> = suites.iter().flat_map(|s| &s.cases).collect();
    let mut problems = Vec::new();
    for kind in ProbeKind::ALL.into_iter().flat_map(CheckKind::all_for) {
        if !cases.iter().any(|c| c.check == kind) {
            problems.push(format!("suites/: no case uses the `{kind}` check; add one"));
        }
    }
    for kind in WorkloadKind::ALL {
        if !cases.iter().any(|c| c.workload.kind == kind) {
            problems.push(format!(
                "suites/: no case uses the `{kind}` workload; add one or remove the workload"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// known-bugs.yaml and the model's faults name the same bugs, and each fault
/// has a `sim:` environment that injects it alone, so its expectations show
/// what it does to every case.
#[test]
fn every_known_bug_is_modelled_and_has_its_environment() {
    let bugs = KnownBugs::builtin();
    let catalogue: BTreeSet<&str> = bugs.ids().collect();
    let modelled: BTreeSet<&str> = pmu_model::Fault::ALL.iter().map(|f| f.id()).collect();
    let mut problems = Vec::new();
    // A refusal (a bug that shows as a reason code) is a configuration, not
    // a fault: it needs a sim environment whose recorded outcomes carry it.
    let recorded_reasons = recorded_sim_reasons();
    for id in catalogue.difference(&modelled) {
        let bug = bugs.get(id).expect("listed");
        let codes: Vec<&str> = bug
            .shows
            .iter()
            .filter_map(|s| match s {
                Shows::Reason(code) => Some(code.name()),
                Shows::Failure { .. } => None,
            })
            .collect();
        if codes.is_empty() {
            problems.push(format!(
                "runner/pmu-conformance/known-bugs.yaml: `{id}` has no fault in runner/pmu-model/src/fault.rs; model it"
            ));
        } else if !codes.iter().any(|c| recorded_reasons.contains(*c)) {
            problems.push(format!(
                "runner/pmu-conformance/known-bugs.yaml: the refusal `{id}` ({}) is recorded by no sim environment; \
                 add one to matrices/sim.yaml",
                codes.join(", ")
            ));
        }
    }
    for id in modelled.difference(&catalogue) {
        problems.push(format!(
            "runner/pmu-model/src/fault.rs: fault `{id}` is not in runner/pmu-conformance/known-bugs.yaml; describe it there"
        ));
    }
    // The model runs each fault under the hypervisor the catalogue says ships it.
    for fault in pmu_model::Fault::ALL {
        let Some(bug) = bugs.get(fault.id()) else { continue };
        let fits = match fault.hypervisor() {
            Some(h) => bug.hypervisors.iter().any(|b| b == h),
            None => bug.hypervisors.iter().any(|b| b == "any"),
        };
        if !fits {
            problems.push(format!(
                "runner/pmu-model/src/fault.rs: `{}` runs under {:?}, but known-bugs.yaml says it ships on {:?}",
                fault.id(),
                fault.hypervisor(),
                bug.hypervisors
            ));
        }
    }
    let matrices = Matrices::builtin().unwrap();
    for fault in pmu_model::Fault::ALL {
        // Alone, and as a guest of its own hypervisor (its CPUID signature).
        let signature = fault
            .hypervisor()
            .and_then(|h| pmu_model::Config::HYPERVISORS.iter().find(|(n, _)| *n == h))
            .map(|(_, sig)| *sig);
        let alone = matrices.environments.values().any(|env| match &env.target {
            Target::Sim { config, .. } => {
                config.faults.0.len() == 1 && config.faults.0[0].id() == fault.id() && config.hypervisor == signature
            }
            _ => false,
        });
        if !alone {
            problems.push(format!(
                "matrices/sim.yaml: no environment injects `{}` alone under its hypervisor; add one",
                fault.id()
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// In YAML, ` #` inside a plain (unquoted) value starts a comment, so
/// `about: raises #GP.` silently reads as `raises`. Every prose value of
/// ours that holds a ` #` is quoted or a block scalar.
#[test]
fn no_plain_yaml_value_loses_its_tail_to_a_comment() {
    let root = root();
    let mut problems = Vec::new();
    for dir in ["suites", "matrices", "runner/pmu-conformance"] {
        // The bad-input files are wrong on purpose, and their `#~` markers are comments.
        for path in files(&root.join(dir), ".yaml")
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains("bad-input"))
        {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let body = line.trim_start().trim_start_matches("- ");
                if body.starts_with('#') {
                    continue;
                }
                let Some((key, value)) = body.split_once(": ") else {
                    continue;
                };
                let plain = !value.starts_with(['"', '\'', '|', '>', '[', '{', '&', '*', '!']);
                // A one-word value with a comment after it (`raw: 0x5101c4  # …`) is meant.
                let prose = value.split(" #").next().is_some_and(|v| v.trim().contains(' '));
                if plain && !key.contains(' ') && value.contains(" #") && prose {
                    problems.push(format!(
                        "{}:{}: ` #` starts a comment in this plain value, so the rest is dropped; quote it",
                        relative(&path),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every reason code recorded under `expected/sim-*/`.
fn recorded_sim_reasons() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut stack: Vec<PathBuf> = std::fs::read_dir(root().join("expected"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("sim-")))
        .collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .filter_map(|e| e.ok().map(|e| e.path())),
            );
        } else if path.extension().is_some_and(|e| e == "snap") {
            let text = std::fs::read_to_string(&path).unwrap();
            codes.extend(
                text.lines()
                    .filter_map(|l| l.strip_prefix("reason: "))
                    .map(|c| c.trim().to_owned()),
            );
        }
    }
    codes
}

/// The CI templates under ci/templates/ run `pmu-conformance` with arguments
/// it accepts: each command line that invokes it (`cargo run --release --
/// ARGS` or `$PMUC ARGS`), with its `--env` values, parses here as it would
/// there, and each matrix file it names exists and selects an environment.
#[test]
fn the_ci_templates_run_commands_the_runner_accepts() {
    let templates = files(&root().join("ci/templates"), ".yml");
    assert!(templates.len() >= 2, "{templates:?}");
    let mut checked = 0;
    for template in &templates {
        let text = std::fs::read_to_string(template).unwrap();
        // Shell continuation lines are one command.
        let joined = text.replace("\\\n", " ");
        for line in joined.lines() {
            let line = line.trim().trim_start_matches("- ").trim_start_matches("run: ").trim();
            let Some(args) = line
                .strip_prefix("cargo run --release -- ")
                .or_else(|| line.strip_prefix("$PMUC "))
            else {
                continue;
            };
            let words: Vec<String> = args
                .split_whitespace()
                .map(|w| w.trim_matches('"').replace("$PMUC_EXPECTED", "expected"))
                .collect();
            // What the line asks, with nothing run: `--help` after the
            // subcommand (clap parses what precedes it), or `matrix list`.
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pmu-conformance"));
            command.current_dir(root()).env_remove("CI");
            if words.first().map(String::as_str) == Some("matrix") && words.get(1).map(String::as_str) == Some("run") {
                let file = &words[2];
                assert!(root().join(file).is_file(), "{}: no {file}", relative(template));
                let env = words.iter().position(|w| w == "--env").map(|i| words[i + 1].clone());
                command.args(["matrix", "list", file]);
                if let Some(env) = env {
                    command.args(["--env", &env]);
                }
            } else {
                let sub = words.first().filter(|w| !w.starts_with('-')).cloned();
                command.args(sub.iter()).arg("--help");
                if let Some(i) = words.iter().position(|w| w == "--env") {
                    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_pmu-conformance"))
                        .arg("environments")
                        .output()
                        .unwrap();
                    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
                    let env = &words[i + 1];
                    assert!(
                        listed
                            .lines()
                            .any(|l| l.split_whitespace().next() == Some(env.as_str())),
                        "{}: `{line}`: no environment {env}",
                        relative(template)
                    );
                }
            }
            let output = command.output().unwrap();
            assert!(
                output.status.success(),
                "{}: `{line}`: {}",
                relative(template),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} commands found in {templates:?}");
}
