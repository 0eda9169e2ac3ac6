//! The probe kernel's own command-line options (the plan, `pmuc=…`, is
//! `pmu_kernel_checks::plan`'s).
//!
//! `pmuc.watchdog=<seconds>` sets the overall deadline ([`crate::watchdog`]),
//! 30 s by default. `0` expires at the first check: it exists to exercise
//! the expiry path. A value that is not a whole number is reported and
//! ignored rather than fatal, so a typo cannot turn into a guest that never
//! gives up.
//!
//! `pmuc.window-trace=<passes>` runs the counted window once, before the
//! plan, bracketed by a harmless MSR instead of a counter's, so that a host
//! tracing the guest's instructions (QEMU's `-d exec` under TCG) can hold
//! the window to its listing on a machine with no PMU. At most
//! [`MAX_TRACE_PASSES`]; a bad value is reported and ignored.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

pub const DEFAULT_WATCHDOG_SECONDS: u64 = 30;
const WATCHDOG: &str = "pmuc.watchdog=";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watchdog<'a> {
    pub seconds: u64,
    /// The value given, where it was not a whole number of seconds.
    pub rejected: Option<&'a str>,
}

/// The watchdog setting: the last `pmuc.watchdog=` word wins, as with Linux's options.
pub fn watchdog(cmdline: &str) -> Watchdog<'_> {
    let given = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(WATCHDOG))
        .next_back();
    match given.map(|v| (v, v.parse::<u64>())) {
        None => Watchdog {
            seconds: DEFAULT_WATCHDOG_SECONDS,
            rejected: None,
        },
        Some((_, Ok(seconds))) => Watchdog {
            seconds,
            rejected: None,
        },
        Some((value, Err(_))) => Watchdog {
            seconds: DEFAULT_WATCHDOG_SECONDS,
            rejected: Some(value),
        },
    }
}

const WINDOW_TRACE: &str = "pmuc.window-trace=";

/// The most passes a traced window may run: every instruction of it is
/// logged by the tracing host.
pub const MAX_TRACE_PASSES: u64 = 100_000;

/// The `pmuc.window-trace=` setting: `Ok(None)` when absent, `Err(value)`
/// when it is not a whole number of passes from 1 to [`MAX_TRACE_PASSES`].
pub fn window_trace(cmdline: &str) -> Result<Option<u64>, &str> {
    let given = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(WINDOW_TRACE))
        .next_back();
    match given {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=MAX_TRACE_PASSES).contains(&n) => Ok(Some(n)),
            _ => Err(v),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_defaults_to_30_seconds() {
        assert_eq!(watchdog("pmuc=k/a,ovf-ack").seconds, 30);
        assert_eq!(watchdog("").seconds, 30);
    }

    #[test]
    fn the_watchdog_word_sets_it_and_the_plan_word_is_not_mistaken_for_it() {
        let w = watchdog("pmuc=k/a,ovf-ack pmuc.watchdog=5 quiet");
        assert_eq!(
            w,
            Watchdog {
                seconds: 5,
                rejected: None
            }
        );
        assert_eq!(watchdog("pmuc.watchdog=5 pmuc.watchdog=0").seconds, 0);
    }

    #[test]
    fn a_bad_value_is_reported_and_the_default_kept() {
        let w = watchdog("pmuc.watchdog=1.5");
        assert_eq!(
            w,
            Watchdog {
                seconds: 30,
                rejected: Some("1.5")
            }
        );
        assert_eq!(watchdog("pmuc.watchdog=").rejected, Some(""));
    }

    #[test]
    fn a_window_trace_is_asked_for_in_whole_passes() {
        assert_eq!(window_trace("pmuc=k/a,ovf-ack"), Ok(None));
        assert_eq!(window_trace("pmuc.window-trace=7 quiet"), Ok(Some(7)));
        assert_eq!(window_trace("pmuc.window-trace=0"), Err("0"));
        assert_eq!(window_trace("pmuc.window-trace=100001"), Err("100001"));
        assert_eq!(window_trace("pmuc.window-trace=x"), Err("x"));
    }
}
