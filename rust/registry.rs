// SPDX-License-Identifier: GPL-2.0

//! The units of the module: attach, detach (hot-unplug) and unload.
//!
//! A [`Registry`] owns the device numbers, the class and a table of the
//! live units. Attaching a unit creates it and publishes it (cdev, `/dev`
//! node, sysfs directory). Detaching it runs the first half of the unload
//! protocol for that unit in the caller (close, unpublish, wake), so that
//! when `detach` returns the unit is unreachable, and queues the second
//! half (drain, cdev release, tail, free) as a work item: the caller does
//! not wait for the unit's holders. Unloading the module is detaching every
//! live unit, then waiting until every detached unit has been drained, then
//! the module's own tail, which is also the tail of the units drained
//! during the unload, and last freeing those units ([`Registry::shutdown`]).
//!
//! # Locking
//!
//! `table` serialises attaches and detaches; [`Drains`] has its own lock,
//! taken inside `table`'s or alone (by the drain that finishes). Nothing
//! that a file operation or a sysfs `show` does takes either lock, so a
//! detach may unpublish a unit (which waits for the unit's sysfs callbacks
//! in progress) while holding `table`.

use crate::abstractions::barrier::Tail;
use crate::abstractions::chrdev::{Cdev, Class, DeviceNode, Region};
use crate::abstractions::completion::Completion;
use crate::abstractions::debugfs::{SeqFile, Status};
use crate::abstractions::{diag, sysfs};
use crate::{fops::FOPS, gate, gate::CloseTimes, Unit, MAX_UNITS};
use core::ptr::NonNull;
use kernel::{
    c_str, fmt, new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
    workqueue,
};

/// The units that are detached but not yet done, by index.
///
/// A unit's bit is set when it is detached and cleared by its drain as the
/// very last thing it does: after the unit was freed, or, during the
/// module's unload, after the unit was handed over to the unloader.
#[pin_data]
pub(crate) struct Drains {
    #[pin]
    state: Mutex<Draining>,
    /// Completed whenever a bit is cleared.
    #[pin]
    idle: Completion,
}

/// The state of [`Drains`], under its lock.
///
/// # Invariants
///
/// A unit in `units` is alive: before it is freed, its drain takes it out
/// (under the lock, [`Drains::forget`]), or hands it over ([`Drains::park`]),
/// which takes it out too.
struct Draining {
    /// Bit `i` is set while unit `i` is detached and not yet done.
    mask: u64,
    /// The detached units that are not yet freed or handed over, for the
    /// status file; `None` also for the short while between a unit's
    /// removal from here and the clearing of its bit.
    units: [Option<NonNull<Unit>>; MAX_UNITS as usize],
    /// Set by [`Registry::shutdown`]: a drain that ends from now on hands
    /// its unit over ([`Drains::park`]) instead of waiting for the unit's
    /// tail and freeing it.
    parking: bool,
    /// The units handed over, by index: drained, their cdevs released, not
    /// yet freed.
    parked: [Option<Pin<KBox<Unit>>>; MAX_UNITS as usize],
}

// SAFETY: The pointers are only followed under the lock of `Drains`, to
// units that any thread may read (`Unit` is `Sync`); they are never used
// to free or move a unit.
unsafe impl Send for Draining {}

