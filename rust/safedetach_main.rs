// SPDX-License-Identifier: GPL-2.0

//! safedetach: a char-device driver that unloads safely while in use.
//!
//! The module creates `units` devices `/dev/safedetach0..N-1` (module
//! parameters `units` and `capacity`), each a bounded byte FIFO:
//!
//! - `read` consumes bytes and blocks while the FIFO is empty, `write`
//!   appends and blocks while it is full, `O_NONBLOCK` gives `EAGAIN`;
//! - `poll`/`select`/`epoll` report readiness; signals interrupt sleeps;
//! - `ioctl(SAFEDETACH_IOC_STATS)` returns statistics
//!   (include/uapi/safedetach.h); other commands give `ENOTTY`.
//!
//! The point of the module is its unload. `rmmod` works while other CPUs
//! are opening, reading, writing, polling and closing the devices: every
//! file operation goes through a per-CPU [`gate::Gate`], and `module_exit`
//! (the [`Drop`] of [`SafeDetach`]) closes the gates, unpublishes the
//! devices, wakes every sleeper, drains the gates and the cdevs, and waits
//! out the tail before it frees anything. While a file stays open `rmmod`
//! waits, every operation on the file fails with `ENODEV`, and the kernel
//! log names the process holding it. See Documentation/design.rst.
//!
//! Units can also be detached and attached while the module stays loaded
//! (hot-unplug, [`registry`]): writing an index to
//! `/sys/class/safedetach/detach` runs the same protocol for that unit
//! alone, returning once the unit is unreachable and draining it in a work
//! item; `/sys/class/safedetach/attach` creates a unit again. Each unit's
//! sysfs directory shows its `open_files` and `in_flight`
//! ([`abstractions::sysfs`]).
//!
//! The crate has three layers, each readable on its own:
//!
//! - **The protocol**, [`gate`]: the per-CPU gate, its close, drain and
//!   tail. This is the part a driver author copies.
//! - **Kernel abstractions 6.12 lacks**, [`abstractions`]: char devices,
//!   completions, wait queues, per-CPU counters, the static key, the IPI
//!   barrier round, sysfs attributes, a debugfs file, diagnostics, and the
//!   thin C wrappers: the only
//!   layer that uses `bindings::`; Documentation/porting.rst maps each file
//!   to its mainline replacement.
//! - **The driver**: this crate root (module parameters, units, load and
//!   unload), [`registry`] (attach, detach, background drains), [`fops`]
//!   (the file operations) and [`fifo`] (the byte FIFO),
//!   plus [`variant`], the deliberately broken builds of the test suite.
//!
//! With `CONFIG_DEBUG_FS`, `/sys/kernel/debug/safedetach/status` lists
//! every unit, live or draining, with its open files, its calls in flight
//! and the processes holding it ([`abstractions::debugfs`], [`registry`]).
//! A reader may keep it open across `rmmod`: its reads then fail with
//! `EIO`.

use kernel::{c_str, fmt, prelude::*, str::CString};

mod abstractions;
mod fifo;
mod fops;
mod gate;
mod registry;
mod variant;

use abstractions::{
    barrier::Tail, chrdev::CdevAnchor, debugfs::StatusFile, ffi, sysfs::ClassCommand,
};
use fifo::Fifo;
use gate::Gate;
use kernel::{
    new_work,
    sync::Arc,
    workqueue::{impl_has_work, Work, WorkItem},
};
use registry::{Drains, Registry};

module! {
    type: SafeDetach,
    name: "safedetach",
    author: "The safedetach developers",
    description: "A char-device driver that can really be unloaded while in use",
    license: "GPL",
}

/// The number of unit indices, and the largest accepted `units` parameter.
pub(crate) const MAX_UNITS: u32 = 64;
/// The largest accepted `capacity` parameter (1 MiB).
const MAX_CAPACITY: u32 = 1 << 20;

