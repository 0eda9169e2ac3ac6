//! Linux's software events, simulated: breakpoints, page faults and the task
//! clock are the kernel's own bookkeeping, not the PMU's, so the model's
//! faults never touch them. A breakpoint or fault is counted exactly and
//! notifies in the exception, with no skid; the task clock ticks one
//! nanosecond per instruction and its timer fires on time.

use crate::event_table::SoftwareEvent;
use crate::probe::{Notification, NotificationKind, Reading, Window, WindowRun};
use crate::vocabulary::ProbeKind;

pub fn run(event: SoftwareEvent, window: &Window<'_>) -> WindowRun {
    let counts = window
        .workload
        .counts(ProbeKind::Linux)
        .expect("every workload has a linux window");
    let total = match event {
        SoftwareEvent::BreakpointExecute => counts.marker_hits,
        SoftwareEvent::PageFaults => counts.page_faults,
        SoftwareEvent::TaskClock => counts.instructions,
    };
    let time = counts.instructions.max(1);
    let Some(sampling) = window.sampling else {
        return WindowRun {
            reading: Reading {
                value: total,
                time_enabled: time,
                time_running: time,
            },
            notifications: Vec::new(),
            overflows_handled: None,
        };
    };
    let period = sampling.period;
    let crossed = total / period;
    let limit = sampling.refresh.map(u64::from);
    let notified = limit.map_or(crossed, |l| crossed.min(l));
    let notifications = (1..=notified)
        .map(|k| Notification {
            count: k * period,
            kind: if Some(k) == limit {
                NotificationKind::Hangup
            } else {
                NotificationKind::Overflow
            },
            after_window: false,
        })
        .collect();
    // A REFRESH budget that runs out stops the count at its last boundary.
    let value = match limit {
        Some(l) if crossed >= l => l * period,
        _ => total,
    };
    WindowRun {
        reading: Reading {
            value,
            time_enabled: time,
            time_running: time,
        },
        notifications,
        overflows_handled: Some(notified),
    }
}
