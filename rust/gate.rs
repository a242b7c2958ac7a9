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
//! While no gate of the module is closing, entering is one per-CPU
//! increment and a 5-byte NOP, and so is leaving: on x86_64 with
//! `CONFIG_JUMP_LABEL`, `incq %gs:(reg)` and the NOP of a static branch
//! (rust/abstractions/static_key.rs), with nothing loaded and nothing tested. No lock,
//! no atomic read-modify-write, no fence, no shared cache line is written.
//! Closing a gate enables the module's static key: the kernel patches
//! every NOP into a jump to the slow path, which loads this gate's own
//! `closing` and tests it. Without jump labels the key is an `atomic_t`
//! and the check after the increment is a load of it and a test; the
//! `load_test` build (rust/variant.rs) loads and tests `closing` at every
//! pass, as the gate did before the key.
//!
//! # Memory ordering
//!
//! Each CPU has two counters, `entered` and `exited`; only their sums over
//! all CPUs mean anything, because a task may enter on one CPU and leave on
//! another.
//!
//! 1. *Close.* The unloader sets `closing`, enables the static key (see
//!    "Static branch" below) and then runs a full barrier on every CPU
//!    ([`mb_on_each_cpu`]). Take any entrant on a CPU X: it increments
//!    `entered` and then checks the key, and if the key is enabled, loads
//!    `closing`. If its increment came after X's barrier in program order,
//!    so does its check, which finds the key enabled, and its load, which
//!    sees `closing` (the barrier ran after both stores). If its increment
//!    came before X's barrier, the barrier made it visible to every CPU
//!    before `close` returned. So after `close`, every entrant either sees
//!    `closing` and backs out, or is counted in `entered`. This is what
//!    makes the fence-free fast path correct despite x86's store buffer (a
//!    store may be passed by a later load).
//! 2. *Drain.* The unloader sums `exited` first, runs a full barrier, then
//!    sums `entered`. An exit is counted only after its entrance (program
//!    order on the task, plus the barrier; on weakly ordered CPUs also the
//!    full barrier before every exit's increment, in [`Gate::exit`] and in
//!    [`Gate::back_out`]), so any exit the first sum saw has its entrance
//!    in the second: `entered >= exited`, and if they are equal there was
//!    a moment when nobody was inside. Summing in the other
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
//!    least every [`MAX_REPORT_INTERVAL_MS`], so a missed wake-up only
//!    delays the unload, it never ends the drain early.
//!
//! # Static branch
//!
//! With jump labels the check after an increment is not a load: it is the
//! code itself, a NOP while the key is disabled and a `jmp` once it is
//! enabled. The key is counted (`static_branch_inc()`/`static_branch_dec()`):
//! each closed gate holds one enable from [`close`](Gate::close) until it is
//! dropped, after its drain and tail, so a detached unit and the module's
//! unload compose, and the other gates stay on the slow path (loading their
//! own `closing`, which is clear) only while a closed gate still exists.
//!
//! The first enable patches every site with `text_poke_bp()`
//! (arch/x86/kernel/alternative.c): it writes an `int3` over the first byte,
//! runs `text_poke_sync()`, writes the rest of the `jmp`, syncs, writes its
//! first byte, syncs. `text_poke_sync()` is `on_each_cpu(do_sync_core)`: an
//! IPI that runs `sync_core()`, a serialising instruction (`iretq` to self,
//! or `SERIALIZE`), on every online CPU, and waits for all. A CPU that
//! hits the `int3` meanwhile is sent on by `poke_int3_handler()` as if it
//! had executed the new `jmp`. Take an entrant on a CPU X whose increment
//! is followed by the site (in the same `asm!`, so nothing comes between):
//!
//! - If it executed the old NOP, it did so before X handled the last
//!   `text_poke_sync()` IPI: a serialised CPU fetches the new code (Intel
//!   SDM vol. 3, "Handling Self- and Cross-Modifying Code"). Its increment came
//!   before the NOP in program order, and the IPI, whose interrupt and
//!   serialising return drain X's store buffer, made it visible before
//!   `static_branch_inc()` returned, hence before the drain's sums. (A task
//!   migrated between the increment and the NOP went through the
//!   scheduler's locks, which drained the first CPU's buffer.) So it is
//!   counted, and the drain waits for it.
//! - If it executes the site after that IPI, it jumps (or hits the `int3`
//!   and is sent the same way) and loads `closing`, which was set before
//!   the patching began: it sees it and backs out.
//!
//! So when the key goes from 0 to 1 the syncs alone give the guarantee of
//! *Close*. `mb_on_each_cpu()` stays for the other case: when the key is
//! enabled already (another gate is closing), `static_branch_inc()` only
//! counts, no CPU is interrupted, and the entrant is in the old protocol
//! (increment, jump, load of `closing`), whose store-buffering window only
//! the barrier closes. The spin model has both (tests/model/unload.pml:
//! mutant `no-close-barrier` is caught only through a key enabled before,
//! mutant `no-patch-sync` through the stale NOP). `static_branch_inc()`
//! does not say whether it patched, and one more IPI round in a close costs
//! nothing on the fast path.
//!
//! The exit side is the same argument: an exit that ran the NOP is visible
//! to the drain's first sum (no wake-up is needed for it), and one after
//! the patch sees `closing` and wakes the drainer. The module's jump-table
//! entries are registered on `MODULE_STATE_COMING`, before init, and
//! removed by the `MODULE_STATE_GOING` notifier that `delete_module()`
//! calls after `module_exit` returns (kernel/module/main.c,
//! `jump_label_module_notify()` in kernel/jump_label.c); `jump_label_update()`
//! finds the key's module with `__module_address()`, which refuses only
//! `MODULE_STATE_UNFORMED`. So the key can be enabled and disabled while
//! the module loads, runs, or runs its exit.
//!
//! # Open files
//!
//! Each open file is an [`OpenFile`]: one small allocation that holds the
//! file's entrance, the opener's identity and the links of an intrusive
//! list (`kernel::list`), so opening and closing cost the same at one and
//! at 100,000 open files. The list exists only to name holders when a drain
//! waits; the drain itself never looks at it.
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