/// One device: the cdev's anchor and the gate around the FIFO.
///
/// A detached unit is also the work item that drains and frees it
/// ([`Unit::retire`]). Field order is drop order: the anchor is released
/// (no path through the cdev is left) before the gate is freed.
#[pin_data]
pub(crate) struct Unit {
    #[pin]
    anchor: CdevAnchor,
    #[pin]
    gate: Gate<Fifo>,
    #[pin]
    work: Work<Unit>,
    index: u32,
    drains: Arc<Drains>,
}

impl_has_work! {
    impl HasWork<Self> for Unit { self.work }
}

impl Unit {
    fn new(index: u32, capacity: usize, drains: Arc<Drains>) -> Result<Pin<KBox<Self>>> {
        let name = CString::try_from_fmt(fmt!("safedetach{}", index))?;
        KBox::try_pin_init(
            try_pin_init!(Self {
                anchor <- CdevAnchor::new(),
                gate <- Gate::new(name, Fifo::new(index, capacity)),
                work <- new_work!("Unit::work"),
                index,
                drains,
            }),
            GFP_KERNEL,
        )
    }

    /// Returns the index of the unit (`/dev/safedetach<index>`).
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// Returns the anchor of the unit's cdev.
    pub(crate) fn anchor(&self) -> &CdevAnchor {
        &self.anchor
    }

    /// Returns the gate of the unit.
    pub(crate) fn gate(self: Pin<&Self>) -> Pin<&Gate<Fifo>> {
        // SAFETY: `gate` is a structurally pinned field.
        unsafe { self.map_unchecked(|u| &u.gate) }
    }

    /// Step 3 of the protocol: blocked calls return `ENODEV`, pollers see
    /// `POLLHUP`. The gate must be closed.
    pub(crate) fn wake(self: Pin<&Self>) {
        if variant::SKIP_WAKE {
            return;
        }
        if let Some(fifo) = self.gate.closed_data() {
            fifo.wake_all();
        }
    }

    /// Steps 4 to 7 of the protocol for an unplugged unit: drain, wait for
    /// the cdev, wait out the unit's tail, free.
    ///
    /// May sleep for as long as a file of the unit stays open.
    pub(crate) fn retire(self: Pin<KBox<Self>>) {
        self.settle();
        self.free();
    }

    /// Steps 4 and 5 of the protocol: drain the gate, wait for the cdev.
    ///
    /// May sleep for as long as a file of the unit stays open.
    fn settle(&self) {
        // 4. Drain: calls in flight and open files.
        self.gate.drain();
        // 5. The cdev, whose release has been under way since it was
        //    deleted: no path into the unit is left.
        self.anchor.wait_released();
    }

    /// Steps 6 and 7 of the protocol for a settled unit: wait out its
    /// tail, free it.
    fn free(self: Pin<KBox<Self>>) {
        // 6. The unit's tail. The last exit's `complete()` on the gate,
        //    the cdev release's `complete()` on the anchor and `fops_put()`
        //    after `release` still run, without sleeping, after the waits
        //    above returned: a grace period that starts now covers them.
        if !variant::SKIP_TAIL && !variant::SKIP_UNIT_TAIL {
            Tail::now().wait();
        }
        // 7. Free (the gate's own drop finds its tail waited for), once the
        //    debugfs status file can no longer see the unit.
        self.drains.forget(&self);
        drop(self);
    }

    /// Returns the unit whose cdev's parent is `anchor`.
    ///
    /// # Safety
    ///
    /// `anchor` must be the `anchor` of a unit (the parent of a unit's
    /// cdev, as in `->open`).
    pub(crate) unsafe fn from_anchor(anchor: &CdevAnchor) -> Pin<&Self> {
        // SAFETY: By the caller's contract `anchor` is the `anchor` field of
        // a `Unit`, which lives at least as long as the borrow of its
        // anchor: a unit is freed only after its anchor was released.
        let unit = unsafe {
            core::ptr::from_ref(anchor)
                .cast::<u8>()
                .sub(core::mem::offset_of!(Self, anchor))
                .cast::<Self>()
        };
        // SAFETY: See above; units are pinned in their `KBox`.
        unsafe { Pin::new_unchecked(&*unit) }
    }
}

