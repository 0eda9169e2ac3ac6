//! Reports of a finished run: a terminal table, JSON, and JUnit XML.
//!
//! Reporters only read the [`Record`]s a run left behind; nothing is
//! formatted while trials run.

pub mod json;
pub mod junit;
pub mod table;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::expectation::TrialResult;
use crate::harness::Record;
use crate::outcome::Verdict;

/// Counts of verdicts and of trials the gate failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub pass: usize,
    pub fail: usize,
    pub unsupported: usize,
    pub error: usize,
    /// Cases whose trial failed: outcomes that differ from the recorded
    /// expectation, or that fail with nothing recorded.
    pub gate_failures: usize,
}

impl Tally {
    pub fn of(records: &[Record]) -> Tally {
        let mut t = Tally::default();
        for r in records {
            match r.outcome.verdict {
                Verdict::Pass => t.pass += 1,
                Verdict::Fail => t.fail += 1,
                Verdict::Unsupported => t.unsupported += 1,
                Verdict::Error => t.error += 1,
            }
            if gate_failed(r) {
                t.gate_failures += 1;
            }
        }
        t
    }
}

/// Why a report cannot go where it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("cannot write a report to {}: it is a folder", .0.display())]
    IsAFolder(PathBuf),
    #[error("cannot write a report to {}: the folder {} does not exist", .0.display(), .1.display())]
    NoFolder(PathBuf, PathBuf),
    #[error("cannot write {}: {error}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
}

/// Checks, before any case runs, that a report can be written at `path`:
/// it is not a folder, and the folder it goes in exists.
pub fn check_destination(path: &Path) -> Result<(), DestinationError> {
    if path.is_dir() {
        return Err(DestinationError::IsAFolder(path.to_path_buf()));
    }
    let folder = folder_of(path);
    if !folder.is_dir() {
        return Err(DestinationError::NoFolder(path.to_path_buf(), folder.to_path_buf()));
    }
    Ok(())
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `text` (and a final newline) to `path` through a temporary file in
/// the same folder and a rename, so a run killed while writing leaves the
/// previous report whole.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), DestinationError> {
    let failed = |error: io::Error| DestinationError::Write {
        path: path.to_path_buf(),
        error,
    };
    let mut temporary = tempfile::NamedTempFile::new_in(folder_of(path)).map_err(failed)?;
    temporary
        .write_all(text.as_bytes())
        .and_then(|()| temporary.write_all(b"\n"))
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(failed)?;
    temporary.persist(path).map(drop).map_err(|e| failed(e.error))
}

/// Whether this record's trial failed.
pub fn gate_failed(r: &Record) -> bool {
    matches!(r.trial, TrialResult::Failed(_))
}
