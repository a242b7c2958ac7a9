// SPDX-License-Identifier: GPL-2.0

//! Kernel abstractions that 6.12's `kernel` crate lacks.
//!
//! This is the only layer of the module that uses `bindings::` and raw C
//! pointers; the protocol ([`crate::gate`]) and the driver (the crate root,
//! [`crate::fifo`], [`crate::fops`], [`crate::registry`]) are built on it.
//! Each file is a small, general wrapper of one kernel facility, in the
//! style of the kernel's own `rust/kernel/`, so that a later kernel's
//! abstraction can replace it file by file (Documentation/porting.rst says
//! which one replaces which, and since when):
//!
//! - [`chrdev`]: cdev regions, cdevs, the class and device nodes as RAII
//!   values, and the file operations as a trait whose C table it builds.
//! - [`completion`]: `struct completion`.
//! - [`wait`]: a wait queue for sleepers and for `poll`/`select`/`epoll`.
//! - [`percpu`]: per-CPU `u64` counters (no mainline abstraction exists).
//! - [`static_key`]: the module's static key and the jump-label NOP after a
//!   per-CPU increment, in `asm!` (6.12's `kernel` crate has no static
//!   branch).
//! - [`barrier`]: the IPI barrier round and the RCU Tasks wait (none in
//!   mainline).
//! - [`sysfs`]: the class and unit attributes.
//! - [`debugfs`]: a `seq_file` status file in debugfs.
//! - [`diag`]: the current task, a monotonic clock, sleeping and `WARN`.
//! - [`ffi`]: the declarations of the thin C wrappers in `helpers.c` (one
//!   per inline or macro API, no logic), which also hold the module
//!   parameters.

pub(crate) mod barrier;
pub(crate) mod chrdev;
pub(crate) mod completion;
pub(crate) mod debugfs;
pub(crate) mod diag;
pub(crate) mod ffi;
pub(crate) mod percpu;
pub(crate) mod static_key;
pub(crate) mod sysfs;
pub(crate) mod wait;
