//! The executor of an environment this host cannot run at all, for a
//! reason that is itself the environment's answer: every case is
//! `unsupported` with that reason, never a pass and never silent.
//!
//! Today:
//! - a Linux guest under a KVM that is a software virtualizer (kvm_pvm),
//!   which emulates a guest kernel until it meets an instruction it cannot
//!   (guest-boots.md: 58 s in the decompressor, then `KVM internal error`
//!   on `lock cmpxchg16b`), so the executor does not boot it;
//! - an `xl` environment on a machine that is not a Xen dom0.

use crate::case::Case;
use crate::event_table::ResolvedEvent;
use crate::executor::Executor;
use crate::outcome::{Outcome, Reason};

pub struct RefusedExecutor {
    pub reason: Reason,
    pub description: String,
}

impl Executor for RefusedExecutor {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn preflight(&self, _case: &Case) -> Result<Option<ResolvedEvent>, Reason> {
        Err(self.reason.clone())
    }

    fn run(&self, _case: &Case, _event: Option<&ResolvedEvent>) -> Outcome {
        Outcome::unsupported(self.reason.clone())
    }
}

/// Why this host's KVM cannot run a Linux guest, where it cannot: the
/// kvm_pvm module is loaded (`/sys/module/kvm_pvm`).
pub fn kvm_cannot_run_linux() -> Option<String> {
    std::path::Path::new("/sys/module/kvm_pvm").exists().then(|| {
        "this host's KVM cannot run a Linux guest: /dev/kvm is kvm_pvm, a software virtualizer that fails \
         on a Linux kernel's instructions (KVM internal error, emulation failure)"
            .to_owned()
    })
}

/// Why this machine cannot create Xen domUs, where it cannot: it is not a
/// Xen dom0, whose `/proc/xen/capabilities` says `control_d` (Linux's
/// xenfs, drivers/xen/xenfs/super.c).
pub fn not_a_xen_dom0() -> Option<String> {
    let capabilities = std::fs::read_to_string("/proc/xen/capabilities").unwrap_or_default();
    (!capabilities.contains("control_d")).then(|| {
        "this machine is not a Xen dom0 (/proc/xen/capabilities does not say control_d): an xl environment \
         runs in a Xen host's dom0, as root, with Xen's toolstack; xen-tcg-domu runs one under QEMU"
            .to_owned()
    })
}
