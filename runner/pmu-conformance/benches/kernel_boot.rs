//! Boot-to-last-verdict of the probe kernel under QEMU: from spawning QEMU
//! to the last console line (the end marker), for one case's boot as a
//! `qemu` environment makes it, beside a boot with an empty plan in the same
//! run (QEMU's start-up and the kernel's, with no check).
//!
//! Target: at most 0.2 s under `-M microvm -accel kvm`. Needs QEMU and the
//! image (`cargo xtask kernel`); prints what is missing otherwise. Run with
//! `cargo bench --bench kernel_boot` or `cargo xtask bench`.

use std::time::Duration;

use pmu_conformance::executor::qemu::image;
use pmu_conformance::executor::qemu::launcher::{self, Machine, QemuConfig};
use pmu_conformance::vocabulary::Accel;

const SAMPLES: usize = 15;
const TARGET: Duration = Duration::from_millis(200);
/// One case, as a qemu environment's boot carries it.
const ONE_CASE: &str = "pmuc=ovf-ack/status-with-int,overflow-status,counter=gp0,int=1";

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(config: &QemuConfig) -> Result<Duration, String> {
    let times = (0..SAMPLES)
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
    println!("probe kernel boot to last verdict (median of {SAMPLES})");
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
        let config = |cmdline: &str| QemuConfig {
            machine,
            ..QemuConfig::new(&image, accel, cmdline)
        };
        let label = format!("{}/{}", format!("{machine:?}").to_lowercase(), accel.name());
        match (time(&config(ONE_CASE)), time(&config("pmuc="))) {
            (Ok(case), Ok(empty)) => println!(
                "  {label:<14} one case {:>6.1} ms   empty plan {:>6.1} ms{}",
                case.as_secs_f64() * 1e3,
                empty.as_secs_f64() * 1e3,
                if accel == Accel::Kvm {
                    format!(
                        "   (target <= {} ms: {})",
                        TARGET.as_millis(),
                        if case <= TARGET { "met" } else { "MISSED" }
                    )
                } else {
                    String::new()
                }
            ),
            (Err(why), _) | (_, Err(why)) => println!("  {label:<14} failed: {why}"),
        }
    }
}
