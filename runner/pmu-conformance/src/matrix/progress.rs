//! What a running matrix shows: environments done out of the total, and the
//! case each running environment is on (indicatif, on a terminal's stderr).
//! Off a terminal nothing redraws: each environment prints one line as it
//! starts and one as it ends, so a CI log reads in order.

use std::path::Path;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Planned;
use super::report::EnvironmentRun;

pub struct Display {
    multi: MultiProgress,
    total: ProgressBar,
}

/// One running environment's line.
pub struct Bar {
    bar: ProgressBar,
    id: String,
}

impl Bar {
    /// The environment has started `case`.
    pub fn case(&self, case: &str) {
        self.bar.set_message(format!("{}: {case}", self.id));
    }
}

impl Display {
    pub fn new(planned: &[Planned], jobs: usize, file: &Path) -> Display {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(planned.len() as u64));
        total.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} environments, {elapsed}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        total.set_prefix(format!("matrix {}", file.display()));
        let display = Display { multi, total };
        display.say(&format!(
            "matrix {}: {} environments, {jobs} at a time",
            file.display(),
            planned.len()
        ));
        display
    }

    /// A line above the bars, or on stderr where there are none.
    fn say(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub fn start(&self, p: &Planned) -> Bar {
        let bar = self.multi.insert_before(&self.total, ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {spinner} {msg} ({elapsed})").expect("a valid template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        let id = p.environment.id.to_string();
        bar.set_message(format!("{id}: starting ({} cases)", p.cases.len()));
        if self.multi.is_hidden() {
            eprintln!(
                "matrix: {id} started ({} cases, deadline {} s)",
                p.cases.len(),
                p.deadline.as_secs()
            );
        }
        Bar { bar, id }
    }

    pub fn finish(&self, bar: &Bar, run: &EnvironmentRun) {
        bar.bar.finish_and_clear();
        self.multi.remove(&bar.bar);
        self.total.inc(1);
        self.say(&format!("matrix: {}", run.line()));
    }

    pub fn clear(&self) {
        self.total.finish_and_clear();
    }
}
