//! What the data-driven test targets share: one libtest trial per YAML file
//! of a folder, named `<prefix>::<file stem>`, in name order.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

/// Runs `check` on every `*.yaml` file in `tests/<folder>` as its own trial.
pub fn run_per_file(folder: &str, prefix: &str, check: fn(&Path) -> Result<(), Failed>) -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no cases in {}: an empty table tests nothing",
        dir.display()
    );
    let trials = files
        .into_iter()
        .map(|path| {
            let name = format!("{prefix}::{}", path.file_stem().unwrap().to_string_lossy());
            Trial::test(name, move || check(&path))
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}
