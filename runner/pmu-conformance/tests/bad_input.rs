//! Every class of bad input, as a file under `tests/bad-input/` with its
//! expected errors written beside the offending lines:
//!
//! ```yaml
//!     runs: 0  #~ ERROR:11 `runs` must be at least 1
//! ```
//!
//! `#~ ERROR:<column> <text>` expects an error on that line, at that column,
//! whose message contains the text. Loading the file must report exactly the
//! annotated errors: none missing, none extra. One trial per file, so a new
//! class of bad input is a new file and no Rust.

mod common;

use std::path::Path;
use std::process::ExitCode;

use libtest_mimic::Failed;
use pmu_conformance::case::{SuiteSources, load_suites};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::input_error::SourceText;
use pmu_conformance::known_bugs::KnownBugs;

#[derive(Debug, PartialEq)]
struct Expected {
    line: u64,
    column: u64,
    text: String,
}

fn annotations(text: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some((_, note)) = line.split_once("#~ ERROR:") {
            let (column, text) = note.split_once(' ').unwrap_or((note, ""));
            let column = column
                .parse()
                .unwrap_or_else(|_| panic!("line {}: bad column in `{line}`", index + 1));
            out.push(Expected {
                line: index as u64 + 1,
                column,
                text: text.trim().to_owned(),
            });
        }
    }
    out
}

fn check(path: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let shown = format!("tests/bad-input/{}", path.file_name().unwrap().to_string_lossy());
    let expected = annotations(&text);
    if expected.is_empty() {
        return Err(format!("{shown} has no `#~ ERROR:` annotation; a bad-input case must expect an error").into());
    }
    let sources = SuiteSources(vec![SourceText::new(&shown, text)]);
    let errors = match load_suites(&sources, &EventTable::builtin(), &KnownBugs::builtin()) {
        Ok(_) => return Err(format!("{shown} loaded without error").into()),
        Err(errors) => errors,
    };
    let mut problems = Vec::new();
    for e in &expected {
        let found = errors
            .0
            .iter()
            .any(|got| got.line == e.line && got.column == e.column && got.message.contains(&e.text));
        if !found {
            problems.push(format!("missing: {shown}:{}:{}: …{}…", e.line, e.column, e.text));
        }
    }
    for got in &errors.0 {
        let wanted = expected
            .iter()
            .any(|e| got.line == e.line && got.column == e.column && got.message.contains(&e.text));
        if !wanted {
            problems.push(format!(
                "unexpected: {}:{}:{}: {}",
                got.path, got.line, got.column, got.message
            ));
        }
        if got.path != shown {
            problems.push(format!("error names {} instead of {shown}", got.path));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n\nall errors:\n{}", problems.join("\n"), errors).into())
    }
}

fn main() -> ExitCode {
    common::run_per_file("bad-input", "bad-input", check)
}
