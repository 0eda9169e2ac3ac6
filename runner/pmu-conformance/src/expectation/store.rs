//! One environment's expectations on one host class: a folder of snapshot
//! files, read with a size limit and written atomically.
//!
//! A snapshot is cargo-insta's file format, so `cargo insta review` can show
//! and accept pending ones: a `---` header (where the case is defined, and
//! its description), another `---`, then the [`Expectation`] as YAML.
//! Writing is ours rather than insta's assertion macro, so that a snapshot
//! that cannot be written is an error naming its path (never a panic that
//! takes the case out of the report), and a write is a temporary file
//! renamed into place, so a killed run never leaves half a snapshot.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Expectation, Gate, UpdateMode, diff};
use crate::case::Case;
use crate::input_file::{self, ReadError, SNAPSHOT_LIMIT};
use crate::outcome::Outcome;
use crate::vocabulary::CaseId;

/// What is recorded for one case.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    Nothing,
    Expectation(Expectation),
    /// A snapshot file that cannot be read as an expectation.
    Unreadable(String),
}

/// The snapshots of one environment on one host class.
#[derive(Clone, Debug)]
pub struct Store {
    /// `<root>/<environment folder>/<host class>`, or `None` where there is
    /// no expectations folder at all (nothing recorded, nowhere to record).
    pub dir: Option<PathBuf>,
    pub mode: UpdateMode,
}

/// Where one case's snapshot lives under an environment and host class folder.
pub fn snapshot_path(dir: &Path, id: &CaseId) -> PathBuf {
    dir.join(&id.suite).join(format!("{}.snap", id.name))
}

impl Store {
    pub fn new(root: Option<&Path>, environment_folder: &str, host_class: &str, mode: UpdateMode) -> Store {
        Store {
            dir: root.map(|root| root.join(environment_folder).join(host_class)),
            mode,
        }
    }

    /// How many snapshots this store holds.
    pub fn count(&self) -> usize {
        fn count_in(dir: &Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() {
                            count_in(&path)
                        } else {
                            usize::from(path.extension().is_some_and(|x| x == "snap"))
                        }
                    })
                    .sum()
            })
        }
        self.dir.as_deref().map_or(0, count_in)
    }

    pub fn recorded(&self, id: &CaseId) -> Recorded {
        let Some(dir) = &self.dir else {
            return Recorded::Nothing;
        };
        let path = snapshot_path(dir, id);
        let text = match input_file::read(&path, SNAPSHOT_LIMIT) {
            Ok(text) => text,
            Err(ReadError::NotFound) => return Recorded::Nothing,
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
            // A pending snapshot only where something changed; an accepted one
            // always, so its header (the case's description) stays current.
            Recorded::Expectation(r) if *r == observed && self.mode != UpdateMode::Accept => return Gate::Matches,
            Recorded::Expectation(r) if *r == observed => Gate::Matches,
            Recorded::Expectation(r) => Gate::Differs {
                diff: diff(&r.to_yaml(), &observed.to_yaml()),
            },
            Recorded::Unreadable(why) => Gate::Differs {
                diff: format!("the recorded expectation cannot be read: {why}"),
            },
            Recorded::Nothing => Gate::Unrecorded,
        };
        let suffix = match self.mode {
            UpdateMode::Compare => return gate,
            UpdateMode::Pending => "snap.new",
            UpdateMode::Accept => "snap",
        };
        match self.write(case, suite_path, &observed, suffix) {
            Err(message) => Gate::Unwritable { message },
            Ok(()) if self.mode == UpdateMode::Accept => Gate::Recorded,
            Ok(()) => gate,
        }
    }

    /// Writes `expectation` as `case`'s `.snap` (or `.snap.new`), through a
    /// temporary file in the same folder and a rename.
    fn write(&self, case: &Case, suite_path: &str, expectation: &Expectation, suffix: &str) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Err("there is no expectations folder to record into".to_owned());
        };
        let path = snapshot_path(dir, &case.id).with_extension(suffix);
        let folder = path.parent().expect("a snapshot path has a folder");
        let failed = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
        std::fs::create_dir_all(folder).map_err(|e| failed("cannot create the folder for", e))?;
        let text = render_snapshot(case, suite_path, expectation);
        let mut temporary = tempfile::NamedTempFile::new_in(folder).map_err(|e| failed("cannot write", e))?;
        temporary
            .write_all(text.as_bytes())
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|e| failed("cannot write", e))?;
        temporary
            .persist(&path)
            .map(drop)
            .map_err(|e| failed("cannot write", e.error))
    }
}

/// The snapshot header cargo-insta reads: where the case is defined and what it is.
#[derive(Serialize)]
struct Header<'a> {
    source: &'a str,
    description: String,
}