impl Drains {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(
                    Draining {
                        mask: 0,
                        units: [None; MAX_UNITS as usize],
                        parking: false,
                        parked: [const { None }; MAX_UNITS as usize],
                    },
                    "Drains::state"
                ),
                idle <- Completion::new(),
            }),
            GFP_KERNEL,
        )
    }

    fn is_draining(&self, index: u32) -> bool {
        self.state.lock().mask & (1 << index) != 0
    }

    /// Records that `unit` was detached and is now drained in the
    /// background, until [`Drains::finish`].
    ///
    /// The unit must stay alive until it calls [`Drains::forget`].
    fn start(&self, unit: Pin<&Unit>) {
        let mut state = self.state.lock();
        state.mask |= 1 << unit.index();
        // INVARIANT: the unit's drain calls `forget` before freeing it
        // (`Unit::retire`), and detached units are freed nowhere else.
        state.units[unit.index() as usize] = Some(NonNull::from(unit.get_ref()));
    }

    /// Takes `unit` out of the units that the status file shows.
    ///
    /// The drain calls this before it frees the unit: once it returns, no
    /// reader of the status file is looking at the unit, and none will.
    pub(crate) fn forget(&self, unit: &Unit) {
        let mut state = self.state.lock();
        let entry = &mut state.units[unit.index() as usize];
        if *entry == Some(NonNull::from(unit)) {
            *entry = None;
        }
    }

    /// Records that the detached unit `index` has been freed.
    ///
    /// The drain calls this last: once it returns, the drain only returns
    /// through module text, without sleeping, which the module's tail
    /// covers.
    pub(crate) fn finish(&self, index: u32) {
        self.state.lock().mask &= !(1 << index);
        self.idle.complete();
    }

    /// Hands a drained unit over to the module's unload, if it has started.
    ///
    /// The unit's gate is drained and its cdev released (steps 4 and 5).
    /// During the unload the unit then needs no tail of its own: the
    /// unloader waits out one tail, which starts after every drain has
    /// ended, for every unit and for the module, and frees the units after
    /// it ([`Registry::shutdown`]). So 64 units cost one RCU Tasks grace
    /// period, not one each, and no drain sleeps in one. Returns the unit
    /// if there is no unload: the caller waits out its tail and frees it.
    /// Otherwise it is what [`finish`](Self::finish) is for the caller.
    pub(crate) fn park(&self, unit: Pin<KBox<Unit>>) -> Option<Pin<KBox<Unit>>> {
        let index = unit.index();
        let mut state = self.state.lock();
        if !state.parking {
            return Some(unit);
        }
        // INVARIANT: the status file no longer sees the unit, which the
        // unloader frees.
        state.units[index as usize] = None;
        state.parked[index as usize] = Some(unit);
        state.mask &= !(1 << index);
        drop(state);
        self.idle.complete();
        None
    }

    /// From now on, drains that end hand their units over ([`park`](Self::park)).
    fn start_parking(&self) {
        self.state.lock().parking = true;
    }

    /// Takes one unit that a drain handed over, if any is left.
    fn take_parked(&self) -> Option<Pin<KBox<Unit>>> {
        self.state.lock().parked.iter_mut().find_map(Option::take)
    }

    /// Waits until every detached unit has been freed or handed over.
    ///
    /// The drains log what they wait for; this only waits.
    fn wait_idle(&self) {
        loop {
            self.idle.reinit();
            // Order the reinit before the check: a `finish` that this check
            // misses completes `idle` after it.
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            if self.state.lock().mask == 0 {
                return;
            }
            // Waking now and then keeps the hung-task detector quiet while
            // a holder keeps a unit open.
            self.idle.wait_timeout(msecs_to_jiffies(gate::MAX_SLEEP_MS));
        }
    }
}

/// A live unit: its `/dev` node, its cdev and the unit.
///
/// Field order is the unpublishing order: the node goes before the cdev.
struct Slot {
    node: Option<DeviceNode>,
    cdev: Option<Cdev>,
    unit: Pin<KBox<Unit>>,
}

impl Slot {
    /// Publishes the unit: maps its device number in `region` to it and
    /// creates `/dev/<name>` with its sysfs attributes.
    ///
    /// # Safety
    ///
    /// `class` must outlive the slot.
    unsafe fn publish(&mut self, class: &Class, region: &Region) -> Result {
        let devt = region.devt(self.unit.index());
        let name = CString::try_from_fmt(fmt!("safedetach{}", self.unit.index()))?;
        self.cdev = Some(Cdev::add(&FOPS, devt, self.unit.anchor())?);
        let data = self.unit.as_ref().get_ref() as *const Unit;
        // SAFETY: The caller guarantees that the class outlives the slot,
        // which owns the node; the unit, which the attributes use as
        // drvdata, is freed only after the node was dropped (`unplug`).
        self.node = Some(unsafe {
            class.create_node(
                devt,
                &name,
                data.cast_mut().cast(),
                sysfs::UNIT_GROUPS.as_ptr(),
            )
        }?);
        Ok(())
    }

    /// Steps 1 to 3 of the protocol for this unit: close, unpublish, wake.
    /// Returns the unit, unreachable but maybe not yet drained, and how
    /// long each step took.
    fn unplug(mut self) -> (Pin<KBox<Unit>>, UnplugTimes) {
        let start = diag::ktime_ns();
        // 1. Close the gate: from now on every operation fails with ENODEV.
        let close = self.unit.as_ref().gate().close();
        let closed = diag::ktime_ns();
        // 2. Unpublish: the /dev node and the sysfs directory go (their
        //    callbacks in progress return first), the device number is
        //    unmapped, and only the cdev keeps the anchor.
        self.node = None;
        self.cdev = None;
        self.unit.anchor().release();
        let unpublished = diag::ktime_ns();
        // 3. Wake every sleeper and poller.
        self.unit.as_ref().wake();
        let times = UnplugTimes {
            close_ns: closed - start,
            close,
            unpublish_ns: unpublished - closed,
            wake_ns: diag::ktime_ns() - unpublished,
        };
        (self.unit, times)
    }
}

