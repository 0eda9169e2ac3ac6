//! The overall deadline: however a check goes wrong, the guest ends with a
//! message within `pmuc.watchdog` seconds (30 by default) of the banner.
//!
//! Interrupts are off almost all the time, so no timer interrupt could
//! enforce it. Instead every `Hardware` call and every iteration of a PMI
//! wait compares the TSC ([`crate::clock`]) with the deadline. A lost PMI
//! cannot hang the guest anyway, since every wait is bounded; this bounds
//! the sum. The one stretch it cannot cut short is a single counted window,
//! whose length the plan sets; QEMU's timeout on the host covers that.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::clock;

static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);
static SECONDS: AtomicU64 = AtomicU64::new(0);

/// Arms the deadline `seconds` from now, at `hz` TSC ticks a second.
pub fn start(seconds: u64, hz: u64) {
    SECONDS.store(seconds, Ordering::Relaxed);
    DEADLINE.store(
        clock::now().saturating_add(seconds.saturating_mul(hz)),
        Ordering::Relaxed,
    );
}

/// Ends the guest if the deadline has passed.
pub fn check() {
    if clock::now() >= DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: CLI at CPL0; the guest is ending.
        unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
        crate::exit::fatal(format_args!(
            "watchdog expired ({} s, `pmuc.watchdog=`)",
            SECONDS.load(Ordering::Relaxed)
        ));
    }
}
