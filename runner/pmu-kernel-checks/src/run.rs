//! The probe kernel's whole job, as one function: say hello, run the plan's
//! cases, report each, say how many.

use alloc::format;
use alloc::string::ToString;
use core::fmt::Write;

use crate::hardware::Hardware;
use crate::plan::Plan;
use crate::pmu::{Pmu, Vendor};
use crate::protocol;

/// The command-line word that asks for the guest's CPUID leaves in the
/// hello ([`crate::cpuid_leaves`]). The host asks once, in the boot that
/// fingerprints the guest; a case's boot need not pay for them (formatting
/// them is most of a boot where guest code is emulated, as under PVM).
pub const CPUID_WORD: &str = "pmuc.cpuid";

/// The command-line word that asks the hello to say what RDPMC 0 does (a
/// value, or the vector it raised). Only asked for where that is known to
/// be safe: kvm-unit-tests' pmu.flat hangs in one software KVM at its first
/// RDPMC (guest-boots.md), and the checks reach RDPMC only past a live
/// counter.
pub const RDPMC_WORD: &str = "pmuc.rdpmc";

/// The command-line word that lets the probe kernel, running under Xen,
/// write QEMU's isa-debug-exit port (0xF4) before it shuts its domain down.
/// Xen halts the machine rather than powering it off when its hardware
/// domain shuts down (guest-boots.md), so under QEMU only that port ends the
/// boot; on a real Xen host the port would reach hardware, so only the
/// runner's QEMU launcher adds this word.
pub const QEMU_EXIT_WORD: &str = "pmuc.qemu-exit";

/// Runs the cases named on `cmdline` (see [`crate::plan`]) and writes one
/// protocol frame per line to `out`: a hello, one record per case, an end.
/// A plan that cannot be read is reported in the hello, with no records.
pub fn run(hw: &mut dyn Hardware, cmdline: &str, out: &mut dyn Write) {
    let pmu = Pmu::detect(hw);
    let vendor = match pmu.vendor {
        Vendor::Intel => "intel",
        Vendor::Amd => "amd",
        Vendor::Other => "other",
    };
    let signature = format!("{:#010x}", hw.cpuid(1, 0)[0]);
    let plan = Plan::from_cmdline(cmdline);
    let mut hello = alloc::vec![
        ("vendor", vendor.to_string()),
        ("signature", signature),
        ("pmu_version", pmu.version.to_string()),
        ("gp", pmu.gp.to_string()),
        ("width", pmu.width.to_string()),
        ("fixed", pmu.fixed.to_string()),
    ];
    // Whether RDPMC runs here at all: QEMU's TCG raises #UD for it.
    if cmdline.split_ascii_whitespace().any(|word| word == RDPMC_WORD) {
        let rdpmc = match hw.rdpmc(0) {
            Ok(_) => "ok".to_string(),
            Err(f) => format!("vector {}", f.vector),
        };
        hello.push(("rdpmc0", rdpmc));
    }
    if cmdline.split_ascii_whitespace().any(|word| word == CPUID_WORD) {
        hello.push(("cpuid", crate::cpuid_leaves::encode(&crate::cpuid_leaves::read(hw))));
    }
    if let Err(why) = &plan {
        hello.push(("plan_error", why.clone()));
    }
    let fields: alloc::vec::Vec<(&str, &str)> = hello.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _ = writeln!(out, "{}", protocol::hello(&fields));
    let plan = plan.unwrap_or_default();
    for case in &plan.cases {
        let record = crate::checks::run(hw, pmu, case);
        let _ = writeln!(out, "{}", protocol::record(&record));
    }
    let _ = writeln!(out, "{}", protocol::end(plan.cases.len() as u64));
}
