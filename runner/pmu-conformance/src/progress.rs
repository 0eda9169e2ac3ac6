//! What a run shows while one thing takes longer than a second: a guest's
//! boot, the plan's boot, a case with many runs. After [`Progress::after`]
//! a spinner, what is running and its elapsed time appear on the terminal
//! at the cursor, after libtest's dots, and are redrawn ten times a second
//! until it ends, when they are erased and the next dot lands where they
//! were. Nothing is drawn for what ends sooner, and nothing at all unless
//! standard output and standard error are both terminals (a pipe, a file
//! and CI's log get only the dots and the table).
//!
//! Each draw saves the cursor (DECSC), writes the text, clears the rest of
//! the line and restores the cursor (DECRC), so the dots are never moved;
//! the text is cut to what fits between the cursor's column and the
//! terminal's edge, so it never wraps and scrolls.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a thing runs before it is shown.
pub const AFTER: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(100);
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Where and when activities are shown: a run makes one, drawing or not.
#[derive(Clone, Debug)]
pub struct Progress {
    /// None: nothing is drawn.
    sink: Option<Sink>,
    after: Duration,
}

#[derive(Clone, Debug)]
enum Sink {
    Stderr {
        width: usize,
    },
    #[cfg(test)]
    Buffer {
        text: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        width: usize,
    },
}

impl Sink {
    fn width(&self) -> usize {
        match self {
            Sink::Stderr { width } => *width,
            #[cfg(test)]
            Sink::Buffer { width, .. } => *width,
        }
    }

    fn write(&self, bytes: &[u8]) {
        match self {
            Sink::Stderr { .. } => {
                // The dots first, so the cursor is where they end.
                let _ = std::io::stdout().flush();
                let mut stderr = std::io::stderr().lock();
                let _ = stderr.write_all(bytes);
                let _ = stderr.flush();
            }
            #[cfg(test)]
            Sink::Buffer { text, .. } => text.lock().expect("buffer lock").extend_from_slice(bytes),
        }
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::hidden()
    }
}

impl Progress {
    /// Shows nothing.
    pub fn hidden() -> Progress {
        Progress {
            sink: None,
            after: AFTER,
        }
    }

    /// On this terminal's standard error, `width` columns wide, when
    /// standard output and standard error are both terminals; else hidden.
    pub fn on_terminal(width: u16, after: Duration) -> Progress {
        use std::io::IsTerminal;
        let attended = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Progress {
            sink: attended.then_some(Sink::Stderr {
                width: usize::from(width),
            }),
            after,
        }
    }

    /// `what` starts now, with the cursor at `column`; shown if it lasts
    /// past [`Progress::after`], until the returned activity is dropped.
    pub fn start(&self, what: impl Into<String>, column: usize) -> Activity {
        let Some(sink) = self.sink.clone() else {
            return Activity {
                end: None,
                thread: None,
            };
        };
        let (end, ended) = mpsc::channel::<()>();
        let what = what.into();
        let after = self.after;
        let thread = thread::Builder::new()
            .name("progress".into())
            .spawn(move || show(&sink, &what, column, after, &ended))
            .ok();
        Activity { end: Some(end), thread }
    }
}

/// Something running; dropping it ends its display.
#[must_use = "the activity is shown until it is dropped"]
pub struct Activity {
    end: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Activity {
    fn drop(&mut self) {
        drop(self.end.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The line drawn at `elapsed`, cut to `room` columns: the spinner, what
/// runs and its seconds; the seconds alone if `what` does not fit; None if
/// even they do not.
fn line(what: &str, elapsed: Duration, tick: usize, room: usize) -> Option<String> {
    let spinner = SPINNER[tick % SPINNER.len()];
    let seconds = elapsed.as_secs_f64();
    [
        format!(" {spinner} {what} {seconds:.1} s"),
        format!(" {spinner} {seconds:.0} s"),
    ]
    .into_iter()
    .find(|text| text.chars().count() <= room)
}

fn show(sink: &Sink, what: &str, column: usize, after: Duration, ended: &mpsc::Receiver<()>) {
    let started = Instant::now();
    if !matches!(ended.recv_timeout(after), Err(RecvTimeoutError::Timeout)) {
        return;
    }
    // One column spare: a terminal that wraps at its last column scrolls.
    let room = sink.width().saturating_sub(column % sink.width().max(1) + 1);
    let mut drawn = false;
    for tick in 0.. {
        if let Some(text) = line(what, started.elapsed(), tick, room) {
            sink.write(format!("\x1b7{text}\x1b[K\x1b8").as_bytes());
            drawn = true;
        }
        if !matches!(ended.recv_timeout(TICK), Err(RecvTimeoutError::Timeout)) {
            break;
        }
    }
    if drawn {
        sink.write(b"\x1b[K");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn buffered(width: usize, after: Duration) -> (Progress, Arc<Mutex<Vec<u8>>>) {
        let text = Arc::new(Mutex::new(Vec::new()));
        let progress = Progress {
            sink: Some(Sink::Buffer {
                text: text.clone(),
                width,
            }),
            after,
        };
        (progress, text)
    }

    fn written(text: &Mutex<Vec<u8>>) -> String {
        String::from_utf8(text.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn what_ends_within_the_threshold_draws_nothing() {
        let (progress, text) = buffered(80, Duration::from_secs(5));
        drop(progress.start("selfcheck/quick", 3));
        assert_eq!(written(&text), "");
        drop(Progress::hidden().start("anything", 0));
    }

    #[test]
    fn what_runs_longer_is_drawn_at_the_cursor_and_erased() {
        let (progress, text) = buffered(80, Duration::from_millis(20));
        let activity = progress.start("selfcheck/slow", 12);
        thread::sleep(Duration::from_millis(350));
        drop(activity);
        let text = written(&text);
        let draws: Vec<&str> = text.split("\x1b7").skip(1).collect();
        assert!(draws.len() >= 2, "redrawn: {text:?}");
        for draw in &draws[..draws.len() - 1] {
            assert!(
                draw.contains(" selfcheck/slow 0.") && draw.ends_with(" s\x1b[K\x1b8"),
                "{draw:?}"
            );
        }
        assert!(text.ends_with("\x1b8\x1b[K"), "erased at the end: {text:?}");
    }

    #[test]
    fn the_text_never_passes_the_terminal_edge() {
        let seconds = Duration::from_millis(1500);
        assert_eq!(
            line("exact-counts/x", seconds, 0, 40).as_deref(),
            Some(" ⠋ exact-counts/x 1.5 s")
        );
        assert_eq!(line("exact-counts/x", seconds, 1, 10).as_deref(), Some(" ⠙ 2 s"));
        assert_eq!(line("exact-counts/x", seconds, 0, 5), None);
        // A cursor at column 68 of 80 leaves room for nothing but the seconds.
        let (progress, text) = buffered(80, Duration::from_millis(10));
        let activity = progress.start("a-long-case-name", 68);
        thread::sleep(Duration::from_millis(150));
        drop(activity);
        let text = written(&text);
        assert!(
            text.contains(" 0 s\x1b[K") && !text.contains("a-long-case-name"),
            "{text:?}"
        );
        // And at column 79, not even those: nothing is drawn or erased.
        let (progress, text) = buffered(80, Duration::from_millis(10));
        let activity = progress.start("a-long-case-name", 79);
        thread::sleep(Duration::from_millis(150));
        drop(activity);
        assert_eq!(written(&text), "");
    }
}
