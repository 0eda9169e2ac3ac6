//! A Linux guest's report over its serial console.
//!
//! The guest writes its JSON report as CRC-framed chunks, the probe
//! kernel's own framing ([`pmu_kernel_checks::protocol`]), so kernel noise
//! on the same console, a truncated line or a flipped byte can never turn
//! into a misread report. The host keeps every intact chunk, and takes the
//! report only when each part arrived exactly once.

use pmu_kernel_checks::protocol::{self, Frame};

/// Runs `main` (the runner's command line) with `args` and `--json
/// report`, then prints the report it wrote as frames on stdout, after
/// whatever the run printed. The guest's init and a remote machine's
/// `stream-report` do this; the host reads the frames back with [`read`].
pub fn run_then_stream(
    main: impl FnOnce(Vec<String>) -> std::process::ExitCode,
    mut args: Vec<String>,
    report: &std::path::Path,
) -> std::process::ExitCode {
    use std::io::Write;
    args.extend(["--json".to_owned(), report.display().to_string()]);
    let status = main(args);
    match std::fs::read_to_string(report) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            for frame in frames(&text) {
                let _ = writeln!(out, "{frame}");
            }
            let _ = out.flush();
        }
        Err(e) => println!("pmu-conformance: no report at {}: {e}", report.display()),
    }
    status
}

/// Bytes of report per frame: a console line stays well under 256 bytes
/// even when every byte needs an escape.
const CHUNK: usize = 120;

/// The frames that carry `text`, in order.
pub fn frames(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    let parts = pieces.len() as u64;
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| protocol::chunk(i as u64, parts, p))
        .collect()
}

/// Why no report could be read from a console.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the guest sent no report")]
    Nothing,
    #[error(
        "{missing} of the report's {parts} parts never arrived intact ({corrupted} corrupted frames on the console)"
    )]
    Incomplete { parts: u64, missing: u64, corrupted: usize },
    #[error("the report's parts disagree on how many there are")]
    Inconsistent,
}

/// The text the chunk frames among `lines` carry.
pub fn read<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<String, StreamError> {
    let mut parts: Option<u64> = None;
    let mut got: Vec<Option<String>> = Vec::new();
    let mut corrupted = 0;
    for line in lines {
        match protocol::decode(line) {
            Some(Ok(Frame::Chunk { part, parts: n, data })) => {
                if *parts.get_or_insert(n) != n {
                    return Err(StreamError::Inconsistent);
                }
                if got.len() < n as usize {
                    got.resize(n as usize, None);
                }
                got[part as usize].get_or_insert(data);
            }
            Some(Err(_)) => corrupted += 1,
            _ => {}
        }
    }
    let Some(parts) = parts else {
        return Err(StreamError::Nothing);
    };
    let missing = got.iter().filter(|p| p.is_none()).count() as u64;
    if missing > 0 {
        return Err(StreamError::Incomplete {
            parts,
            missing,
            corrupted,
        });
    }
    Ok(got.into_iter().map(Option::unwrap_or_default).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_the_console_with_noise_between_its_frames() {
        let text = format!("{{\"summary\": \"1 pass → ok ×3\", \"pad\": \"{}\"}}", "x".repeat(700));
        let mut lines = vec!["[    0.000000] Linux version 6.1".to_owned()];
        for f in frames(&text) {
            lines.push(f);
            lines.push("random kernel noise".to_owned());
        }
        assert!(lines.iter().all(|l| l.len() < 256));
        assert_eq!(read(lines.iter().map(String::as_str)), Ok(text));
    }

    #[test]
    fn a_lost_or_damaged_part_is_an_error_never_a_shorter_report() {
        let text = "y".repeat(500);
        let mut lines = frames(&text);
        lines[2] = lines[2].replacen('y', "z", 1);
        let err = read(lines.iter().map(String::as_str)).unwrap_err();
        assert_eq!(
            err,
            StreamError::Incomplete {
                parts: 5,
                missing: 1,
                corrupted: 1
            }
        );
        assert_eq!(read(["no frames at all"]), Err(StreamError::Nothing));
    }
}