use crate::abstractions::barrier::{mb_on_each_cpu, Tail};
use crate::abstractions::completion::Completion;
use crate::abstractions::diag::{self, TaskId};
use crate::abstractions::percpu::PerCpuCounter;
use crate::abstractions::static_key;
use crate::variant;
use core::{
    marker::PhantomData,
    ops::Deref,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{
    ffi::c_void,
    list::{impl_has_list_links, impl_list_arc_safe, impl_list_item, List, ListArc, ListLinks},
    new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
    types::ForeignOwnable,
};

/// When [`Gate::drain`] first logs what it is waiting for, after it started.
pub(crate) const FIRST_REPORT_MS: u32 = 1000;
/// The longest interval between two reports: the interval doubles from
/// [`FIRST_REPORT_MS`] up to this.
pub(crate) const MAX_REPORT_INTERVAL_MS: u32 = 60_000;
/// The longest single sleep of a drain or a cdev wait.
///
/// The hung-task detector reports a task that stays in uninterruptible
/// sleep without a context switch for `hung_task_timeout_secs`
/// (`CONFIG_DEFAULT_HUNG_TASK_TIMEOUT`, 120 s by default and 30 s in the
/// test kernel). A drain may wait for as long as a file stays open, in
/// `rmmod` or in a detached unit's work item, so it wakes at least this
/// often; reports are due by the clock and do not change.
pub(crate) const MAX_SLEEP_MS: u32 = 10_000;
/// How many distinct processes one report names; the rest are counted.
pub(crate) const NAMED_HOLDERS: usize = 8;

/// Returns the interval until the report after one `interval` ms apart.
pub(crate) fn next_report_interval(interval: u32) -> u32 {
    interval.saturating_mul(2).min(MAX_REPORT_INTERVAL_MS)
}

/// The gate's slow-path bookkeeping.
struct Bookkeeping<T> {
    /// Every open file of the gate.
    holders: List<OpenFile<T>>,
    /// The number of entries of `holders`.
    files: usize,
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
    book: Mutex<Bookkeeping<T>>,
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
                Bookkeeping { holders: List::new(), files: 0, drained: None },
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
        if self.count(&self.entered) {
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
        if self.count(&self.exited) {
            self.wake_drainer();
        }
    }

    /// Counts an entrance or an exit on `counter`, then returns whether the
    /// gate is closing.
    ///
    /// While no gate of the module is closing this is the increment and the
    /// static key's NOP (see "Static branch" in the module documentation);
    /// once one is, the NOP is a jump to the load and test of this gate's
    /// own `closing`.
    #[inline(always)]
    fn count(&self, counter: &PerCpuCounter) -> bool {
        if variant::LOAD_TEST {
            counter.inc();
            return self.closing.load(Ordering::Relaxed);
        }
        counter.inc_then_key() && self.closing.load(Ordering::Relaxed)
    }

    /// Undoes an entrance that found the gate closing.
    #[cold]
    #[inline(never)]
    fn back_out(&self) {
        // Weakly ordered CPUs may make this exit visible before the
        // entrance it undoes: the branch on `closing` orders that load
        // before the increment, but nothing orders the two increments. A
        // drain could then count the exit without its entrance and balance
        // while another pass is inside. Order them, as `exit` does (see
        // "Drain"; the spin model's mutant `weak/no-backout-fence`).
        #[cfg(not(target_arch = "x86_64"))]
        core::sync::atomic::fence(Ordering::SeqCst);
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
    /// that a drain that waits for this file can name it. Costs one small
    /// allocation and a constant-time list insertion, however many files
    /// are open.
    pub(crate) fn open(self: Pin<&Self>) -> Result<FilePass<T>> {
        let pass = self.get_ref().enter()?;
        let file = ListArc::pin_init(
            try_pin_init!(OpenFile {
                gate: NonNull::from(self.get_ref()),
                task: TaskId::current(),
                links <- ListLinks::new(),
            }? Error),
            GFP_KERNEL,
        )?;
        // The entrance of `pass` now belongs to `file`, whose drop counts
        // the exit.
        core::mem::forget(pass);
        let handle = file.clone_arc();
        let mut book = self.book.lock();
        book.holders.push_back(file);
        book.files += 1;
        drop(book);
        // INVARIANT: `handle` is on this gate's list until it is dropped.
        Ok(FilePass { file: handle })
    }

    /// Returns whether the gate is closing.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Closes the gate: every entrance that starts after this returns fails.
    ///
    /// Passes already granted stay valid until they are dropped. May sleep.
    /// Returns how long its two costly steps took (zero if the gate was
    /// closed already), for the owner's log.
    pub(crate) fn close(&self) -> CloseTimes {
        if self.closing.swap(true, Ordering::SeqCst) {
            return CloseTimes::default();
        }
        let start = diag::ktime_ns();
        // Send every pass of the module to the slow path, which loads
        // `closing`; the gate's drop gives the key back (see "Static
        // branch" in the module documentation).
        // INVARIANT: a gate whose `closing` is set holds one enable of the
        // key until it is dropped.
        if !variant::NO_KEY {
            static_key::inc();
        }
        let keyed = diag::ktime_ns();
        // Make every CPU see `closing` and the key before anything is
        // counted (see "Close" in the module documentation).
        mb_on_each_cpu();
        CloseTimes {
            key_ns: keyed - start,
            barrier_ns: diag::ktime_ns() - keyed,
        }
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
        let files = self.book.lock().files as u64;
        (files, inside.saturating_sub(files))
    }

    /// Waits until every pass, open file and operation, has ended.
    ///
    /// The gate must be closed first. Logs what it is still waiting for
    /// [`FIRST_REPORT_MS`] after it started, then at intervals that double
    /// up to [`MAX_REPORT_INTERVAL_MS`]. May sleep for as long as a file
    /// stays open.
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
        let mut interval = FIRST_REPORT_MS;
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
                interval = next_report_interval(interval);
                next_report = now + i64::from(interval);
            }
            // At most `MAX_REPORT_INTERVAL_MS`: the conversion cannot fail.
            // At most `MAX_SLEEP_MS` at a time.
            let left = u32::try_from(next_report - now).unwrap_or(MAX_REPORT_INTERVAL_MS);
            self.drained
                .wait_timeout(msecs_to_jiffies(left.clamp(1, MAX_SLEEP_MS)));
        }
        let mut book = self.book.lock();
        book.drained = Some(Tail::now());
        let open = book.files;
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

    /// Returns who holds the gate's files: a racy, bounded summary.
    ///
    /// The first [`NAMED_HOLDERS`] distinct processes found on the list of
    /// holders are named with their number of files, the other files are
    /// only counted, however many files are open. The list is walked under
    /// `book`, which every `release` needs; nothing is printed meanwhile.
    pub(crate) fn holders(&self) -> Holders {
        let (files, calls) = self.usage();
        let mut named: [Option<(TaskId, u64)>; NAMED_HOLDERS] = [None; NAMED_HOLDERS];
        let book = self.book.lock();
        for file in book.holders.iter() {
            // The first free slot or this process's: slots fill in order.
            let slot = named
                .iter_mut()
                .find(|n| n.map_or(true, |(t, _)| t.pid == file.task.pid));
            if let Some(slot) = slot {
                *slot = Some((file.task, slot.map_or(0, |(_, k)| k) + 1));
            }
        }
        drop(book);
        Holders {
            files,
            calls,
            named,
        }
    }

    /// Logs who keeps the drain waiting, `waited_ms` after it started.
    ///
    /// At most `NAMED_HOLDERS + 2` lines, however many files are open (see
    /// [`Gate::holders`]).
    #[cold]
    fn report(&self, waited_ms: i64) {
        let holders = self.holders();
        let name = self.name.to_str().unwrap_or("?");
        pr_info!(
            "{}: unload waiting {} s: {} open file(s), {} call(s) in flight\n",
            name,
            waited_ms / 1000,
            holders.files,
            holders.calls
        );
        for (task, n) in holders.named() {
            pr_info!(
                "{}: held open by pid {} ({}), {} file(s) (pid in the initial pid namespace)\n",
                name,
                task.pid,
                task.comm(),
                n
            );
        }
        if holders.others() > 0 {
            pr_info!(
                "{}: held open by other processes: {} more file(s)\n",
                name,
                holders.others()
            );
        }
    }
}

