// SPDX-License-Identifier: GPL-2.0

//! The gate: lets a module unload while other CPUs are inside it.
//!
//! A [`Gate<T>`] guards some state `T` that file operations use. Every
//! operation enters the gate first and gets a [`Pass`]; `T` is reachable
//! only through a pass, so an entry point that forgets the gate does not
//! compile. An open file holds a [`FilePass`] from `open` to `release`.
//!
//! The unloader [`close`](Gate::close)s the gate (every later entrance fails
//! with `ENODEV`), wakes whoever sleeps inside, and [`drain`](Gate::drain)s
//! it: it waits until every pass has ended. What remains after that is *the
//! tail*: a task that has just counted its exit still runs a few
//! instructions of module text. [`Tail`] waits that out.
//!
//! # Cost
//!
//! Entering is one per-CPU increment and one load of `closing`; leaving is
//! one per-CPU increment and one load. No lock, no atomic read-modify-write,
//! no fence, no shared cache line is written: on x86_64 each increment is a
//! single `incq %gs:(reg)` (see [`PerCpuCounter::inc`]).
//!
//! # Memory ordering
//!
//! Each CPU has two counters, `entered` and `exited`; only their sums over
//! all CPUs mean anything, because a task may enter on one CPU and leave on
//! another.
//!
//! 1. *Close.* The unloader sets `closing` and then runs a full barrier on
//!    every CPU ([`mb_on_each_cpu`]). Take any entrant on a CPU X: it
//!    increments `entered` and then loads `closing`. If its increment came
//!    after X's barrier in program order, so does its load, and the load
//!    sees `closing` (the barrier ran after the store to `closing`). If its
//!    increment came before X's barrier, the barrier made it visible to
//!    every CPU before `close` returned. So after `close`, every entrant
//!    either sees `closing` and backs out, or is counted in `entered`. This
//!    is what makes the fence-free fast path correct despite x86's store
//!    buffer (a store may be passed by a later load).
//! 2. *Drain.* The unloader sums `exited` first, runs a full barrier, then
//!    sums `entered`. An exit is counted only after its entrance (program
//!    order on the task, plus the barrier), so any exit the first sum saw
//!    has its entrance in the second: `entered >= exited`, and if they are
//!    equal there was a moment when nobody was inside. Summing in the other
//!    order could count an exit whose entrance it missed and report a
//!    balance while a task is still inside. This is the argument of SRCU's
//!    `srcu_readers_active_idx_check()` (kernel/rcu/srcutree.c). No new
//!    pass can start after that moment, since `closing` is set and seen.
//! 3. *Exit.* On x86_64 (TSO) neither loads nor stores of the critical
//!    section can be reordered after the store of the `exited` increment, so
//!    once the unloader sees an exit, the task is done with `T`. Weakly
//!    ordered architectures need a full barrier before the increment, as
//!    `__srcu_read_unlock()` has; [`Gate::exit`] adds one there.
//! 4. *Wake-up.* A task that exits while `closing` is set calls `complete()`
//!    after its increment; the unloader re-sums after every wake-up and at
//!    least every [`REPORT_INTERVAL_MS`], so a missed wake-up only delays
//!    the unload, it never ends the drain early.
//!
//! # The tail
//!
//! After a task counts its exit it still executes: the rest of the exit path
//! (`complete()` on this gate's completion when closing), the epilogue of
//! the driver's function, and, in core code, reads of the module's
//! `file_operations` (`fops_put()` in `__fput()`, fs/file_table.c). None of
//! these windows sleeps voluntarily, so one RCU Tasks grace period after the
//! drain (`synchronize_rcu_tasks()`) proves every task has left them. The
//! module loader's `synchronize_rcu()` in `free_module()` does not: under
//! `CONFIG_PREEMPT_RCU` a task preempted outside an RCU read-side section is
//! not waited for.

