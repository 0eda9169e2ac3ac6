//! Located errors in what users write: suites, matrices, the event table.
//!
//! Every problem with input is reported as an [`InputError`] that names
//! `file:line:column`, shows the offending line, and says how to fix it where
//! that is not obvious. Loading collects every error it can find before giving
//! up, so a case author sees all their mistakes at once. The binary turns a
//! non-empty [`InputErrors`] into exit status 2; nothing runs half-validated.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_saphyr::{MessageFormatter, Spanned};

/// The text of one input file, kept so errors can quote the offending line.
#[derive(Clone, Debug)]
pub struct SourceText {
    /// The path as the user should see it, relative to the project root where possible.
    pub path: String,
    pub text: Arc<str>,
}

impl SourceText {
    pub fn new(path: impl Into<String>, text: impl Into<Arc<str>>) -> SourceText {
        SourceText {
            path: path.into(),
            text: text.into(),
        }
    }

    /// Parses the whole file as `T` with the suite's YAML rules: strict booleans
    /// (`yes` is an error, not `true`), duplicate keys rejected, and the YAML
    /// budget: [`YAML_MAX_NODES`], [`YAML_MAX_DEPTH`], [`YAML_MAX_ALIASES`].
    pub fn parse_yaml<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        let options = serde_saphyr::options! {
            strict_booleans: true,
            budget: Some(yaml_budget()),
        };
        serde_saphyr::from_str_with_options(&self.text, options).map_err(|e| self.yaml_error(&e))
    }

    /// An error at the place `spanned` came from.
    pub fn error_at<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> InputError {
        let at = spanned.referenced;
        self.error_at_position(at.line(), at.column(), message)
    }

    pub fn error_at_position(&self, line: u64, column: u64, message: impl Into<String>) -> InputError {
        let quoted = self
            .text
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .map(str::to_owned);
        InputError {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
            quoted,
            help: None,
        }
    }

    fn yaml_error(&self, error: &serde_saphyr::Error) -> InputError {
        let message = core_message(error);
        let (line, column) = match error.location() {
            Some(at) if at.line() > 0 => (at.line(), at.column()),
            // An empty document has no position; point at its start.
            _ => (1, 1),
        };
        // serde reports a missing field where the mapping ends; the author
        // looks for it where the mapping (a case, say) starts.
        let (line, column) = if message.starts_with("this entry has no `") {
            self.start_of_entry(line, column)
        } else {
            (line, column)
        };
        self.error_at_position(line, column, message)
    }

    /// Where the list entry holding `line`, `column` starts: its first key,
    /// just after the nearest `- ` above it at the entry's indentation. The
    /// file's start if there is none (the file's own top-level mapping).
    fn start_of_entry(&self, line: u64, column: u64) -> (u64, u64) {
        let lines: Vec<&str> = self.text.lines().collect();
        // Columns are 1-based: the key is at index column - 1, its `- ` two before.
        let dash_column = column.saturating_sub(3) as usize;
        (1..=line.min(lines.len() as u64))
            .rev()
            .find(|&l| {
                let text = lines[l as usize - 1];
                text.len() > dash_column + 1
                    && text[..dash_column].chars().all(|c| c == ' ')
                    && text[dash_column..].starts_with("- ")
            })
            .map_or((1, 1), |l| (l, column))
    }
}

// The YAML budget every suite and matrix file is parsed under: far above
// what a hand-written file needs, far below what would make a bad one costly.
// suites/README.md ("Limits") documents it.

/// Sequences, mappings and scalars in one file.
pub const YAML_MAX_NODES: usize = 100_000;
/// Nesting of sequences and mappings.
pub const YAML_MAX_DEPTH: usize = 32;
/// `*alias` references in one file.
pub const YAML_MAX_ALIASES: usize = 1_000;

fn yaml_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = YAML_MAX_NODES;
    budget.max_depth = YAML_MAX_DEPTH;
    budget.max_aliases = YAML_MAX_ALIASES;
    budget.max_events = 4 * YAML_MAX_NODES;
    budget
}

/// serde-saphyr's messages, reworded for a case author where they speak to a
/// Rust programmer, or say less than the author needs.
struct ForAuthors;

impl MessageFormatter for ForAuthors {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
        use serde_saphyr::Error;
        use serde_saphyr::budget::BudgetBreach;
        let limits = "suites/README.md (\"Limits\") gives the limits; split the file in two";
        match err {
            Error::DuplicateMappingKey { key: Some(key), .. } => {
                Cow::Owned(format!("`{key}` is given twice in this mapping; give each key once"))
            }
            Error::DuplicateMappingKey { key: None, .. } => {
                Cow::Borrowed("a key is given twice in this mapping; give each key once")
            }
            Error::SerdeMissingField { field, .. } => {
                Cow::Owned(format!("this entry has no `{field}`, which it needs"))
            }
            Error::NullIntoString { .. } => Cow::Borrowed("a value is missing here"),
            Error::Budget {
                breach: BudgetBreach::Nodes { .. },
                ..
            } => Cow::Owned(format!("this file has more than {YAML_MAX_NODES} YAML nodes; {limits}")),
            Error::Budget {
                breach: BudgetBreach::Depth { .. },
                ..
            } => Cow::Owned(format!(
                "this nests more than {YAML_MAX_DEPTH} lists and mappings deep; {limits}"
            )),
            Error::Budget {
                breach: BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. },
                ..
            } => Cow::Owned(format!("this file uses more than {YAML_MAX_ALIASES} aliases; {limits}")),
            Error::Budget { .. } => Cow::Owned(format!("this file is too large or too complex to read; {limits}")),
            _ => serde_saphyr::DefaultMessageFormatter.format_message(err),
        }
    }
}

