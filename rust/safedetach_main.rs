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

use kernel::{
    bindings, c_str, fmt,
    prelude::*,
    str::{CStr, CString},
};

mod barrier;
mod chrdev;
mod completion;
mod diag;
mod ffi;
mod fifo;
mod fops;
mod gate;
mod percpu;
mod variant;
mod wait;

use barrier::Tail;
use chrdev::{Cdev, CdevAnchor, Class, DeviceNode, Region};
use fifo::Fifo;
use gate::Gate;

module! {
    type: SafeDetach,
    name: "safedetach",
    author: "The safedetach developers",
    description: "A char-device driver that can really be unloaded while in use",
    license: "GPL",
}

/// The largest accepted `units` parameter.
const MAX_UNITS: u32 = 64;
/// The largest accepted `capacity` parameter (1 MiB).
const MAX_CAPACITY: u32 = 1 << 20;

/// One device: the cdev's anchor and the gate around the FIFO.
///
/// Field order is drop order: the anchor is released (no path through the
/// cdev is left) before the gate is freed.
#[pin_data]
pub(crate) struct Unit {
    #[pin]
    anchor: CdevAnchor,
    #[pin]
    gate: Gate<Fifo>,
}

impl Unit {
    fn new(index: u32, capacity: usize) -> Result<Pin<KBox<Self>>> {
        let name = CString::try_from_fmt(fmt!("safedetach{}", index))?;
        KBox::try_pin_init(
            try_pin_init!(Self {
                anchor <- CdevAnchor::new(),
                gate <- Gate::new(name, Fifo::new(index, capacity)),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns the gate of the unit.
    pub(crate) fn gate(self: Pin<&Self>) -> Pin<&Gate<Fifo>> {
        // SAFETY: `gate` is a structurally pinned field.
        unsafe { self.map_unchecked(|u| &u.gate) }
    }

    /// Returns the unit of a char-device inode of this driver.
    ///
    /// # Safety
    ///
    /// `inode` must be an inode whose `i_cdev` is a cdev of this driver and
    /// is referenced for the duration of `'a` (as during `->open`).
    pub(crate) unsafe fn from_inode<'a>(inode: *mut bindings::inode) -> Pin<&'a Self> {
        // SAFETY: By the caller's contract `i_cdev` is one of our cdevs, whose
        // parent is the anchor of a unit (`Cdev::add`).
        let kobj = unsafe { ffi::safedetach_inode_cdev_parent(inode) };
        // SAFETY: `kobj` is the `kobj` of the `anchor` of a live `Unit`:
        // the cdev holds a reference to it, and a unit is freed only after
        // its anchor was released.
        let unit = unsafe {
            CdevAnchor::from_kobj(kobj)
                .cast::<u8>()
                .sub(core::mem::offset_of!(Self, anchor))
                .cast::<Self>()
        };
        // SAFETY: See above; units are pinned in their `KBox`.
        unsafe { Pin::new_unchecked(&*unit) }
    }
}

/// A unit and, while it is published, its cdev and `/dev` node.
///
/// The unload protocol runs in phases over all units ([`SafeDetach`]'s
/// drop); if a slot is dropped on its own (module init failed half way),
/// its drop runs every phase for this unit alone. A slot exists before its
/// cdev is added, so that whatever step of the init fails, the unit is torn
/// down by the protocol: its gate is closed and its sleepers are woken
/// before anything waits for its files.
struct Slot {
    /// The `/dev` node; dropped before `cdev`.
    node: Option<DeviceNode>,
    /// The cdev that maps the device number to the driver.
    cdev: Option<Cdev>,
    unit: Pin<KBox<Unit>>,
}

impl Slot {
    /// Creates the unit `index`, not yet published.
    fn new(index: u32, capacity: usize) -> Result<Self> {
        Ok(Self {
            node: None,
            cdev: None,
            unit: Unit::new(index, capacity)?,
        })
    }

    /// Publishes the unit: maps `devt` to it and creates `/dev/<name>`.
    ///
    /// # Safety
    ///
    /// `class` must outlive the slot.
    unsafe fn publish(&mut self, class: &Class, devt: bindings::dev_t, name: &CStr) -> Result {
        self.cdev = Some(Cdev::add(&FOPS, devt, &self.unit.anchor)?);
        // SAFETY: The caller guarantees that the class outlives the slot,
        // which owns the node.
        self.node = Some(unsafe { class.create_node(devt, name) }?);
        Ok(())
    }

    /// Step 1: new operations fail with `ENODEV`.
    fn close(&self) {
        self.unit.gate.close();
    }

    /// Step 2: remove the `/dev` node and unmap the device number; from now
    /// on only the cdev (and the files that hold it) keep the anchor.
    fn unpublish(&mut self) {
        self.node = None;
        self.cdev = None;
        self.unit.anchor.release();
    }

    /// Step 3: blocked calls return `ENODEV`, pollers see `POLLHUP`.
    fn wake(&self) {
        if variant::SKIP_WAKE {
            return;
        }
        if let Some(fifo) = self.unit.gate.closed_data() {
            fifo.wake_all();
        }
    }

    /// Step 4: wait for calls in flight and open files.
    fn drain(&self) {
        self.unit.gate.drain();
    }

    /// Step 5: wait until the cdev is released: no path into the driver
    /// through it is left.
    fn wait_cdev(&self) {
        self.unit.anchor.wait_released();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // After `SafeDetach::drop` these are cheap: close, drain and the
        // cdev wait return at once, and waking finds nobody. Here only for a
        // slot dropped on its own; the tail is then waited for by the gate's
        // own drop (the last field of `unit`).
        self.close();
        self.unpublish();
        self.wake();
        self.drain();
        self.wait_cdev();
    }
}

/// The module: every unit, the class and the device numbers.
///
/// Field order is drop order: the units (and their `/dev` nodes) go before
/// the class, and the class before the device numbers.
struct SafeDetach {
    slots: KVec<Slot>,
    _class: Class,
    _region: Region,
}

/// The `file_operations` of every unit.
static FOPS: chrdev::FileOperations = fops::FOPS;

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

        let region = Region::new(units, c_str!("safedetach"))?;
        let class = Class::new(c_str!("safedetach"))?;
        let mut slots = KVec::with_capacity(units as usize, GFP_KERNEL)?;
        for i in 0..units {
            let name = CString::try_from_fmt(fmt!("safedetach{}", i))?;
            // If anything below fails, dropping the slot runs the unload
            // protocol for it.
            let mut slot = Slot::new(i, capacity as usize)?;
            // SAFETY: The slot is dropped before `class`: it is declared
            // later here, and `slots` is the field before `_class` in
            // `SafeDetach`.
            unsafe { slot.publish(&class, region.devt(i), &name) }?;
            slots.push(slot, GFP_KERNEL)?;
        }
        if let Some(name) = variant::NAME {
            pr_info!("this is the deliberately broken test variant '{}'\n", name);
        }
        pr_info!("loaded: {} units of {} bytes\n", units, capacity);
        Ok(SafeDetach {
            slots,
            _class: class,
            _region: region,
        })
    }
}

impl Drop for SafeDetach {
    /// `module_exit`: the unload protocol (Documentation/design.rst).
    fn drop(&mut self) {
        let start = diag::ktime_ns();
        pr_info!("unloading: closing {} units\n", self.slots.len());
        // 1. Close every gate: from now on every operation fails with ENODEV.
        for slot in self.slots.iter() {
            slot.close();
        }
        // 2. Unpublish: the /dev nodes go and the device numbers are unmapped.
        for slot in self.slots.iter_mut() {
            slot.unpublish();
        }
        // 3. Wake every sleeper and poller.
        for slot in self.slots.iter() {
            slot.wake();
        }
        // 4. Drain: calls in flight and open files.
        for slot in self.slots.iter() {
            slot.drain();
        }
        // 5. The cdevs themselves, whose releases have been under way since
        //    step 2: no path into the driver is left.
        for slot in self.slots.iter() {
            slot.wait_cdev();
        }
        let drained = diag::ktime_ns();
        // 6. The tail: every task that counted its exit has left module
        //    text and data (a voluntary context switch since the drain).
        if !variant::SKIP_TAIL {
            Tail::synchronize();
        }
        let done = diag::ktime_ns();
        pr_info!(
            "unloaded: drain {} us, tail {} us\n",
            (drained - start) / 1000,
            (done - drained) / 1000
        );
        // 7. Free: the fields drop, units first, then class and region.
    }
}
