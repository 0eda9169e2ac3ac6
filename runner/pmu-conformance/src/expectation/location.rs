//! Where recorded expectations live: one rule, for a run from a checkout and
//! for a binary copied to another machine alike. Nothing is baked in at
//! build time. In order:
//!
//! 1. `--expected DIR`, relative to the working directory;
//! 2. `$PMU_CONFORMANCE_EXPECTED`, the same;
//! 3. the `expected/` folder of the checkout the run is started inside (the
//!    nearest folder above the working directory that holds `expected/`,
//!    `matrices/` and `suites/`);
//! 4. nowhere: nothing is recorded, so every case must pass on its own, and
//!    the run's header says so.
//!
//! `--accept` writes exactly where the comparison reads, so a record and the
//! next run's compare always meet.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The environment variable that names the expectations folder.
pub const VARIABLE: &str = "PMU_CONFORMANCE_EXPECTED";

/// Which rule found the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Variable,
    Checkout,
    Nowhere,
}

/// The expectations folder of a run, and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Absolute; `None` where [`Source::Nowhere`].
    pub root: Option<PathBuf>,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("{given} is {}: it is a file, not a folder of expectations", .path.display())]
    NotAFolder { given: &'static str, path: PathBuf },
    #[error(
        "{given} is {}, which does not exist; give an existing folder, or record into a new one with --accept",
        .path.display()
    )]
    Missing { given: &'static str, path: PathBuf },
    #[error("{given} is {}: {error}", .path.display())]
    Unusable {
        given: &'static str,
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("--accept has nowhere to record: run inside a checkout, or give --expected DIR or ${VARIABLE}")]
    NowhereToRecord,
}

impl Location {
    /// Applies the rule: `flag` is `--expected`, `variable` the value of
    /// [`VARIABLE`], `cwd` the working directory. With `accept`, a folder
    /// that does not exist yet will be created, and having none is an error.
    pub fn find(
        flag: Option<&Path>,
        variable: Option<OsString>,
        cwd: &Path,
        accept: bool,
    ) -> Result<Location, LocationError> {
        let given = flag.map(|p| ("--expected", p.to_path_buf(), Source::Flag)).or_else(|| {
            variable
                .filter(|v| !v.is_empty())
                .map(|v| ("$PMU_CONFORMANCE_EXPECTED", PathBuf::from(v), Source::Variable))
        });
        if let Some((given, path, source)) = given {
            let path = cwd.join(path);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(LocationError::NotAFolder { given, path }),
                Err(e) if e.kind() == io::ErrorKind::NotFound && accept => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LocationError::Missing { given, path }),
                Err(error) => return Err(LocationError::Unusable { given, path, error }),
            }
            return Ok(Location {
                root: Some(path),
                source,
            });
        }
        let checkout = cwd
            .ancestors()
            .find(|dir| ["expected", "matrices", "suites"].iter().all(|d| dir.join(d).is_dir()));
        match checkout {
            Some(dir) => Ok(Location {
                root: Some(dir.join("expected")),
                source: Source::Checkout,
            }),
            None if accept => Err(LocationError::NowhereToRecord),
            None => Ok(Location {
                root: None,
                source: Source::Nowhere,
            }),
        }
    }
}

impl fmt::Display for Location {
    /// Which rule found the folder: `--expected`, `the checkout`, ….
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.source {
            Source::Flag => "--expected",
            Source::Variable => "$PMU_CONFORMANCE_EXPECTED",
            Source::Checkout => "the checkout",
            Source::Nowhere => "no expectations folder: no --expected, no $PMU_CONFORMANCE_EXPECTED, not in a checkout",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_then_the_variable_then_the_checkout_then_nowhere() {
        let top = tempfile::tempdir().unwrap();
        let checkout = top.path().join("checkout");
        for d in ["expected", "matrices", "suites", "runner/deep"] {
            std::fs::create_dir_all(checkout.join(d)).unwrap();
        }
        let inside = checkout.join("runner/deep");
        let mine = top.path().join("mine");
        std::fs::create_dir(&mine).unwrap();

        // Relative to the working directory.
        let found = Location::find(Some(Path::new("../mine")), None, &checkout, false).unwrap();
        assert_eq!(found.source, Source::Flag);
        assert!(found.root.unwrap().starts_with(&checkout));
        let found = Location::find(None, Some("mine".into()), top.path(), false).unwrap();
        assert_eq!((found.root.unwrap(), found.source), (mine.clone(), Source::Variable));
        let found = Location::find(None, None, &inside, false).unwrap();
        assert_eq!(
            (found.root.unwrap(), found.source),
            (checkout.join("expected"), Source::Checkout)
        );
        let found = Location::find(None, Some("".into()), top.path(), false).unwrap();
        assert_eq!((found.root, found.source), (None, Source::Nowhere));
    }

    #[test]
    fn what_cannot_be_a_folder_of_expectations_is_refused() {
        let top = tempfile::tempdir().unwrap();
        let file = top.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = Location::find(Some(&file), None, top.path(), false).unwrap_err();
        assert!(err.to_string().contains("it is a file"), "{err}");
        let new = top.path().join("new");
        let err = Location::find(Some(&new), None, top.path(), false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(Location::find(Some(&new), None, top.path(), true).is_ok());
        let err = Location::find(None, None, top.path(), true).unwrap_err();
        assert!(matches!(err, LocationError::NowhereToRecord), "{err}");
    }
}