/// Who holds the files of a gate, as [`Gate::holders`] found them.
pub(crate) struct Holders {
    /// The number of open files.
    pub(crate) files: u64,
    /// The number of calls in flight, open files not counted.
    pub(crate) calls: u64,
    /// The first [`NAMED_HOLDERS`] processes, with their number of files.
    named: [Option<(TaskId, u64)>; NAMED_HOLDERS],
}

impl Holders {
    /// Returns the named processes (the opener's identity), each with its
    /// number of open files.
    pub(crate) fn named(&self) -> impl Iterator<Item = &(TaskId, u64)> {
        self.named.iter().flatten()
    }

    /// Returns the number of open files of the processes not named.
    pub(crate) fn others(&self) -> u64 {
        let counted: u64 = self.named().map(|(_, n)| n).sum();
        self.files.saturating_sub(counted)
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

/// How long the two costly steps of [`Gate::close`] took.
#[derive(Clone, Copy, Default)]
pub(crate) struct CloseTimes {
    /// Enabling the static key: with jump labels, the first enable patches
    /// every NOP of the module (`text_poke_bp()`, a round of IPIs on every
    /// CPU per phase).
    pub(crate) key_ns: i64,
    /// `mb_on_each_cpu()`.
    pub(crate) barrier_ns: i64,
}

#[pinned_drop]
impl<T> PinnedDrop for Gate<T> {
    fn drop(self: Pin<&mut Self>) {
        // Normally the owner has closed, drained and waited out the tail of
        // every gate already, and this costs nothing. It is what makes
        // freeing a gate with passes still out impossible.
        self.close();
        if !(variant::SKIP_DRAIN
            || variant::SKIP_TAIL
            || variant::SKIP_UNIT_TAIL
            || variant::NO_GATE)
        {
            let drained = self.book.lock().drained;
            match drained {
                Some(tail) => tail.wait(),
                None => {
                    self.drain();
                    Tail::synchronize();
                }
            }
        }
        // Drained, and the tail waited out: no pass can reach this gate's
        // check any more, so its enable of the static key goes. While other
        // gates hold it their passes keep the slow path; after the last,
        // the sites are NOPs again.
        if !variant::NO_KEY {
            static_key::dec();
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

/// An open file of a gate: its entrance, its opener and its list links.
///
/// It is shared by the file (through its [`FilePass`]) and the gate's list
/// of holders; it is dropped, and the file's exit counted, when both have
/// let go of it, which is in [`FilePass`]'s drop.
///
/// # Invariants
///
/// `gate` points to a pinned gate whose entrance count includes this file;
/// the gate is not freed before this is dropped (see [`Gate`]).
#[pin_data(PinnedDrop)]
pub(crate) struct OpenFile<T> {
    gate: NonNull<Gate<T>>,
    task: TaskId,
    #[pin]
    links: ListLinks,
}

impl_has_list_links! {
    impl<T> HasListLinks<0> for OpenFile<T> { self.links }
}
impl_list_arc_safe! {
    impl{T} ListArcSafe<0> for OpenFile<T> { untracked; }
}
impl_list_item! {
    impl{T} ListItem<0> for OpenFile<T> { using ListLinks; }
}

// SAFETY: An `OpenFile` only gives shared access to the gate, which is
// `Sync` when `T` is; its drop counts an exit, which any task may do.
unsafe impl<T: Sync> Send for OpenFile<T> {}
// SAFETY: See above.
unsafe impl<T: Sync> Sync for OpenFile<T> {}

impl<T> OpenFile<T> {
    /// Returns the gate this file holds open.
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

#[pinned_drop]
impl<T> PinnedDrop for OpenFile<T> {
    fn drop(self: Pin<&mut Self>) {
        self.gate().exit();
    }
}

/// The pass that an open file holds from `open` to `release`.
///
/// On Linux an open `struct file` keeps calling through the driver's
/// `file_operations`, so the gate (and the module) must outlive every open
/// file: the drain waits for these too. A `FilePass` does not give access
/// to the state by itself; every operation still enters the gate through
/// [`OpenFile::enter`]. A file keeps its pass as a raw pointer in
/// `private_data` (its [`ForeignOwnable`] implementation).
///
/// # Invariants
///
/// `file` is on the list of holders of its gate.
pub(crate) struct FilePass<T> {
    file: Arc<OpenFile<T>>,
}

impl<T> FilePass<T> {
    /// Returns the open file of this pass.
    pub(crate) fn file(&self) -> &OpenFile<T> {
        &self.file
    }
}

// A file keeps its pass in `private_data`: `into_foreign` gives it up for a
// pointer, `borrow` reaches its open file during a call, and `from_foreign`
// takes it back in `release`.
impl<T: 'static> ForeignOwnable for FilePass<T> {
    type Borrowed<'a> = &'a OpenFile<T>;

    fn into_foreign(self) -> *const c_void {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so `file` is moved out only once.
        let file = unsafe { core::ptr::read(&this.file) };
        Arc::into_raw(file).cast()
    }

    unsafe fn borrow<'a>(ptr: *const c_void) -> &'a OpenFile<T> {
        // SAFETY: The caller's contract: `ptr` comes from `into_foreign` and
        // is not yet taken back, so the `Arc` it leaked keeps the
        // `OpenFile` alive during `'a`.
        unsafe { &*ptr.cast::<OpenFile<T>>() }
    }

    unsafe fn from_foreign(ptr: *const c_void) -> Self {
        // INVARIANT: a pass that `into_foreign` gave up was on the list, and
        // only this pass's drop takes it off.
        Self {
            // SAFETY: The caller's contract: `ptr` is an `Arc::into_raw` of
            // ours, taken back once.
            file: unsafe { Arc::from_raw(ptr.cast::<OpenFile<T>>()) },
        }
    }
}

impl<T> Drop for FilePass<T> {
    fn drop(&mut self) {
        let gate = self.file.gate();
        let mut book = gate.book.lock();
        book.files -= 1;
        // SAFETY: An `OpenFile` is only ever put on the list of its own gate
        // (`Gate::open`), so it is on this list or on none.
        let entry = unsafe { book.holders.remove(&self.file) };
        drop(book);
        // Not the last reference (`self.file` is another): dropping the
        // list's reference here frees nothing. `self.file` goes next, and
        // with it the `OpenFile`, which counts the exit: after it left the
        // list, as the drain's check of `files` requires.
        drop(entry);
    }
}
