//! The JSON report (`--json PATH`): a [`Report`] as JSON, and back. Its
//! schema, `pmu-conformance/report/v2`, is documented in README.md ("JSON
//! report"), and a test holds the two together; change both at once.

use std::io::{self, Write};
use std::path::Path;

use super::{Report, SCHEMA};
use crate::input_file::{self, ReadError};

/// The largest report [`read`] accepts: thousands of cases, with diffs.
pub const REPORT_LIMIT: u64 = 64 << 20;

/// Writes `report` as pretty JSON with a final newline.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    out.write_all(b"\n")
}

/// Why a report could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadReportError {
    #[error("{}: {error}", .path)]
    File {
        path: String,
        #[source]
        error: ReadError,
    },
    #[error("{path}:{line}:{column}: not a pmu-conformance report: {message}")]
    Json {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: its schema is `{found}`; this pmu-conformance reads `{SCHEMA}`")]
    Schema { path: String, found: String },
}

/// Reads a report written by this version's [`write()`], from a file at most
/// [`REPORT_LIMIT`] bytes.
pub fn read(path: &Path) -> Result<Report, ReadReportError> {
    let shown = path.display().to_string();
    let text = input_file::read(path, REPORT_LIMIT).map_err(|error| ReadReportError::File {
        path: shown.clone(),
        error,
    })?;
    parse(&shown, &text)
}

/// Parses a report's text; `shown` names it in errors.
pub fn parse(shown: &str, text: &str) -> Result<Report, ReadReportError> {
    // The schema first, so a report of another version says so rather than
    // failing on the first field it does not know.
    #[derive(serde::Deserialize)]
    struct Versioned {
        schema: String,
    }
    let json_error = |e: serde_json::Error| ReadReportError::Json {
        path: shown.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let versioned: Versioned = serde_json::from_str(text).map_err(json_error)?;
    if versioned.schema != SCHEMA {
        return Err(ReadReportError::Schema {
            path: shown.to_owned(),
            found: versioned.schema,
        });
    }
    serde_json::from_str(text).map_err(json_error)
}
