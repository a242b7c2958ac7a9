// SPDX-License-Identifier: GPL-2.0

//! A safe wrapper of `struct completion` (include/linux/completion.h).
//!
//! 6.12's `kernel` crate has no completion type. This one covers what the
//! gate needs: signal from any context, reinitialise, and a bounded wait.

use super::ffi;
use kernel::{bindings, prelude::*, types::Opaque};

/// A `struct completion`.
///
/// # Invariants
///
/// `inner` has been initialised with `init_completion()`.
#[pin_data]
pub(crate) struct Completion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: `struct completion` is designed to be signalled and waited on
// from any thread; its state is protected by its internal spinlock.
unsafe impl Send for Completion {}
// SAFETY: See above.
unsafe impl Sync for Completion {}

impl Completion {
    /// Creates an initialiser of a completion that has not completed.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_completion` initialises the memory it is given,
            // and the completion is pinned by `pin_init!`.
            // INVARIANT: `init_completion` is called here.
            inner <- unsafe {
                Opaque::ffi_init(|slot| ffi::safedetach_init_completion(slot))
            },
        })
    }

    /// Marks the completion as not completed (`reinit_completion()`).
    pub(crate) fn reinit(&self) {
        // SAFETY: `inner` is initialised (type invariant).
        unsafe { ffi::safedetach_reinit_completion(self.inner.get()) };
    }

    /// Wakes one waiter, or lets the next wait return at once (`complete()`).
    pub(crate) fn complete(&self) {
        // SAFETY: `inner` is initialised (type invariant).
        unsafe { bindings::complete(self.inner.get()) };
    }

    /// Waits uninterruptibly until completed or `timeout` jiffies passed.
    ///
    /// Returns `true` if it was completed, `false` on timeout.
    pub(crate) fn wait_timeout(&self, timeout: kernel::time::Jiffies) -> bool {
        // SAFETY: `inner` is initialised (type invariant).
        unsafe { bindings::wait_for_completion_timeout(self.inner.get(), timeout) != 0 }
    }
}
