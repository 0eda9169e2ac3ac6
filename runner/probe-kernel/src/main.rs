//! The probe kernel: a freestanding x86_64 image that runs the MSR-level PMU
//! checks of `pmu-kernel-checks` as a guest, and reports over the console.
//!
//! QEMU (`-kernel`, any machine type, TCG or KVM) and Xen (PVH domU or dom0)
//! boot it through the PVH entry point ([`pvh`]). From there the pieces are:
//!
//! - [`console`]: every byte to the debug console (port 0xE9) and to COM1,
//!   or as Xen's dom0 to Xen's console;
//! - [`idt`] and [`exceptions`]: every vector has a handler; an MSR access
//!   that raises #GP or #UD is recovered ([`msr`]), anything else is fatal;
//! - [`lapic`]: x2APIC or xAPIC, with the LVT performance-counter entry on
//!   [`pmu_kernel_checks::hardware::PMI_VECTOR`];
//! - [`clock`] and [`watchdog`]: an overall deadline that needs no interrupt;
//! - [`hardware`]: the `Hardware` the checks run on;
//! - [`exit`]: isa-debug-exit under QEMU, `SCHEDOP_shutdown` under Xen
//!   (after isa-debug-exit where the launcher asked for it).
//!
//! The image says `probe-kernel: booted (…)`, then `pmu_kernel_checks::run`
//! writes its protocol frames, then the guest exits with code 0. Every
//! failure on the way (an unexpected exception, a panic, the watchdog) prints
//! one `probe-kernel: …` line and exits with code 1: it never hangs.
//!
//! On the host this is a stub that says how to build the image; the modules
//! [`cmdline`] and [`hypervisor`] hold the image's pure logic and are tested
//! here.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

mod cmdline;

#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod cpuid;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod exit;
#[cfg(target_os = "none")]
mod hardware;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod hypervisor;
#[cfg(target_os = "none")]
mod idt;
#[cfg(target_os = "none")]
mod lapic;
#[cfg(target_os = "none")]
mod msr;
#[cfg(target_os = "none")]
mod pic;
#[cfg(target_os = "none")]
mod port;
#[cfg(target_os = "none")]
mod pvh;
#[cfg(target_os = "none")]
mod start_info;
#[cfg(target_os = "none")]
mod watchdog;
#[cfg(target_os = "none")]
mod xen;

/// Called by [`pvh`]'s stub in 64-bit mode, on the boot stack, with
/// interrupts disabled; `start_info` is the physical address of Xen's
/// `hvm_start_info` that the loader passed in EBX.
#[cfg(target_os = "none")]
extern "C" fn kernel_main(start_info: u32) -> ! {
    use core::fmt::Write;

    console::init();
    idt::init();
    heap::init();
    // The plan arrives on the command line, or as a module where the
    // command line is too short for it (Xen's dom0: [`start_info`]).
    let line = start_info::cmdline(start_info);
    let module = start_info::plan_module(start_info);
    let joined;
    let cmdline = match line {
        line if module.is_empty() => line,
        line => {
            joined = alloc::format!("{line} {module}");
            joined.as_str()
        }
    };
    // Before the first line, so that every line goes where the host reads.
    let memory_console = match pmu_kernel_checks::memory_console::parse(cmdline) {
        Ok(Some(region)) => console::use_memory_console(region).map_err(|why| (region.word(), why)),
        Ok(None) => Ok(()),
        Err(bad) => Err((
            alloc::format!("pmuc.memcon={bad}"),
            "not a page-aligned <hex base>,<hex length> of a page or more, ending by 4 GiB",
        )),
    };
    let hypervisor = hypervisor::detect();
    if let Some(base) = hypervisor.xen_leaf {
        xen::init(base);
        if start_info::initial_domain(start_info) {
            console::use_xen_console();
        }
        if cmdline
            .split_ascii_whitespace()
            .any(|w| w == pmu_kernel_checks::QEMU_EXIT_WORD)
        {
            exit::allow_qemu_exit_under_xen();
        }
    }
    pic::mask_all();
    let apic = lapic::init();
    let clock = clock::calibrate(&hypervisor);
    let watchdog = cmdline::watchdog(cmdline);
    let mut out = console::Console;
    let _ = writeln!(out, "probe-kernel: booted ({}, {})", apic.name(), hypervisor.name);
    if let Err((word, why)) = &memory_console {
        let _ = writeln!(
            out,
            "probe-kernel: ignoring `{word}` ({why}); the console stays on the ports"
        );
    }
    if let Some(bad) = watchdog.rejected {
        let _ = writeln!(
            out,
            "probe-kernel: ignoring `pmuc.watchdog={bad}` (not a whole number of seconds)"
        );
    }
    let _ = writeln!(
        out,
        "probe-kernel: watchdog {} s (TSC {}.{:02} GHz from {})",
        watchdog.seconds,
        clock.hz / 1_000_000_000,
        clock.hz / 10_000_000 % 100,
        clock.source
    );
    watchdog::start(watchdog.seconds, clock.hz);
    hardware::self_test(&mut out);
    match cmdline::window_trace(cmdline) {
        Ok(None) => {}
        Ok(Some(passes)) => hardware::run_window_for_trace(passes, &mut out),
        Err(bad) => {
            let _ = writeln!(
                out,
                "probe-kernel: ignoring `pmuc.window-trace={bad}` (not a whole number of passes from 1 to {})",
                cmdline::MAX_TRACE_PASSES
            );
        }
    }
    let mut hw = hardware::Machine;
    pmu_kernel_checks::run(&mut hw, cmdline, &mut out);
    exit::exit(exit::SUCCESS)
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "probe-kernel runs only as a guest: QEMU or Xen boots it through its PVH entry point.\n\
         Build the image with `cargo xtask kernel` (or `cargo build --release -p probe-kernel \
         --target x86_64-unknown-none`) and boot it with the runner, or by hand:\n  \
         qemu-system-x86_64 -M microvm -accel kvm -cpu host,-arch-capabilities -m 128M -display none \
         -no-reboot -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
         -kernel target/x86_64-unknown-none/release/probe-kernel -append 'pmuc=k/ack,ovf-ack'"
    );
    std::process::exit(2);
}
