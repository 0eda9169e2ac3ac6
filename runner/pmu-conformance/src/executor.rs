//! What runs an environment's cases: the one interface between the harness
//! and the places cases execute.
//!
//! Each environment has one [`Executor`]; which cases it gets is the
//! environment's `Target`'s to say. It decides cheaply whether a case can
//! run at all (while trials are listed), and runs a case on the calling
//! thread. The linux probe's
//! executor runs its checks over perf_event_open here; the sim executor runs
//! the same checks over the reference model, and kernel cases on the model
//! through the probe kernel's check library; the QEMU executor boots the
//! probe kernel.

use crate::case::Case;
use crate::event_table::ResolvedEvent;
use crate::outcome::Outcome;

pub trait Executor: Send + Sync {
    /// What executes the cases, for reports: `linux perf_event_open`.
    fn describe(&self) -> String;

    /// Whether `case` can run here, and its event as resolved here (linux
    /// cases) or `None` (kernel cases). Called while trials are listed.
    fn preflight(&self, case: &Case) -> Result<Option<ResolvedEvent>, String>;

    /// Runs `case` on the calling thread and returns its outcome.
    fn run(&self, case: &Case, event: Option<&ResolvedEvent>) -> Outcome;
}
