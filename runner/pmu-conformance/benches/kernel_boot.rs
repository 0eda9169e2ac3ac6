//! Boot-to-last-verdict of the probe kernel under QEMU: from spawning QEMU
//! to the last console line (the end marker), for the one boot in which a
//! `qemu` environment runs all its kernel cases, beside one case alone and
//! a boot with an empty plan in the same run (QEMU's start-up and the
//! kernel's, with no check).
//!
//! Target: all of an environment's kernel cases in at most 0.2 s under
//! `-M microvm -accel kvm`. The console is in guest memory, as the qemu
//! environments have it; the whole plan is timed once more with it on the
//! debug port, for the ratio (a byte there is a VM exit). Needs QEMU and the
//! image (`cargo xtask kernel`); prints what is missing otherwise. Run with
//! `cargo bench --bench kernel_boot` or `cargo xtask bench`.

use std::time::Duration;

use pmu_conformance::case::{SuiteSources, load_suites};
use pmu_conformance::event_table::EventTable;
use pmu_conformance::executor::qemu::image;
use pmu_conformance::executor::qemu::launcher::{self, Machine, QemuConfig};
use pmu_conformance::known_bugs::KnownBugs;
use pmu_conformance::vocabulary::Accel;
use pmu_conformance::vocabulary::ProbeKind;

const SAMPLES: usize = 15;
const TARGET: Duration = Duration::from_millis(200);
/// One case, as a qemu environment's boot carries it.
const ONE_CASE: &str = "pmuc=ovf-ack/status-with-int,overflow-status,counter=gp0,int=1";

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `cargo bench` passes `--bench`; `cargo test` runs this once per boot as a smoke check.
fn samples() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        SAMPLES
    } else {
        1
    }
}

fn time(config: &QemuConfig) -> Result<Duration, String> {
    let times = (0..samples())
        .map(|_| {
            let boot = launcher::boot(config).map_err(|e| e.to_string())?;
            match boot.guest_code() {
                Some(0) => Ok(boot.wall),
                _ => Err(format!(
                    "the guest did not finish: {:?}, {:?}",
                    boot.exit,
                    boot.lines.last()
                )),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(median(times))
}

fn main() {
    let image = match image::find(None) {
        Ok(image) => image,
        Err(why) => {
            println!("kernel_boot: skipped: {why}");
            return;
        }
    };
    let suites = load_suites(&SuiteSources::builtin(), &EventTable::builtin(), &KnownBugs::builtin())
        .expect("the built-in suites load");
    let requests: Vec<_> = suites
        .iter()
        .flat_map(|s| &s.cases)
        .filter(|c| c.probe == ProbeKind::Kernel)
        .map(pmu_conformance::kernel_case::request)
        .collect();
    let every = pmu_kernel_checks::plan::Plan { cases: requests }
        .to_cmdline()
        .expect("the kernel cases fit a command line");
    let cases = every.matches(';').count() + 1;
    println!("probe kernel boot to last verdict (median of {})", samples());
    for (accel, machine) in [
        (Accel::Kvm, Machine::Microvm),
        (Accel::Tcg, Machine::Microvm),
        (Accel::Tcg, Machine::Pc),
    ] {
        if accel == Accel::Kvm && !launcher::kvm_usable() {
            println!(
                "  {:<14} skipped: /dev/kvm is not usable here",
                format!("{machine:?}/{}", accel.name())
            );
            continue;
        }
        // As the qemu environments boot it: the console in guest memory.
        let config = |cmdline: &str| QemuConfig {
            machine,
            memory_console: true,
            ..QemuConfig::new(&image, accel, cmdline)
        };
        let label = format!("{}/{}", format!("{machine:?}").to_lowercase(), accel.name());
        // Beside it, the same plan with every byte through the debug port.
        match time(&QemuConfig {
            memory_console: false,
            ..config(&every)
        }) {
            Ok(port) => println!(
                "  {label:<14} all {cases} cases {:>6.1} ms with the console on the debug port",
                port.as_secs_f64() * 1e3
            ),
            Err(why) => println!("  {label:<14} failed on the debug port: {why}"),
        }
        match (time(&config(&every)), time(&config(ONE_CASE)), time(&config("pmuc="))) {
            (Ok(all), Ok(case), Ok(empty)) => println!(
                "  {label:<14} all {cases} cases {:>6.1} ms   one case {:>6.1} ms   empty plan {:>6.1} ms{}",
                all.as_secs_f64() * 1e3,
                case.as_secs_f64() * 1e3,
                empty.as_secs_f64() * 1e3,
                if accel == Accel::Kvm {
                    format!(
                        "   (target: all cases <= {} ms: {})",
                        TARGET.as_millis(),
                        if all <= TARGET { "met" } else { "MISSED" }
                    )
                } else {
                    String::new()
                }
            ),
            (Err(why), _, _) | (_, Err(why), _) | (_, _, Err(why)) => println!("  {label:<14} failed: {why}"),
        }
    }
}
