//! Every file the runner reads, read one careful way: only regular files,
//! never more than a stated limit, never blocking on a FIFO, and with an
//! error that says which of those it was.
//!
//! A suite folder is user input: a FIFO named `x.yaml` would block a plain
//! `read_to_string` forever, and a link to /dev/zero would grow it without
//! end. [`read`] opens without blocking, refuses anything that is not a
//! regular file, and reads at most `limit` bytes; [`yaml_sources`] is the one
//! way to load every `*.yaml` directly in a folder (suites, matrices).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::input_error::{InputError, InputErrors, SourceText};

/// The largest suite or matrix file: far more than any hand-written YAML.
pub const YAML_LIMIT: u64 = 1 << 20;

/// The largest recorded expectation.
pub const SNAPSHOT_LIMIT: u64 = 256 << 10;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("it does not exist")]
    NotFound,
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("it is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge { size: u64, limit: u64 },
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("{0}")]
    Io(#[source] io::Error),
}

impl ReadError {
    fn from_io(error: io::Error) -> ReadError {
        match error.kind() {
            io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(error),
        }
    }
}

/// What kind of non-regular file `path` is, for messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the regular file at `path` (following links) as UTF-8, if it is at
/// most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|_| ReadError::NotText)
}

/// Reads the regular file at `path` (following links), if it is at most
/// `limit` bytes.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::from_io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile(kind_of(metadata.file_type())));
    }
    if metadata.len() > limit {
        return Err(ReadError::TooLarge {
            size: metadata.len(),
            limit,
        });
    }
    // The file may grow between the stat and the read: never take more than the limit.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Every `*.yaml` entry directly in `dir`, in name order, each read with
/// [`YAML_LIMIT`]; `what` names them in messages ("suite", "matrix"). Every
/// file that cannot be read is an error at that file; an empty folder is one too.
pub fn yaml_sources(dir: &Path, what: &str) -> Result<Vec<SourceText>, InputErrors> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| InputError::whole_file(&shown, format!("cannot read this {what} folder: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    let mut errors = InputErrors::default();
    for path in paths {
        let shown = path.display().to_string();
        match read(&path, YAML_LIMIT) {
            Ok(text) => sources.push(SourceText::new(shown, text)),
            Err(e) => errors.push(InputError::whole_file(
                shown,
                format!("cannot read this {what} file: {e}"),
            )),
        }
    }
    if sources.is_empty() && errors.is_empty() {
        errors.push(InputError::whole_file(
            &shown,
            format!("no {what} files (*.yaml) in this folder"),
        ));
    }
    errors.or_ok(sources)
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.yaml");
        std::fs::write(&text, "about: x\n").unwrap();
        assert_eq!(read(&text, 100).unwrap(), "about: x\n");
        assert!(matches!(read(&text, 4), Err(ReadError::TooLarge { size: 9, limit: 4 })));
        assert!(matches!(
            read(&dir.path().join("none.yaml"), 100),
            Err(ReadError::NotFound)
        ));
        assert!(matches!(read(dir.path(), 100), Err(ReadError::NotAFile("a directory"))));

        let fifo = dir.path().join("fifo.yaml");
        let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a plain mkfifo on a path in our own temporary folder.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        assert!(matches!(read(&fifo, 100), Err(ReadError::NotAFile("a FIFO"))));
        assert!(started.elapsed() < Duration::from_secs(1), "a FIFO must not block");

        let zero = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read(&zero, 100),
            Err(ReadError::NotAFile("a character device"))
        ));

        std::fs::write(dir.path().join("bad.yaml"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read(&dir.path().join("bad.yaml"), 100),
            Err(ReadError::NotText)
        ));
    }

    #[test]
    fn a_folder_reports_every_unreadable_yaml_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.yaml"), "about: x\n").unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let errors = yaml_sources(dir.path(), "suite").unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(errors.0[0].path.ends_with("zero.yaml"));
        assert!(
            errors.0[0]
                .message
                .contains("cannot read this suite file: it is a character device"),
            "{errors}"
        );
        let empty = tempfile::tempdir().unwrap();
        let errors = yaml_sources(empty.path(), "matrix").unwrap_err();
        assert!(errors.0[0].message.contains("no matrix files"), "{errors}");
    }
}
