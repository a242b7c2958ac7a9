// SPDX-License-Identifier: GPL-2.0

//! A wait queue for `poll(2)`/`select(2)`/`epoll(7)` waiters.
//!
//! 6.12's [`CondVar`](kernel::sync::CondVar) keeps its wait queue private,
//! so it cannot be handed to `poll_wait()`. [`PollQueue`] is a bare
//! `wait_queue_head` for that purpose; blocking reads and writes keep using
//! `CondVar`s.

use crate::ffi;
use kernel::{bindings, prelude::*, types::Opaque};

/// Event bits of `poll(2)` (include/uapi/asm-generic/poll.h).
pub(crate) mod events {
    pub(crate) const POLLIN: u32 = 0x0001;
    pub(crate) const POLLOUT: u32 = 0x0004;
    pub(crate) const POLLERR: u32 = 0x0008;
    pub(crate) const POLLHUP: u32 = 0x0010;
    pub(crate) const POLLRDNORM: u32 = 0x0040;
    pub(crate) const POLLWRNORM: u32 = 0x0100;
}

/// A static lockdep key for the wait queues' spinlocks.
struct StaticKey(Opaque<bindings::lock_class_key>);

// SAFETY: lockdep only uses the address of the key.
unsafe impl Sync for StaticKey {}

static POLL_KEY: StaticKey = StaticKey(Opaque::uninit());

/// A wait queue that poll tables can register on.
///
/// # Invariants
///
/// `wq` is an initialised `wait_queue_head`.
#[pin_data]
pub(crate) struct PollQueue {
    #[pin]
    wq: Opaque<bindings::wait_queue_head>,
}

// SAFETY: A wait queue is protected by its own spinlock.
unsafe impl Send for PollQueue {}
// SAFETY: See above.
unsafe impl Sync for PollQueue {}

impl PollQueue {
    /// Creates an empty wait queue.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `__init_waitqueue_head` initialises the pinned slot;
            // the name and the key are 'static.
            // INVARIANT: initialised here.
            wq <- unsafe {
                Opaque::ffi_init(|slot| {
                    bindings::__init_waitqueue_head(
                        slot,
                        kernel::c_str!("PollQueue::wq").as_char_ptr(),
                        POLL_KEY.0.get(),
                    )
                })
            },
        })
    }

    /// Registers `table` of `file` on this queue (`poll_wait()`).
    ///
    /// # Safety
    ///
    /// `file` and `table` must be the arguments of a `->poll` call in
    /// progress, and the queue must outlive the file (the poll table may
    /// stay registered until the file is released).
    pub(crate) unsafe fn register(
        &self,
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) {
        // SAFETY: The caller's contract; `wq` is initialised.
        unsafe { ffi::safedetach_poll_wait(file, self.wq.get(), table) };
    }

    /// Wakes every poller.
    pub(crate) fn notify(&self) {
        // SAFETY: `wq` is initialised (type invariant).
        unsafe {
            bindings::__wake_up(
                self.wq.get(),
                bindings::TASK_NORMAL,
                0,
                core::ptr::null_mut(),
            )
        };
    }
}