/// serde-saphyr renders a message together with its location and snippet; we
/// render those ourselves, so capture just the message from its formatter.
fn core_message(error: &serde_saphyr::Error) -> String {
    struct Capture(RefCell<Option<String>>);
    impl MessageFormatter for Capture {
        fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
            let message = ForAuthors.format_message(err);
            *self.0.borrow_mut() = Some(message.to_string());
            message
        }
    }
    let capture = Capture(RefCell::new(None));
    let rendered = error.render_with_options(serde_saphyr::render_options! {
        formatter: &capture,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    capture.0.into_inner().unwrap_or(rendered)
}

/// The most characters of the offending line an error quotes.
const QUOTE_WIDTH: usize = 120;

/// One problem in an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub path: String,
    /// 1-based.
    pub line: u64,
    /// 1-based, in characters.
    pub column: u64,
    pub message: String,
    /// The offending line, quoted under the message.
    pub quoted: Option<String>,
    pub help: Option<String>,
}

impl InputError {
    pub fn with_help(mut self, help: impl Into<String>) -> InputError {
        self.help = Some(help.into());
        self
    }

    /// An error about a whole file (it could not be read, say).
    pub fn whole_file(path: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            path: path.into(),
            line: 1,
            column: 1,
            message: message.into(),
            quoted: None,
            help: None,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            self.path, self.line, self.column, self.message
        )?;
        if let Some(quoted) = &self.quoted {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            // A long line is quoted as a window around the column, marked with `…`.
            let chars: Vec<char> = quoted.chars().collect();
            let at = (self.column.saturating_sub(1) as usize).min(chars.len());
            let start = at
                .saturating_sub(QUOTE_WIDTH / 2)
                .min(chars.len().saturating_sub(QUOTE_WIDTH));
            let end = (start + QUOTE_WIDTH).min(chars.len());
            let before = if start > 0 { "…" } else { "" };
            let after = if end < chars.len() { "…" } else { "" };
            let shown: String = chars[start..end].iter().collect();
            // Columns count characters; tabs keep their width so the caret lines up.
            let lead: String = before
                .chars()
                .chain(chars[start..at].iter().copied())
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{number} | {before}{shown}{after}")?;
            writeln!(f, "{gutter} | {lead}^")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Every problem found in one load, in file order.
#[derive(Debug, Default)]
pub struct InputErrors(pub Vec<InputError>);

impl InputErrors {
    pub fn push(&mut self, error: InputError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` if nothing was found wrong, else every error.
    pub fn or_ok<T>(self, value: T) -> Result<T, InputErrors> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl From<InputError> for InputErrors {
    fn from(error: InputError) -> InputErrors {
        InputErrors(vec![error])
    }
}

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let n = self.0.len();
        write!(f, "{n} input error{}; nothing was run", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for InputErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        #[allow(dead_code, reason = "only parsed")]
        items: Vec<String>,
    }

    #[test]
    fn yaml_past_the_budget_is_refused_with_the_limit_and_what_to_do() {
        let text = format!("items: [{}]\n", vec!["a"; YAML_MAX_NODES + 1].join(", "));
        let err = SourceText::new("suites/big.yaml", text)
            .parse_yaml::<Doc>()
            .unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            err.message
                .starts_with("this file has more than 100000 YAML nodes; suites/README.md (\"Limits\")"),
            "{}",
            err.message
        );
        let fine = format!("items: [{}]\n", vec!["a"; 1000].join(", "));
        assert!(SourceText::new("suites/fine.yaml", fine).parse_yaml::<Doc>().is_ok());
    }

    #[test]
    fn a_long_line_is_quoted_as_a_window_around_the_column() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let err = SourceText::new("f.yaml", line).error_at_position(1, 501, "here");
        let shown = err.to_string();
        let quoted = shown.lines().nth(2).unwrap();
        let caret = shown.lines().nth(3).unwrap();
        assert!(quoted.starts_with("1 | …") && quoted.ends_with('…'), "{quoted}");
        assert!(quoted.chars().count() < 140, "{quoted}");
        let at = caret.chars().position(|c| c == '^').unwrap();
        assert_eq!(
            quoted.chars().nth(at),
            Some('X'),
            "the caret is under the column:\n{shown}"
        );
    }
}
