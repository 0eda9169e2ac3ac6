//! Data compiled into the binary: the suites and matrices (via `build.rs`),
//! the event table and the known-bug catalogue (via `include_str!` in their
//! modules).

include!(concat!(env!("OUT_DIR"), "/builtin_data.rs"));
