//! Recorded expectations: the stable part of each outcome, per environment,
//! as insta snapshots under `expected/<environment>/<suite>/<case>.snap`.
//!
//! The gate compares a fresh outcome's [`Expectation`] with the recorded one:
//!
//! - equal: ok, even when what is recorded is a known failure;
//! - different: the trial fails and shows a diff;
//! - nothing recorded: strict mode, so the case must pass on its own
//!   (unsupported is skipped, never passed).
//!
//! Only an explicit bless writes here: `--accept` writes snapshots in place,
//! and `cargo insta test` (which sets `INSTA_UPDATE=new`) leaves `.snap.new`
//! files for `cargo insta review`. A plain run, and every CI run, writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::case::Case;
use crate::outcome::{Outcome, Signature, Verdict};
use crate::vocabulary::CaseId;

/// The part of an outcome that must be the same every time in one environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Why unsupported, or the error's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, Value>,
}

impl From<&Outcome> for Expectation {
    fn from(o: &Outcome) -> Expectation {
        Expectation {
            verdict: o.verdict,
            signature: o.signature.clone(),
            reason: o.reason.clone(),
            facts: o.facts.clone(),
        }
    }
}

impl Expectation {
    fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("an expectation always serialises")
    }
}

/// What the store writes, decided once per process (see [`UpdateMode::from_env`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Compare only; write nothing.
    Compare,
    /// Write `.snap.new` files for `cargo insta review` where outcomes differ.
    Pending,
    /// Record every outcome as the expectation (`--accept`).
    Accept,
}

impl UpdateMode {
    /// Chooses the mode and tells insta, through the environment it reads,
    /// before any snapshot is touched. Call while the process is single-threaded.
    pub fn from_env(accept: bool) -> Result<UpdateMode, String> {
        let on_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        let requested = std::env::var("INSTA_UPDATE").unwrap_or_default();
        let mode = match (accept, requested.as_str()) {
            (true, _) | (false, "always" | "force") => UpdateMode::Accept,
            (false, "new" | "unseen") => UpdateMode::Pending,
            _ => UpdateMode::Compare,
        };
        if mode != UpdateMode::Compare && on_ci {
            return Err("CI never records expectations: unset CI, or run without --accept / INSTA_UPDATE".into());
        }
        let insta_update = match mode {
            UpdateMode::Compare => "no",
            UpdateMode::Pending => "new",
            UpdateMode::Accept => "always",
        };
        // SAFETY: called at start-up, before any other thread exists.
        unsafe {
            std::env::set_var("INSTA_UPDATE", insta_update);
            // A pending snapshot is not a failure of the assertion; our gate decides.
            std::env::set_var("INSTA_FORCE_PASS", "1");
        }
        Ok(mode)
    }
}

/// How an outcome compares with what is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Equal to the recorded expectation (which may record a known failure).
    Matches,
    /// Nothing is recorded for this case here: the outcome stands on its own.
    Unrecorded,
    /// Differs from the recorded expectation.
    Differs { diff: String },
    /// Recorded just now, as this environment's expectation.
    Recorded,
}

impl Gate {
    pub fn name(&self) -> &'static str {
        match self {
            Gate::Matches => "matches",
            Gate::Unrecorded => "unrecorded",
            Gate::Differs { .. } => "differs",
            Gate::Recorded => "recorded",
        }
    }

    /// What the trial reports: `Ok(None)` passes, `Ok(Some(reason))` is
    /// skipped, `Err(message)` fails.
    pub fn trial_result(&self, outcome: &Outcome, bless: &str) -> Result<Option<String>, String> {
        let diagnosis: String = outcome.diagnosis.iter().map(|d| format!("diagnosis: {d}\n")).collect();
        match (self, outcome.verdict) {
            (Gate::Differs { diff }, _) => Err(format!(
                "the outcome differs from the recorded expectation:\n{diff}\n{diagnosis}\
                 to record this outcome as expected: {bless}"
            )),
            (Gate::Unrecorded, Verdict::Pass) | (Gate::Matches | Gate::Recorded, _) => match outcome.verdict {
                Verdict::Unsupported => Ok(Some(outcome.reason.clone().unwrap_or_default())),
                _ => Ok(None),
            },
            (Gate::Unrecorded, Verdict::Unsupported) => Ok(Some(outcome.reason.clone().unwrap_or_default())),
            (Gate::Unrecorded, Verdict::Fail | Verdict::Error) => Err(format!(
                "{}: {}\n{diagnosis}nothing is recorded for this environment, so the case must pass; \
                 if this is a known failure here, record it: {bless}",
                outcome.verdict,
                outcome.explanation()
            )),
        }
    }
}

/// What is recorded for one case.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    Nothing,
    Expectation(Expectation),
    /// A snapshot file that cannot be read as an expectation.
    Unreadable(String),
}

/// One environment's folder of expectations.
#[derive(Clone, Debug)]
pub struct Store {
    pub dir: PathBuf,
    pub mode: UpdateMode,
}

impl Store {
    pub fn new(expected_root: &Path, environment_dir: &str, mode: UpdateMode) -> Store {
        Store {
            dir: expected_root.join(environment_dir),
            mode,
        }
    }

    pub fn path(&self, id: &CaseId) -> PathBuf {
        self.dir.join(&id.suite).join(format!("{}.snap", id.name))
    }

