//! The suites as a test target, so `cargo test` and cargo-nextest run them.
//!
//! One trial per case the environment selects, exactly as the binary runs
//! them, compared with the expectations recorded under `expected/`. The
//! environment is this machine's derived id, or `PMU_CONFORMANCE_ENV`.
//! Unsupported cases are ignored trials, so nextest reports them as SKIP.

use std::process::ExitCode;

use pmu_conformance::run::{self, Request};

fn main() -> ExitCode {
    let request = Request {
        environment: std::env::var("PMU_CONFORMANCE_ENV").ok(),
        libtest: libtest_mimic::Arguments::from_args(),
        ..Request::default()
    };
    run::execute(request).unwrap_or_else(|error| {
        eprintln!("{error}");
        error.exit_code()
    })
}
