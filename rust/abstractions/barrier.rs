// SPDX-License-Identifier: GPL-2.0

//! System-wide ordering primitives for the slow path of the gate.
//!
//! The gate's fast path has no fence. Its slow path makes up for that with
//! two heavyweight waits that the kernel provides:
//!
//! - [`mb_on_each_cpu`]: a full memory barrier executed *on every online
//!   CPU* (an IPI round, `on_each_cpu()`), the technique `membarrier(2)`
//!   uses (kernel/sched/membarrier.c). After it returns, every store a CPU
//!   made before the barrier is visible to the caller, and every load a CPU
//!   makes after it sees the caller's earlier stores.
//! - [`Tail`]: `synchronize_rcu_tasks()` (kernel/rcu/tasks.h), which waits
//!   until every task has done a voluntary context switch, run in user mode
//!   or been idle. It proves that no task is still executing the few
//!   instructions that follow its last counter increment.

use super::ffi;
use core::sync::atomic::{fence, AtomicU64, Ordering};
use kernel::{bindings, ffi::c_void};

/// The callback that [`mb_on_each_cpu`] runs on every CPU.
unsafe extern "C" fn full_barrier(_info: *mut c_void) {
    // `smp_mb()`: on x86_64 a locked instruction or `mfence`.
    fence(Ordering::SeqCst);
}

/// Executes a full memory barrier on every online CPU and waits for all.
///
/// May sleep; must not be called with interrupts disabled.
pub(crate) fn mb_on_each_cpu() {
    // SAFETY: `full_barrier` is a valid callback for `on_each_cpu()`: it
    // ignores its argument and does not sleep.
    unsafe { ffi::safedetach_on_each_cpu(Some(full_barrier), core::ptr::null_mut()) };
}

/// Counts RCU Tasks grace periods started and completed by [`Tail::wait`].
static TAIL_STARTED: AtomicU64 = AtomicU64::new(0);
static TAIL_COMPLETED: AtomicU64 = AtomicU64::new(0);

/// A point in time after which a full RCU Tasks grace period is needed.
///
/// This is `get_state_synchronize_rcu()` / `cond_synchronize_rcu()`
/// (kernel/rcu/tree.c) for the RCU Tasks flavour, which has no such polled
/// API in 6.12: the module unloads several gates, and one grace period that
/// starts after all of them have drained is enough for all of them.
#[derive(Clone, Copy)]
pub(crate) struct Tail {
    /// The number of the first grace period that starts after this point.
    first_after: u64,
}

impl Tail {
    /// Records that everything that must be waited for happened before now.
    pub(crate) fn now() -> Self {
        Self {
            first_after: TAIL_STARTED.load(Ordering::SeqCst) + 1,
        }
    }

    /// Waits for a full RCU Tasks grace period (`synchronize_rcu_tasks()`).
    ///
    /// Every task that was running when this is called has, when it
    /// returns, done a voluntary context switch, run in user mode or idled.
    pub(crate) fn synchronize() {
        let number = TAIL_STARTED.fetch_add(1, Ordering::SeqCst) + 1;
        // SAFETY: FFI call without preconditions; it may sleep, and callers
        // are in process context.
        unsafe { bindings::synchronize_rcu_tasks() };
        TAIL_COMPLETED.fetch_max(number, Ordering::SeqCst);
    }

    /// Returns whether a grace period that started after `self` completed.
    pub(crate) fn is_done(self) -> bool {
        TAIL_COMPLETED.load(Ordering::SeqCst) >= self.first_after
    }

    /// Waits for a grace period that started after `self`, unless one did.
    pub(crate) fn wait(self) {
        if !self.is_done() {
            Self::synchronize();
        }
    }
}