use crate::barrier::{mb_on_each_cpu, Tail};
use crate::completion::Completion;
use crate::diag::{self, TaskId};
use crate::percpu::PerCpuCounter;
use crate::variant;
use core::{
    marker::PhantomData,
    ops::Deref,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{new_mutex, prelude::*, str::CString, sync::Mutex, time::msecs_to_jiffies};

/// When [`Gate::drain`] first logs what it is waiting for, after it started.
pub(crate) const FIRST_REPORT_MS: u32 = 1000;
/// How often [`Gate::drain`] logs what it is still waiting for after that.
pub(crate) const REPORT_INTERVAL_MS: u32 = 5000;

/// One open file that holds a gate open, for the drain's diagnostics.
struct Holder {
    id: u64,
    task: TaskId,
}

/// The gate's slow-path bookkeeping.
struct Bookkeeping {
    /// Every open file (every live [`FilePass`]).
    holders: KVec<Holder>,
    /// The id of the next [`FilePass`].
    next_id: u64,
    /// Set when a drain found the gate empty.
    drained: Option<Tail>,
}

/// Per-CPU entrance and exit counting around some state `T`.
///
/// # Invariants
///
/// - `entered` and `exited` count, summed over all CPUs, every pass that
///   started and every pass that ended; `entered.sum() >= exited.sum()`
///   when they are read in the order of [`Gate::drain`].
/// - Once `closing` is set it is never cleared.
/// - A gate is freed only after it has been closed and drained and an RCU
///   Tasks grace period has passed since ([`PinnedDrop`] ensures it), so no
///   live [`Pass`] or [`FilePass`] can point to a freed gate.
#[pin_data(PinnedDrop)]
pub(crate) struct Gate<T> {
    entered: PerCpuCounter,
    exited: PerCpuCounter,
    closing: AtomicBool,
    #[pin]
    drained: Completion,
    #[pin]
    book: Mutex<Bookkeeping>,
    name: CString,
    #[pin]
    data: T,
}

impl<T> Gate<T> {
    /// Creates an open gate around the state that `data` initialises.
    ///
    /// `name` names the gate in the kernel log ("safedetach0").
    pub(crate) fn new(name: CString, data: impl PinInit<T, Error>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            entered: PerCpuCounter::new()?,
            exited: PerCpuCounter::new()?,
            closing: AtomicBool::new(false),
            drained <- Completion::new(),
            book <- new_mutex!(
                Bookkeeping { holders: KVec::new(), next_id: 0, drained: None },
                "Gate::book"
            ),
            name,
            data <- data,
        })
    }

    /// Enters the gate for one operation.
    ///
    /// Fails with `ENODEV` once the gate is closing.
    #[inline(always)]
    pub(crate) fn enter(&self) -> Result<Pass<'_, T>> {
        if variant::NO_GATE {
            return Ok(Pass {
                gate: self,
                _not_send: PhantomData,
            });
        }
        self.entered.inc();
        if self.closing.load(Ordering::Relaxed) {
            self.back_out();
            return Err(ENODEV);
        }
        // INVARIANT: the entrance was counted, the exit is counted on drop.
        Ok(Pass {
            gate: self,
            _not_send: PhantomData,
        })
    }

    /// Counts the end of a pass.
    #[inline(always)]
    fn exit(&self) {
        if variant::NO_GATE {
            return;
        }
        // Weakly ordered CPUs may let the pass's loads and stores drift
        // past the increment: order them, as `__srcu_read_unlock()` does.
        #[cfg(not(target_arch = "x86_64"))]
        core::sync::atomic::fence(Ordering::SeqCst);
        self.exited.inc();
        if self.closing.load(Ordering::Relaxed) {
            self.wake_drainer();
        }
    }

    /// Undoes an entrance that found the gate closing.
    #[cold]
    #[inline(never)]
    fn back_out(&self) {
        self.exited.inc();
        self.wake_drainer();
    }

    /// Tells a drain in progress that the counts changed.
    #[cold]
    #[inline(never)]
    fn wake_drainer(&self) {
        // Order the increment before the wake-up on every architecture: a
        // drain that this wake-up releases must see it (see "Wake-up").
        core::sync::atomic::fence(Ordering::SeqCst);
        self.drained.complete();
    }

    /// Opens the gate for a file: the returned pass lasts until dropped.
    ///
    /// The caller (the current task) is recorded as the file's opener, so
    /// that a drain that waits for this file can name it.
    pub(crate) fn open(self: Pin<&Self>) -> Result<FilePass<T>> {
        let pass = self.get_ref().enter()?;
        let task = TaskId::current();
        let mut book = self.book.lock();
        let id = book.next_id;
        book.holders.push(Holder { id, task }, GFP_KERNEL)?;
        book.next_id += 1;
        drop(book);
        // The entrance of `pass` now belongs to the `FilePass`.
        core::mem::forget(pass);
        // INVARIANT: the gate is pinned, and it is freed only after every
        // pass has been counted out (type invariant), so the pointer stays
        // valid for the life of the `FilePass`.
        Ok(FilePass {
            gate: NonNull::from(self.get_ref()),
            id,
        })
    }

    /// Returns whether the gate is closing.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Closes the gate: every entrance that starts after this returns fails.
    ///
    /// Passes already granted stay valid until they are dropped. May sleep.
    pub(crate) fn close(&self) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        // Make every CPU see `closing` before anything is counted (see
        // "Close" in the module documentation).
        mb_on_each_cpu();
    }

    /// Returns the state for the owner to wake up sleepers after closing.
    ///
    /// Returns `None` while the gate is open: only the unloader uses this.
    pub(crate) fn closed_data(&self) -> Option<&T> {
        self.is_closing().then_some(&self.data)
    }

    /// Returns `(open files, operations in flight)`: a racy snapshot.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let exits = self.exited.sum();
        core::sync::atomic::fence(Ordering::SeqCst);
        let inside = self.entered.sum().wrapping_sub(exits);
        let files = self.book.lock().holders.len() as u64;
        (files, inside.saturating_sub(files))
    }

    /// Waits until every pass, open file and operation, has ended.
    ///
    /// The gate must be closed first. Logs what it is still waiting for
    /// [`FIRST_REPORT_MS`] after it started and every [`REPORT_INTERVAL_MS`]
    /// after that. May sleep for as long as a file stays
    /// open.
    pub(crate) fn drain(&self) {
        if variant::SKIP_DRAIN || variant::NO_GATE {
            return;
        }
        if !self.is_closing() {
            pr_err!(
                "{}: drain called on an open gate\n",
                self.name.to_str().unwrap_or("?")
            );
            self.close();
        }
        // Once closed and drained, the counts can no longer change: a second
        // drain must not move the tail's starting point.
        if self.book.lock().drained.is_some() {
            return;
        }
        let start = diag::ktime_ms();
        // Reports are due by the clock, not by timeouts of the wait: a
        // holder whose calls keep backing out wakes the drainer all the
        // time, and must be named all the same.
        let mut next_report = start + i64::from(FIRST_REPORT_MS);
        let mut waited = false;
        loop {
            self.drained.reinit();
            // Order the reinit before the sums (see "Wake-up").
            core::sync::atomic::fence(Ordering::SeqCst);
            // Exits first, then entrances (see "Drain").
            let (exits, entries) = if variant::ENTRANCES_FIRST {
                let entries = sum(&self.entered);
                diag::sleep_ms(2);
                (sum(&self.exited), entries)
            } else {
                let exits = sum(&self.exited);
                core::sync::atomic::fence(Ordering::SeqCst);
                (exits, sum(&self.entered))
            };
            if entries == exits {
                break;
            }
            waited = true;
            let now = diag::ktime_ms();
            if now >= next_report {
                self.report(now - start);
                next_report = now + i64::from(REPORT_INTERVAL_MS);
            }
            // At most `REPORT_INTERVAL_MS`, so the conversion cannot fail.
            let left = u32::try_from(next_report - now).unwrap_or(REPORT_INTERVAL_MS);
            self.drained.wait_timeout(msecs_to_jiffies(left.max(1)));
        }
        let mut book = self.book.lock();
        book.drained = Some(Tail::now());
        let open = book.holders.len();
        drop(book);
        // Every open file holds an entrance that it counts out only after it
        // left `holders` (`FilePass::drop`), so a balanced count with a
        // holder left means the drain is wrong: say so loudly.
        if open != 0 {
            diag::warn_drain_ended_open(&self.name, open);
        }
        if waited {
            let name = self.name.to_str().unwrap_or("?");
            pr_info!("{}: drained after {} ms\n", name, diag::ktime_ms() - start);
        }
    }

    /// Logs who keeps the drain waiting, `waited_ms` after it started.
    #[cold]
    fn report(&self, waited_ms: i64) {
        let (files, calls) = self.usage();
        let name = self.name.to_str().unwrap_or("?");
        pr_info!(
            "{}: unload waiting {} s: {} open file(s), {} call(s) in flight\n",
            name,
            waited_ms / 1000,
            files,
            calls
        );
        let book = self.book.lock();
        for h in book.holders.iter() {
            pr_info!(
                "{}: held open by pid {} ({})\n",
                name,
                h.task.pid,
                h.task.comm()
            );
        }
    }
}