    pub fn recorded(&self, id: &CaseId) -> Recorded {
        let path = self.path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Recorded::Nothing,
            Err(e) => return Recorded::Unreadable(format!("{}: {e}", path.display())),
        };
        match parse_snapshot(&text) {
            Ok(expectation) => Recorded::Expectation(expectation),
            Err(e) => Recorded::Unreadable(format!("{}: {e}", path.display())),
        }
    }

    /// Compares `outcome` with what is recorded for `case`, writing what the mode asks for.
    pub fn gate(&self, case: &Case, suite_path: &str, outcome: &Outcome) -> Gate {
        let observed = Expectation::from(outcome);
        let recorded = self.recorded(&case.id);
        let gate = match &recorded {
            Recorded::Expectation(r) if *r == observed => return Gate::Matches,
            Recorded::Expectation(r) => Gate::Differs {
                diff: diff(&r.to_yaml(), &observed.to_yaml()),
            },
            Recorded::Unreadable(why) => Gate::Differs {
                diff: format!("the recorded expectation cannot be read: {why}"),
            },
            Recorded::Nothing => Gate::Unrecorded,
        };
        match self.mode {
            UpdateMode::Compare => gate,
            UpdateMode::Pending => {
                self.write(case, suite_path, &observed);
                gate
            }
            UpdateMode::Accept => {
                self.write(case, suite_path, &observed);
                Gate::Recorded
            }
        }
    }

    /// Hands the expectation to insta, which writes it in place or as
    /// `.snap.new` according to `INSTA_UPDATE` (set by [`UpdateMode::from_env`]).
    fn write(&self, case: &Case, suite_path: &str, expectation: &Expectation) {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(self.dir.join(&case.id.suite));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(case.about.clone());
        settings.set_input_file(suite_path);
        settings.bind(|| insta::assert_yaml_snapshot!(case.id.name.as_str(), expectation));
    }
}

/// The content of an insta `.snap` file: everything after its `---` header.
fn parse_snapshot(text: &str) -> Result<Expectation, String> {
    let body = match text.strip_prefix("---\n") {
        Some(rest) => rest
            .split_once("\n---\n")
            .map(|(_, body)| body)
            .ok_or("no end to the snapshot header")?,
        None => text,
    };
    serde_saphyr::from_str(body).map_err(|e| e.to_string())
}

fn diff(recorded: &str, observed: &str) -> String {
    similar::TextDiff::from_lines(recorded, observed)
        .unified_diff()
        .context_radius(8)
        .header("recorded", "observed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::SignatureKind;

    fn store_with(snapshot: Option<&str>) -> (Store, tempfile::TempDir, CaseId) {
        let dir = tempfile::tempdir().unwrap();
        let id = CaseId {
            suite: "overflow".into(),
            name: "rr-xen-shape".into(),
        };
        let store = Store::new(dir.path(), "xen-intel-skylake", UpdateMode::Compare);
        if let Some(text) = snapshot {
            let path = store.path(&id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        (store, dir, id)
    }

    fn xen_overcount() -> Outcome {
        Outcome::fail(
            Signature {
                kind: SignatureKind::Overcount,
                magnitude: "+1 per PMI in every run".into(),
            },
            "501",
        )
        .fact("expected", 500)
        .figure("deviations", "ignored: figures are never compared")
    }

    const RECORDED_OVERCOUNT: &str = "---\nsource: runner/pmu-conformance/src/expectation.rs\ndescription: rr's probe\n---\nverdict: fail\nsignature:\n  kind: overcount\n  magnitude: +1 per PMI in every run\nfacts:\n  expected: 500\n";

    fn gate(store: &Store, id: &CaseId, outcome: &Outcome) -> Gate {
        let case = crate::case::tests::case_named(id.clone());
        store.gate(&case, "suites/overflow.yaml", outcome)
    }

    #[test]
    fn a_recorded_known_failure_matches() {
        let (store, _dir, id) = store_with(Some(RECORDED_OVERCOUNT));
        assert_eq!(gate(&store, &id, &xen_overcount()), Gate::Matches);
        assert_eq!(Gate::Matches.trial_result(&xen_overcount(), "bless"), Ok(None));
    }

    #[test]
    fn a_different_outcome_fails_with_a_diff() {
        let (store, _dir, id) = store_with(Some(RECORDED_OVERCOUNT));
        let fixed = Outcome::pass("500").fact("expected", 500);
        let g = gate(&store, &id, &fixed);
        let Gate::Differs { diff } = &g else {
            panic!("expected a diff, got {g:?}")
        };
        assert!(
            diff.contains("-verdict: fail") && diff.contains("+verdict: pass"),
            "{diff}"
        );
        let message = g.trial_result(&fixed, "cargo run -- --accept").unwrap_err();
        assert!(message.contains("cargo run -- --accept"), "{message}");
    }

    #[test]
    fn nothing_recorded_is_strict() {
        let (store, _dir, id) = store_with(None);
        assert_eq!(gate(&store, &id, &xen_overcount()), Gate::Unrecorded);
        assert!(Gate::Unrecorded.trial_result(&xen_overcount(), "b").is_err());
        assert_eq!(Gate::Unrecorded.trial_result(&Outcome::pass("ok"), "b"), Ok(None));
        let skipped = Gate::Unrecorded.trial_result(&Outcome::unsupported("ENOENT"), "b");
        assert_eq!(skipped, Ok(Some("ENOENT".into())));
        assert!(Gate::Unrecorded.trial_result(&Outcome::error("boom"), "b").is_err());
    }

    #[test]
    fn unreadable_snapshots_differ_rather_than_pass() {
        let (store, _dir, id) = store_with(Some("---\nsource: x\n---\nverdict: maybe\n"));
        assert!(matches!(gate(&store, &id, &xen_overcount()), Gate::Differs { .. }));
    }
}