fn render_snapshot(case: &Case, suite_path: &str, expectation: &Expectation) -> String {
    let header = Header {
        source: suite_path,
        // One line, so the header can never contain a `---` line of its own.
        description: case.about.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    format!(
        "---\n{}---\n{}",
        serde_saphyr::to_string(&header).expect("a header always serialises"),
        expectation.to_yaml()
    )
}

/// The content of a snapshot file: everything after its `---` header.
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::expectation::TrialResult;
    use crate::outcome::{Magnitude, Reason, ReasonCode, Signature, SignatureKind, Unit};

    fn store_with(snapshot: Option<&str>, mode: UpdateMode) -> (Store, tempfile::TempDir, CaseId) {
        let dir = tempfile::tempdir().unwrap();
        let id = CaseId {
            suite: "overflow".into(),
            name: "rr-xen-shape".into(),
        };
        let store = Store::new(Some(dir.path()), "sim-xen-intel", "bare-intel-skylake-pmu-v3", mode);
        if let Some(text) = snapshot {
            let path = snapshot_path(store.dir.as_ref().unwrap(), &id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        (store, dir, id)
    }

    fn xen_overcount() -> Outcome {
        Outcome::fail(
            Signature::new(
                SignatureKind::Overcount,
                Magnitude::new(1, Unit::EventsPerPmi),
                "+1 per PMI in every run",
            ),
            "501",
        )
        .fact("expected", 500)
        .figure("deviations", "ignored: figures are never compared")
    }

    const RECORDED_OVERCOUNT: &str = "---\nsource: suites/overflow.yaml\ndescription: rr's probe\n---\nverdict: fail\nsignature:\n  kind: overcount\n  magnitude:\n    amount: 1\n    unit: events-per-pmi\nfacts:\n  expected: 500\n";

    fn gate(store: &Store, id: &CaseId, outcome: &Outcome) -> Gate {
        let case = crate::case::tests::case_named(id.clone());
        store.gate(&case, "suites/overflow.yaml", outcome)
    }

    #[test]
    fn a_recorded_known_failure_matches() {
        let (store, _dir, id) = store_with(Some(RECORDED_OVERCOUNT), UpdateMode::Compare);
        assert_eq!(gate(&store, &id, &xen_overcount()), Gate::Matches);
        assert_eq!(
            Gate::Matches.trial_result(&xen_overcount(), "bless"),
            TrialResult::Passed
        );
    }

    #[test]
    fn a_different_outcome_fails_with_a_diff() {
        let (store, _dir, id) = store_with(Some(RECORDED_OVERCOUNT), UpdateMode::Compare);
        let fixed = Outcome::pass("500").fact("expected", 500);
        let g = gate(&store, &id, &fixed);
        let Gate::Differs { diff } = &g else {
            panic!("expected a diff, got {g:?}")
        };
        assert!(
            diff.contains("-verdict: fail") && diff.contains("+verdict: pass"),
            "{diff}"
        );
        let TrialResult::Failed(message) = g.trial_result(&fixed, "cargo run -- --accept") else {
            panic!("a difference fails the trial")
        };
        assert!(message.contains("cargo run -- --accept"), "{message}");
    }

    #[test]
    fn nothing_recorded_is_strict() {
        let (store, _dir, id) = store_with(None, UpdateMode::Compare);
        assert_eq!(gate(&store, &id, &xen_overcount()), Gate::Unrecorded);
        assert!(matches!(
            Gate::Unrecorded.trial_result(&xen_overcount(), "b"),
            TrialResult::Failed(_)
        ));
        assert_eq!(
            Gate::Unrecorded.trial_result(&Outcome::pass("ok"), "b"),
            TrialResult::Passed
        );
        assert_eq!(
            Gate::Unrecorded.trial_result(&Outcome::unsupported(Reason::new(ReasonCode::NoPmu, "ENOENT")), "b"),
            TrialResult::Skipped("ENOENT (no-pmu)".into())
        );
        assert!(matches!(
            Gate::Unrecorded.trial_result(&Outcome::error(ReasonCode::Internal, "boom"), "b"),
            TrialResult::Failed(_)
        ));
        let nowhere = Store::new(None, "x", "y", UpdateMode::Compare);
        assert_eq!(nowhere.recorded(&id), Recorded::Nothing);
    }

    #[test]
    fn unreadable_snapshots_differ_rather_than_pass() {
        let (store, _dir, id) = store_with(Some("---\nsource: x\n---\nverdict: maybe\n"), UpdateMode::Compare);
        assert!(matches!(gate(&store, &id, &xen_overcount()), Gate::Differs { .. }));
    }

    #[test]
    fn accepted_outcomes_round_trip_and_leave_no_temporary_files() {
        let (store, _dir, id) = store_with(None, UpdateMode::Accept);
        assert_eq!(gate(&store, &id, &xen_overcount()), Gate::Recorded);
        let compare = Store {
            mode: UpdateMode::Compare,
            ..store.clone()
        };
        assert_eq!(gate(&compare, &id, &xen_overcount()), Gate::Matches);
        let folder = snapshot_path(store.dir.as_ref().unwrap(), &id);
        let names: Vec<_> = std::fs::read_dir(folder.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["rr-xen-shape.snap"]);
        assert_eq!(store.count(), 1);
    }

    #[test]
    fn an_unwritable_folder_is_an_error_naming_the_path() {
        let (store, dir, id) = store_with(None, UpdateMode::Accept);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        // Root ignores permissions; the test only means something where they hold.
        let writable = std::fs::create_dir(dir.path().join("probe")).is_ok();
        let g = gate(&store, &id, &xen_overcount());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        if writable {
            // A file where the environment's folder should be blocks it for root too.
            let (store, dir, id) = store_with(None, UpdateMode::Accept);
            std::fs::write(dir.path().join("sim-xen-intel"), "in the way").unwrap();
            let g = gate(&store, &id, &xen_overcount());
            let Gate::Unwritable { message } = &g else {
                panic!("expected an unwritable gate, got {g:?}")
            };
            assert!(message.contains("sim-xen-intel"), "{message}");
            assert!(matches!(g.trial_result(&xen_overcount(), "b"), TrialResult::Failed(_)));
        } else {
            assert!(matches!(g, Gate::Unwritable { .. }), "{g:?}");
        }
    }
}