/// How long each step of [`Slot::unplug`] took, for a detach's log line.
struct UnplugTimes {
    close_ns: i64,
    /// Of `close_ns`: the static key and the barrier.
    close: CloseTimes,
    unpublish_ns: i64,
    wake_ns: i64,
}

/// The live units, by index.
struct Table {
    live: [Option<Slot>; MAX_UNITS as usize],
    /// Set by [`Registry::shutdown`]: nothing is attached any more.
    shut: bool,
}

impl Drop for Table {
    fn drop(&mut self) {
        // `Registry::shutdown` leaves no live unit; were one left, it would
        // still go through the whole protocol, here and now.
        for slot in self.live.iter_mut() {
            if let Some(slot) = slot.take() {
                slot.unplug().0.retire();
            }
        }
    }
}

/// Every unit of the module, the class and the device numbers.
///
/// # Invariants
///
/// Every unit of `table` was published in `class`; `class` and `region`
/// outlive them (field order, and `shutdown` empties `table` first).
#[pin_data(PinnedDrop)]
pub(crate) struct Registry {
    #[pin]
    table: Mutex<Table>,
    drains: Arc<Drains>,
    capacity: usize,
    class: Class,
    region: Region,
}

impl Registry {
    /// Creates an empty registry: the class and [`MAX_UNITS`] device
    /// numbers, no unit.
    pub(crate) fn new(capacity: usize) -> Result<Pin<KBox<Self>>> {
        let region = Region::new(MAX_UNITS, c_str!("safedetach"))?;
        let class = Class::new(c_str!("safedetach"))?;
        let drains = Drains::new()?;
        KBox::pin_init(
            pin_init!(Self {
                table <- new_mutex!(
                    Table { live: [const { None }; MAX_UNITS as usize], shut: false },
                    "Registry::table"
                ),
                drains,
                capacity,
                class,
                region,
            }),
            GFP_KERNEL,
        )
    }

    /// Returns the class of the units.
    pub(crate) fn class(&self) -> &Class {
        &self.class
    }

    /// Creates unit `index` and publishes it as `/dev/safedetach<index>`.
    ///
    /// Fails with `EEXIST` if the unit is live, `EBUSY` if it was detached
    /// and is still draining, `EINVAL` if `index` is out of range.
    pub(crate) fn attach(&self, index: u32) -> Result {
        if index >= MAX_UNITS {
            return Err(EINVAL);
        }
        let mut table = self.table.lock();
        if table.shut {
            return Err(ENODEV);
        }
        if table.live[index as usize].is_some() {
            return Err(EEXIST);
        }
        if self.drains.is_draining(index) {
            return Err(EBUSY);
        }
        // A slot exists before its cdev is added: whatever step fails, the
        // unit is torn down by the protocol, as a detach.
        let mut slot = Slot {
            node: None,
            cdev: None,
            unit: Unit::new(index, self.capacity, self.drains.clone())?,
        };
        // SAFETY: The slot goes into `table`, which is emptied before
        // `class` is dropped (type invariant), or is unplugged at once.
        match unsafe { slot.publish(&self.class, &self.region) } {
            Ok(()) => {
                table.live[index as usize] = Some(slot);
                Ok(())
            }
            Err(e) => {
                self.retire(slot);
                Err(e)
            }
        }
    }

    /// Detaches unit `index`: when this returns, the unit is unreachable.
    ///
    /// Its drain continues in the background. Fails with `ENOENT` if the
    /// unit is not live (never attached, or already detached).
    pub(crate) fn detach(&self, index: u32) -> Result {
        let start = diag::ktime_ns();
        let mut table = self.table.lock();
        let locked = diag::ktime_ns();
        let slot = table
            .live
            .get_mut(index as usize)
            .ok_or(EINVAL)?
            .take()
            .ok_or(ENOENT)?;
        // Unplugged under `table`: an attach of the same index waits until
        // the old node is gone, and then finds the unit draining.
        let times = self.retire(slot);
        drop(table);
        pr_info!(
            "safedetach{}: detached in {} us (lock {} us, close {} us (key {} us, barrier {} us), unpublish {} us, wake {} us)\n",
            index,
            (diag::ktime_ns() - start) / 1000,
            (locked - start) / 1000,
            times.close_ns / 1000,
            times.close.key_ns / 1000,
            times.close.barrier_ns / 1000,
            times.unpublish_ns / 1000,
            times.wake_ns / 1000
        );
        Ok(())
    }