impl WorkItem for Unit {
    type Pointer = Pin<KBox<Unit>>;

    /// The background half of a detach: drain and free, then tell the
    /// registry, and touch nothing of the module after that.
    ///
    /// During the module's unload the unit is handed over to the unloader
    /// once drained, which waits out one tail for every unit and frees them
    /// ([`Drains::park`]).
    fn run(unit: Pin<KBox<Unit>>) {
        let drains = unit.drains.clone();
        let index = unit.index;
        unit.settle();
        if let Some(unit) = drains.park(unit) {
            unit.free();
            drains.finish(index);
        }
    }
}

/// The module: the attach and detach files, the debugfs status file and
/// the registry of units.
///
/// Field order is drop order, but the drop makes the order explicit: the
/// sysfs files go first (so that no write can attach a unit during the
/// unload), then every unit, then the status file (which shows the drains
/// of the unload while they wait), then the class and the device numbers.
struct SafeDetach {
    commands: Option<(ClassCommand<Registry>, ClassCommand<Registry>)>,
    status: Option<StatusFile<Registry>>,
    registry: Pin<KBox<Registry>>,
}

/// A write to `/sys/class/safedetach/attach`.
fn attach(registry: &Registry, text: &[u8]) -> Result {
    registry.attach(registry::parse_index(text)?)
}

/// A write to `/sys/class/safedetach/detach`.
fn detach(registry: &Registry, text: &[u8]) -> Result {
    registry.detach(registry::parse_index(text)?)
}

impl kernel::Module for SafeDetach {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: FFI calls without preconditions.
        let (units, capacity) = unsafe {
            (
                ffi::safedetach_param_units(),
                ffi::safedetach_param_capacity(),
            )
        };
        if !(1..=MAX_UNITS).contains(&units) {
            pr_err!("invalid units={}: must be 1..{}\n", units, MAX_UNITS);
            return Err(EINVAL);
        }
        if !(1..=MAX_CAPACITY).contains(&capacity) {
            pr_err!(
                "invalid capacity={}: must be 1..{}\n",
                capacity,
                MAX_CAPACITY
            );
            return Err(EINVAL);
        }

        // If anything below fails, dropping the registry runs the unload
        // protocol for the units attached so far.
        let registry = Registry::new(capacity as usize)?;
        for i in 0..units {
            registry.attach(i)?;
        }
        let target = registry.as_ref().get_ref();
        // SAFETY: The commands are dropped before the registry, which owns
        // the class: `SafeDetach::drop` drops them first, and here they are
        // declared after it.
        let commands = unsafe {
            (
                ClassCommand::new(registry.class(), c_str!("attach"), target, attach)?,
                ClassCommand::new(registry.class(), c_str!("detach"), target, detach)?,
            )
        };
        // Optional, as debugfs is: without it the module works the same.
        // SAFETY: The status file is dropped before the registry:
        // `SafeDetach::drop` drops it, and it is declared before it.
        let status = unsafe { StatusFile::new(c_str!("safedetach"), c_str!("status"), target) };
        if let Some(name) = variant::NAME {
            pr_info!("this is the deliberately broken test variant '{}'\n", name);
        }
        pr_info!("loaded: {} units of {} bytes\n", units, capacity);
        Ok(SafeDetach {
            commands: Some(commands),
            status,
            registry,
        })
    }
}

impl Drop for SafeDetach {
    /// `module_exit`: the unload protocol (Documentation/design.rst).
    fn drop(&mut self) {
        // 0. No more attach or detach: removing the files waits for the
        //    writes in progress, which need nothing that is held here.
        self.commands = None;
        // 1-6. Detach every live unit (close, unpublish, wake), wait until
        //    every detached unit is drained and freed, then the tail.
        self.registry.shutdown(true);
        // The status file, which reads the registry: removing it waits for
        // the reads in progress, and later reads of open files fail.
        self.status = None;
        // 7. Free: the registry, then the class and the device numbers.
    }
}
