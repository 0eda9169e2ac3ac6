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
    /// (`yes` is an error, not `true`) and duplicate keys rejected.
    pub fn parse_yaml<T: DeserializeOwned>(&self) -> Result<T, InputError> {
        let options = serde_saphyr::options! { strict_booleans: true };
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
        match error.location() {
            Some(at) if at.line() > 0 => self.error_at_position(at.line(), at.column(), message),
            // An empty document has no position; point at its start.
            _ => self.error_at_position(1, 1, message),
        }
    }
}

/// serde-saphyr renders a message together with its location and snippet; we
/// render those ourselves, so capture just the message from its formatter.
fn core_message(error: &serde_saphyr::Error) -> String {
    struct Capture(RefCell<Option<String>>);
    impl MessageFormatter for Capture {
        fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
            let message = serde_saphyr::DefaultMessageFormatter.format_message(err);
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
            // Columns count characters; tabs keep their width so the caret lines up.
            let lead: String = quoted
                .chars()
                .take(self.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{number} | {quoted}")?;
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
