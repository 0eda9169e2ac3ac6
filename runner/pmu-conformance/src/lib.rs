//! pmu-conformance: does this machine's PMU count exactly, deliver every
//! overflow interrupt, and keep counts exact across overflow?
//!
//! The pieces, in the order data flows through them:
//!
//! - [`case`]: YAML suites, validated completely into [`case::Case`]s before
//!   anything runs. Expectations are formulas over a [`workload`]'s exact counts.
//! - [`event_table`]: abstract events resolved per CPU ([`cpu`]), from data.
//! - [`probe`]: where windows execute. [`probe::linux`] uses perf_event_open
//!   and inline-asm windows; every probe implements [`probe::Probe`].
//! - [`check`]: one module per kind of check, turning probe results into an
//!   [`outcome::Outcome`] (verdict, signature, facts, figures); [`hybrid`]
//!   runs a case once per core type of a hybrid part and reports each.
//! - [`expectation`]: recorded outcomes per environment under `expected/`.
//! - [`harness`]: the plan (cases × environment) as libtest-mimic trials.
//! - [`report`]: terminal table, JSON and JUnit from the finished run.
//! - [`matrix`]: every environment of a matrix file, each a child runner
//!   ([`supervised`]), in parallel, reported together.
//!
//! [`fingerprint`] describes the machine; [`known_bugs`] names the bugs that
//! cases catch and outcomes are diagnosed against.

pub mod builtin;
pub mod case;
pub mod case_trace;
pub mod certificate;
pub mod check;
pub mod compare;
pub mod counting;
pub mod cpu;
pub mod detection_matrix;
pub mod environment;
pub mod event_table;
pub mod executor;
pub mod expectation;
pub mod explain;
pub mod fingerprint;
pub mod guest;
pub mod harness;
pub mod hybrid;
pub mod input_error;
pub mod input_file;
pub mod interrupt;
pub mod kernel_case;
pub mod known_bugs;
pub mod matrix;
pub mod outcome;
pub mod probe;
pub mod progress;
pub mod report;
pub mod run;
pub mod statistics;
pub mod supervised;
pub mod vocabulary;
pub mod workload;
pub mod yaml_number;
