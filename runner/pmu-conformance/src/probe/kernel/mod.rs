//! The kernel probe: boots the probe kernel and reads its records.

pub mod qemu;
