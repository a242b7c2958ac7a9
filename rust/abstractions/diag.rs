// SPDX-License-Identifier: GPL-2.0

//! Diagnostics the gate needs from the kernel: who the current task is, a
//! monotonic clock, sleeping, and `WARN`.
//!
//! 6.12's `kernel` crate has `current!()` but no accessor for a task's
//! command name or its pid in a given namespace, no `msleep()` and no
//! `WARN`; these fill the gap so that the protocol code (`gate.rs`) and the
//! driver stay free of `bindings::`. The clock is `kernel::time::Ktime`.

use super::ffi;
use kernel::{bindings, str::CStr, time::Ktime};

/// The identity of the task that opened a file, as the drain reports it.
#[derive(Clone, Copy)]
pub(crate) struct TaskId {
    /// The thread-group id (the process id) in the initial PID namespace.
    pub(crate) pid: i32,
    /// The command name, NUL-padded (`TASK_COMM_LEN`).
    pub(crate) comm: [u8; 16],
}

impl TaskId {
    /// Returns the identity of the current task's thread group.
    pub(crate) fn current() -> Self {
        let mut comm = [0u8; 16];
        // SAFETY: `get_current()` returns the current task, which is alive
        // while it runs this.
        let task = unsafe { bindings::get_current() };
        // SAFETY: `task` is alive (see above); `comm` has room for
        // `TASK_COMM_LEN` bytes and `__get_task_comm` NUL-terminates.
        unsafe { bindings::__get_task_comm(comm.as_mut_ptr().cast(), comm.len(), task) };
        // SAFETY: FFI call without preconditions.
        let init_ns = unsafe { ffi::safedetach_init_pid_ns() };
        // SAFETY: `task` is alive (see above) and `init_pid_ns` is static.
        // The pid is the one seen from the initial namespace: the person
        // running `rmmod` can act on it even if the holder is in a container.
        let pid =
            unsafe { bindings::__task_pid_nr_ns(task, bindings::pid_type_PIDTYPE_TGID, init_ns) };
        Self { pid, comm }
    }

    /// Returns the command name as text ("?" if it is not UTF-8).
    pub(crate) fn comm(&self) -> &str {
        let len = self
            .comm
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.comm.len());
        core::str::from_utf8(&self.comm[..len]).unwrap_or("?")
    }
}

/// Returns the monotonic clock in milliseconds.
pub(crate) fn ktime_ms() -> i64 {
    Ktime::ktime_get().to_ms()
}

/// Returns the monotonic clock in nanoseconds.
pub(crate) fn ktime_ns() -> i64 {
    Ktime::ktime_get().to_ns()
}

/// Sleeps for at least `ms` milliseconds. Process context only.
pub(crate) fn sleep_ms(ms: u32) {
    // SAFETY: FFI call without preconditions; callers may sleep.
    unsafe { bindings::msleep(ms) };
}

/// `WARN`s that the drain of gate `name` ended with `files` files open.
///
/// A broken invariant of the protocol: the kernel log gets a `WARNING:`
/// with a stack trace and the kernel is tainted `W`, which every test fails
/// on.
#[cold]
pub(crate) fn warn_drain_ended_open(name: &CStr, files: usize) {
    // SAFETY: `name` is NUL-terminated and lives across the call.
    unsafe { ffi::safedetach_warn_drain_ended_open(name.as_char_ptr(), files) };
}