    /// Unplugs a slot and queues the drain of its unit; returns how long
    /// the unplug's steps took.
    fn retire(&self, slot: Slot) -> UnplugTimes {
        let (unit, times) = slot.unplug();
        self.drains.start(unit.as_ref());
        workqueue::system_long().enqueue(unit);
        times
    }

    /// The module's unload: detaches every live unit, waits until every
    /// detached unit has been drained, waits out the module's tail, then
    /// frees the units that were drained during the unload.
    ///
    /// `loud` logs the start and the end (module exit); a failed init is
    /// quiet. Does nothing the second time.
    pub(crate) fn shutdown(&self, loud: bool) {
        let start = diag::ktime_ns();
        let mut table = self.table.lock();
        if table.shut {
            return;
        }
        table.shut = true;
        // The drains that end from now on leave their units' tails to the
        // module's: one grace period for all, after every drain ended.
        self.drains.start_parking();
        if loud {
            let live = table.live.iter().flatten().count();
            pr_info!("unloading: closing {} units\n", live);
        }
        for slot in table.live.iter_mut() {
            if let Some(slot) = slot.take() {
                self.retire(slot);
            }
        }
        drop(table);
        self.drains.wait_idle();
        let drained = diag::ktime_ns();
        // The tail of the module: every drain that finished has left module
        // text, and nobody still uses `table` or `drains` (`mutex_unlock()`
        // may touch the mutex after the next owner took it). It starts after
        // every drain handed its unit over, so it is also the tail of each
        // of those units (step 6; `Unit::retire`).
        if !crate::variant::SKIP_TAIL {
            Tail::synchronize();
        }
        // 7. Free the units handed over. Their gates find a tail that
        //    started after their drain already waited out (`Gate`'s drop).
        while let Some(unit) = self.drains.take_parked() {
            drop(unit);
        }
        if loud {
            pr_info!(
                "unloaded: drain {} us, tail {} us\n",
                (drained - start) / 1000,
                (diag::ktime_ns() - drained) / 1000
            );
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Registry {
    fn drop(self: Pin<&mut Self>) {
        // After the module's exit, nothing to do; after a failed init, the
        // units that were attached go through the protocol.
        self.shutdown(false);
    }
}

/// The debugfs status file: one line per unit, live or draining, in index
/// order, each followed by its holders, as a drain report names them
/// (bounded: [`gate::NAMED_HOLDERS`] processes, the rest counted).
///
/// ```text
/// safedetach2 draining open_files=1 in_flight=0
///   held open by pid PID (sdtool), 1 file(s)
/// safedetach3 live open_files=0 in_flight=0
/// ```
///
/// A draining unit is shown until its drain is about to free it.
impl Status for Registry {
    fn show(&self, out: &mut SeqFile<'_>) {
        // Both locks, so that no unit moves between the two lists meanwhile
        // and none is freed while it is shown: a live unit is freed only
        // after a detach took it out of `table`, a draining one only after
        // `Drains::forget`.
        let table = self.table.lock();
        let draining = self.drains.state.lock();
        for (i, slot) in table.live.iter().enumerate() {
            if let Some(slot) = slot {
                show_unit(out, slot.unit.as_ref(), "live");
            } else if let Some(unit) = draining.units[i] {
                // SAFETY: A unit in `units` is alive while the lock is held
                // (type invariant of `Draining`), and pinned in its box.
                let unit = unsafe { Pin::new_unchecked(unit.as_ref()) };
                show_unit(out, unit, "draining");
            }
        }
    }
}

/// Writes the status of one unit: its line, then its holders.
fn show_unit(out: &mut SeqFile<'_>, unit: Pin<&Unit>, state: &str) {
    let holders = unit.gate().holders();
    out.print(fmt!(
        "safedetach{} {} open_files={} in_flight={}\n",
        unit.index(),
        state,
        holders.files,
        holders.calls
    ));
    for (task, n) in holders.named() {
        out.print(fmt!(
            "  held open by pid {} ({}), {} file(s)\n",
            task.pid,
            task.comm(),
            n
        ));
    }
    if holders.others() > 0 {
        out.print(fmt!(
            "  held open by other processes: {} more file(s)\n",
            holders.others()
        ));
    }
}

/// Parses a unit index as the `attach` and `detach` files take it: decimal
/// digits, then at most one newline. `EINVAL` for anything else, or for an
/// index out of range.
pub(crate) fn parse_index(text: &[u8]) -> Result<u32> {
    let digits = text.strip_suffix(b"\n").unwrap_or(text);
    if digits.is_empty() {
        return Err(EINVAL);
    }
    let mut index: u32 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(EINVAL);
        }
        index = index * 10 + u32::from(c - b'0');
        if index >= MAX_UNITS {
            return Err(EINVAL);
        }
    }
    Ok(index)
}