/// Sums a counter as the drain must: over every possible CPU, online or
/// not (a CPU that went offline keeps the counts of the tasks that ran on
/// it; they migrated and count their exits elsewhere).
fn sum(counter: &PerCpuCounter) -> u64 {
    if variant::ONLINE_ONLY {
        counter.sum_online()
    } else {
        counter.sum()
    }
}

#[pinned_drop]
impl<T> PinnedDrop for Gate<T> {
    fn drop(self: Pin<&mut Self>) {
        // Normally the owner has closed, drained and waited out the tail of
        // every gate already, and this costs nothing. It is what makes
        // freeing a gate with passes still out impossible.
        self.close();
        if variant::SKIP_DRAIN || variant::SKIP_TAIL || variant::NO_GATE {
            return;
        }
        let drained = self.book.lock().drained;
        match drained {
            Some(tail) => tail.wait(),
            None => {
                self.drain();
                Tail::synchronize();
            }
        }
    }
}

/// A pass through a [`Gate`] for the duration of one operation.
///
/// The operation reaches the gate's state through it; dropping it counts the
/// exit. It is not `Send`: it belongs to the call that entered.
#[must_use = "the pass ends, and the exit is counted, when it is dropped"]
pub(crate) struct Pass<'a, T> {
    gate: &'a Gate<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Pass<'_, T> {
    /// Returns whether the gate closed after this pass was granted.
    ///
    /// Operations that sleep check this before each sleep.
    pub(crate) fn is_closing(&self) -> bool {
        self.gate.is_closing()
    }

    /// Returns `(open files, operations in flight)` of the gate.
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.gate.usage()
    }
}

