//! `write-running`: a write to a counter while it counts takes effect, and
//! the counter counts on from the value written (kvm-unit-tests x86/pmu.c,
//! check_running_counter_wrmsr). Written near its top, it then wraps inside
//! the window and sets its GLOBAL_STATUS bit.
//!
//! The counter is started through GLOBAL_CTRL, written while it runs, and
//! left running into the counted window, whose bracket stops it. Between
//! the write and the window run a few instructions of this kernel, so the
//! count after the written value is the listing's plus at most [`SLACK`].

use alloc::format;

use super::{Context, Stop};
use crate::pmu::{ArchEvent, evtsel};
use crate::record::{Magnitude, ReasonCode, Record, SignatureKind, Unit};

/// Written while the counter runs: below 2^31, so a legacy write keeps it.
const MARK: u64 = 0x4000_0000;
/// Instructions this kernel may run between the write and the window.
pub const SLACK: u64 = 2_000;

pub fn run(c: &mut Context<'_>) -> Result<Record, Stop> {
    let p = c.case.params.clone();
    c.require_instructions("write-running counts instructions")?;
    let Some(g) = c.pmu.globals else {
        return Err(c.unsupported(
            ReasonCode::PmuVersion,
            "keeping a counter running across a write needs GLOBAL_CTRL (PMU version 2, or PerfMonV2)",
        ));
    };
    let counter = p.counter;
    let crate::pmu::Counter::Gp(i) = counter else {
        return Err(Stop::from(Record::error(
            c.id(),
            ReasonCode::Internal,
            "write-running drives a general-purpose counter",
        )));
    };
    let listed = c.listed(p.iterations);
    let bit = c.pmu.bit(counter);
    let encoding = c.pmu.encoding(ArchEvent::Instructions).map_err(|why| c.refused(why))?;
    let msr = c.pmu.counter_msr(counter);
    let running_write = |c: &mut Context<'_>, value: u64| -> Result<u64, Stop> {
        c.quiesce()?;
        c.wrmsr(c.pmu.evtsel(i), encoding | evtsel::OS | evtsel::EN)?;
        c.wrmsr(g.ctrl, bit)?;
        // Counting now; written while it counts.
        c.wrmsr(msr, value)?;
        c.bracketed(g.ctrl, bit, 0, p.iterations)?;
        c.read(counter)
    };

    let after = running_write(c, MARK)?;
    let counted = after.wrapping_sub(MARK);
    if after < MARK || counted > listed + SLACK {
        return Ok(Record::fail(
            c.id(),
            SignatureKind::WrongValue,
            Magnitude::new(after, Unit::Register),
            format!("written {MARK:#x} while counting, it read {after:#x} after a window of {listed} instructions"),
            "the write to a running counter did not hold",
        ));
    }
    if counted < listed {
        return Ok(Record::fail(
            c.id(),
            SignatureKind::Undercount,
            super::exact_count::miss(i128::from(counted) - i128::from(listed), listed, p.event),
            format!("written {MARK:#x} while counting, it counted on only {counted} of the window's {listed}"),
            "a running counter stopped counting after a write",
        ));
    }
    // Written near its top while it runs: it wraps in the window's loop.
    let near_top = c.pmu.preset(counter, listed / 2);
    running_write(c, near_top)?;
    let status = c.status()?;
    if status & bit == 0 {
        return Ok(Record::fail(
            c.id(),
            SignatureKind::StatusNotSet,
            Magnitude::new(bit, Unit::StatusBits),
            format!("written {near_top:#x} while counting, it wrapped without setting its status bit ({status:#x})"),
            format!("STATUS {status:#x}"),
        ));
    }
    Ok(Record::pass(
        c.id(),
        format!(
            "written {MARK:#x} while counting, it counted on {counted} (window {listed}); written near its top, it \
             wrapped and set its status bit"
        ),
    )
    .fact("expected_at_least", listed))
}
