// SPDX-License-Identifier: GPL-2.0

//! A wait queue for blocking calls and for `poll(2)`/`select(2)`/`epoll(7)`.
//!
//! 6.12's [`CondVar`](kernel::sync::CondVar) keeps its wait queue private,
//! so it cannot be handed to `poll_wait()`, and it checks a sleeper's
//! condition only under the caller's lock, so whoever wakes it must take
//! that lock to be sure it is not missed. The unloader must not: the lock
//! may be held by a task whose copy to user space waits for a page fault
//! that is never served. [`WaitQueue`] is a bare `wait_queue_head` with the
//! `wait_event()` pattern (queue first, check second), so a condition set
//! without the lock, followed by [`WaitQueue::notify`], is never missed.

use super::ffi;
use core::marker::PhantomData;
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

static WAIT_KEY: StaticKey = StaticKey(Opaque::uninit());

/// The poll table of a `->poll` call in progress (`poll_table`,
/// include/linux/poll.h), to register on a [`WaitQueue`].
///
/// # Invariants
///
/// `file` and `table` are the arguments of a `->poll` call that lasts at
/// least as long as `'a`.
pub(crate) struct PollTable<'a> {
    file: *mut bindings::file,
    table: *mut bindings::poll_table_struct,
    _call: PhantomData<&'a ()>,
}

impl PollTable<'_> {
    /// Wraps the arguments of a `->poll` call.
    ///
    /// # Safety
    ///
    /// `file` and `table` must be the arguments of a `->poll` call in
    /// progress for as long as the result lives.
    pub(crate) unsafe fn from_raw(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> Self {
        // INVARIANT: The caller's contract.
        Self {
            file,
            table,
            _call: PhantomData,
        }
    }
}

/// A wait queue for sleepers and poll tables.
///
/// # Invariants
///
/// `wq` is an initialised `wait_queue_head`.
#[pin_data]
pub(crate) struct WaitQueue {
    #[pin]
    wq: Opaque<bindings::wait_queue_head>,
}

// SAFETY: A wait queue is protected by its own spinlock.
unsafe impl Send for WaitQueue {}
// SAFETY: See above.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
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
                        kernel::c_str!("WaitQueue::wq").as_char_ptr(),
                        WAIT_KEY.0.get(),
                    )
                })
            },
        })
    }

    /// Registers the caller's poll table on this queue (`poll_wait()`).
    ///
    /// # Safety
    ///
    /// The queue must outlive the file being polled (the poll table may
    /// stay registered until the file is released).
    pub(crate) unsafe fn register(&self, table: &PollTable<'_>) {
        // SAFETY: `table`'s invariant: its file and table are those of a
        // `->poll` call in progress; the caller's contract; `wq` is
        // initialised.
        unsafe { ffi::safedetach_poll_wait(table.file, self.wq.get(), table.table) };
    }

    /// Releases `guard` and sleeps until [`notify`](Self::notify), unless
    /// `done` is already true once the task is on the queue.
    ///
    /// The task joins the queue before `guard` is dropped, so a waker that
    /// changes the guarded state under that lock and notifies after it is
    /// not missed. `done` is evaluated after the task joined the queue, so a
    /// waker that makes `done` true without the lock and then notifies is
    /// not missed either: either its notification finds the task queued,
    /// or its store precedes the queue's spinlock that the task took to
    /// queue itself, and `done` sees it (the `wait_event()` argument,
    /// include/linux/wait.h).
    ///
    /// Returns `ERESTARTSYS` if the sleep ended with a signal pending. The
    /// caller takes its lock again and re-checks its condition.
    pub(crate) fn sleep_unlocked<G>(&self, guard: G, done: impl FnOnce() -> bool) -> Result {
        let wait = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `wait` is valid memory that stays in place until
        // `finish_wait` below has removed it from the queue.
        unsafe { bindings::init_wait(wait.get()) };
        // SAFETY: `wq` is initialised (type invariant); `wait` is
        // initialised and outlives its time on the queue.
        unsafe {
            bindings::prepare_to_wait(
                self.wq.get(),
                wait.get(),
                bindings::TASK_INTERRUPTIBLE as kernel::ffi::c_int,
            )
        };
        drop(guard);
        if !done() {
            // SAFETY: Sleeping is allowed: the caller holds no spinlock
            // (the guard is dropped), and the task is on the queue.
            unsafe { bindings::schedule() };
        }
        // SAFETY: `wait` was queued on `wq` by `prepare_to_wait` above.
        unsafe { bindings::finish_wait(self.wq.get(), wait.get()) };
        if kernel::current!().signal_pending() {
            return Err(ERESTARTSYS);
        }
        Ok(())
    }

    /// Wakes every sleeper and poller.
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