impl<T> Deref for Pass<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.gate.data
    }
}

impl<T> Drop for Pass<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.gate.exit();
    }
}

/// A pass that an open file holds from `open` to `release`.
///
/// On Linux an open `struct file` keeps calling through the driver's
/// `file_operations`, so the gate (and the module) must outlive every open
/// file: the drain waits for these too. A `FilePass` does not give access
/// to the state by itself; every operation still [`enter`](Self::enter)s.
///
/// # Invariants
///
/// `gate` points to a pinned gate whose entrance count includes this pass;
/// the gate is not freed before this pass is dropped (see [`Gate`]).
pub(crate) struct FilePass<T> {
    gate: NonNull<Gate<T>>,
    id: u64,
}

// SAFETY: A `FilePass` only gives shared access to the gate, which is `Sync`
// when `T` is; its drop counts an exit, which any task may do.
unsafe impl<T: Sync> Send for FilePass<T> {}
// SAFETY: See above.
unsafe impl<T: Sync> Sync for FilePass<T> {}

impl<T> FilePass<T> {
    /// Returns the gate this pass holds open.
    fn gate(&self) -> &Gate<T> {
        // SAFETY: By the type invariant the gate outlives `self`.
        unsafe { self.gate.as_ref() }
    }

    /// Enters the gate for one operation on this file.
    #[inline(always)]
    pub(crate) fn enter(&self) -> Result<Pass<'_, T>> {
        self.gate().enter()
    }
}

impl<T> Drop for FilePass<T> {
    fn drop(&mut self) {
        let gate = self.gate();
        {
            let mut book = gate.book.lock();
            if let Some(i) = book.holders.iter().position(|h| h.id == self.id) {
                let last = book.holders.len() - 1;
                book.holders.swap(i, last);
                // SAFETY: `last < len`, so this only shortens the vector;
                // `Holder` has no destructor, so nothing is leaked.
                unsafe { book.holders.set_len(last) };
            }
        }
        gate.exit();
    }
}
