// SPDX-License-Identifier: GPL-2.0

//! The driver's sysfs files: C entry points, as RAII values.
//!
//! - [`ClassCommand`]: a write-only attribute of the class
//!   (`/sys/class/safedetach/attach` and `detach`), whose writes call a
//!   function of the driver with the text written;
//! - [`UNIT_GROUPS`]: the read-only attributes of every unit's device,
//!   `open_files` and `in_flight`, created with the device
//!   (`device_create_with_groups()`), so that they exist when the `add`
//!   uevent announces the device.
//!
//! # Removal, and what it waits for
//!
//! Removing a sysfs file (`class_remove_file()` for a [`ClassCommand`],
//! `device_destroy()` for a unit's attributes) deactivates its kernfs node
//! and waits until every `show`/`store` in progress has returned
//! (`kernfs_drain()`, fs/kernfs/dir.c). That is what keeps the target of an
//! attribute alive while a callback uses it, and it is also what could
//! deadlock: the remover must not hold anything that a callback in progress
//! waits for. Hence:
//!
//! - the unit attributes' `show` takes no lock of the registry: a detach
//!   removes the device while it holds the registry's lock;
//! - the module's exit removes the class commands *first*, holding
//!   nothing, and only then takes the registry's lock to detach the units.
//!
//! The commands are attributes of the class, not of a unit's device, so a
//! detach never removes the file whose write it is running (the case that
//! `device_remove_file_self()` exists for).

use super::chrdev::Class;
use crate::Unit;
use kernel::{
    bindings,
    error::{from_result, to_result},
    ffi::c_char,
    prelude::*,
    str::CStr,
    types::Opaque,
};

/// A static lockdep key, for attributes that are not static.
#[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
struct StaticKey(Opaque<bindings::lock_class_key>);

// SAFETY: lockdep only uses the address of the key.
#[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
unsafe impl Sync for StaticKey {}

/// The lockdep class of the active references of every [`ClassCommand`].
#[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
static COMMAND_KEY: StaticKey = StaticKey(Opaque::uninit());

/// A write-only attribute of a class whose writes call `run` on a target.
///
/// # Invariants
///
/// `inner.attr` is a file of the class `class` until drop; `class` and
/// `inner.target` outlive `self` (the contract of [`ClassCommand::new`]).
pub(crate) struct ClassCommand<T: Sync + 'static> {
    inner: Pin<KBox<CommandInner<T>>>,
    class: *const bindings::class,
}

// SAFETY: The class is only used to remove the file, which any thread may
// do; the target is `Sync`, and `store` may run on any thread anyway.
unsafe impl<T: Sync> Send for ClassCommand<T> {}
// SAFETY: `ClassCommand` has no methods that take `&self`.
unsafe impl<T: Sync> Sync for ClassCommand<T> {}

/// The attribute of a [`ClassCommand`] and what its writes call.
///
/// `attr` is the first field, so the attribute that `store` is given is
/// the address of this struct.
#[repr(C)]
struct CommandInner<T> {
    attr: Opaque<bindings::class_attribute>,
    target: *const T,
    run: fn(&T, &[u8]) -> Result,
}

impl<T: Sync + 'static> ClassCommand<T> {
    /// Creates `/sys/class/<class>/<name>`, mode 0200: a write of `text`
    /// calls `run(target, text)`, and returns its error, or succeeds with
    /// the whole count.
    ///
    /// # Safety
    ///
    /// `class` and `target` must outlive the returned value.
    pub(crate) unsafe fn new(
        class: &Class,
        name: &'static CStr,
        target: &T,
        run: fn(&T, &[u8]) -> Result,
    ) -> Result<Self> {
        #[allow(unused_mut)]
        let mut attr = bindings::attribute {
            name: name.as_char_ptr(),
            mode: 0o200,
            // SAFETY: All-zero is valid for the other fields.
            ..unsafe { core::mem::zeroed() }
        };
        // A static lockdep key for the kernfs node's active reference (what
        // `sysfs_attr_init()` does for attributes that are not static; the
        // field exists only with lockdep).
        #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
        {
            attr.key = COMMAND_KEY.0.get();
        }
        let inner = KBox::pin(
            CommandInner {
                attr: Opaque::new(bindings::class_attribute {
                    attr,
                    show: None,
                    store: Some(command_store::<T>),
                }),
                target,
                run,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `class.as_ptr()` is a live class; the attribute is
        // pinned and lives until the file is removed in `drop`.
        to_result(unsafe {
            bindings::class_create_file_ns(class.as_ptr(), inner.attr.get(), core::ptr::null())
        })?;
        // INVARIANT: the file was created; the caller guarantees lifetimes.
        Ok(Self {
            inner,
            class: class.as_ptr(),
        })
    }
}

impl<T: Sync + 'static> Drop for ClassCommand<T> {
    fn drop(&mut self) {
        // Waits for writes in progress (see the module documentation).
        // SAFETY: By the type invariant the class is alive and has the file.
        unsafe {
            bindings::class_remove_file_ns(self.class, self.inner.attr.get(), core::ptr::null())
        };
    }
}

/// `store` of every [`ClassCommand`].
unsafe extern "C" fn command_store<T: Sync>(
    _class: *const bindings::class,
    attr: *const bindings::class_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: `attr` is the `attr` field, the first of a `#[repr(C)]`
    // `CommandInner<T>` (only `ClassCommand::new` uses this function), which
    // lives until its file is removed, and removal waits for this call.
    let inner = unsafe { &*attr.cast::<CommandInner<T>>() };
    // SAFETY: sysfs passes `count` readable bytes at `buf`.
    let text = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    from_result(|| {
        // SAFETY: The target outlives the file (type invariant of
        // `ClassCommand`), and the file outlives this call.
        (inner.run)(unsafe { &*inner.target }, text)?;
        Ok(count as isize)
    })
}

/// A `struct device_attribute` that can be a `static`.
#[repr(transparent)]
struct DeviceAttr(bindings::device_attribute);

// SAFETY: The attribute is immutable; sysfs only reads it.
unsafe impl Sync for DeviceAttr {}

/// A NULL-terminated array of pointers, as sysfs takes them.
#[repr(transparent)]
pub(crate) struct PtrArray<T, const N: usize>([*const T; N]);

// SAFETY: The arrays are immutable and point to immutable statics.
unsafe impl<T, const N: usize> Sync for PtrArray<T, N> {}

/// A `struct attribute_group` that can be a `static`.
#[repr(transparent)]
struct AttrGroup(bindings::attribute_group);

// SAFETY: The group is immutable; sysfs only reads it.
unsafe impl Sync for AttrGroup {}

/// Returns a read-only (0444) device attribute named `name`.
const fn ro_attr(
    name: &'static CStr,
    show: unsafe extern "C" fn(
        *mut bindings::device,
        *mut bindings::device_attribute,
        *mut c_char,
    ) -> isize,
) -> DeviceAttr {
    DeviceAttr(bindings::device_attribute {
        attr: bindings::attribute {
            name: name.as_char_ptr(),
            mode: 0o444,
            // SAFETY: All-zero is valid for the other fields; a static
            // attribute's `skey` is its lockdep key.
            ..unsafe { core::mem::zeroed() }
        },
        show: Some(show),
        store: None,
    })
}

static OPEN_FILES: DeviceAttr = ro_attr(kernel::c_str!("open_files"), open_files_show);
static IN_FLIGHT: DeviceAttr = ro_attr(kernel::c_str!("in_flight"), in_flight_show);

static UNIT_ATTRS: PtrArray<bindings::attribute, 3> =
    PtrArray([&OPEN_FILES.0.attr, &IN_FLIGHT.0.attr, core::ptr::null()]);

static UNIT_GROUP: AttrGroup = AttrGroup(bindings::attribute_group {
    attrs: UNIT_ATTRS.0.as_ptr().cast_mut().cast(),
    // SAFETY: All-zero is valid for the other fields: no name (the files
    // go in the device's own directory), every file visible.
    ..unsafe { core::mem::zeroed() }
});

/// The attribute groups of a unit's device; its drvdata is the [`Unit`].
pub(crate) static UNIT_GROUPS: PtrArray<bindings::attribute_group, 2> =
    PtrArray([&UNIT_GROUP.0, core::ptr::null()]);

impl<T, const N: usize> PtrArray<T, N> {
    /// Returns the array as C takes it.
    pub(crate) fn as_ptr(&'static self) -> *mut *const T {
        self.0.as_ptr().cast_mut()
    }
}

/// Writes `value` and a newline to a sysfs page, as `show` returns it.
///
/// # Safety
///
/// `buf` must be the page of a `show` call in progress.
unsafe fn emit(buf: *mut c_char, value: u64) -> isize {
    // SAFETY: `buf` is a sysfs page (the caller's contract); the format
    // takes one `unsigned long long`.
    unsafe { bindings::sysfs_emit(buf, kernel::c_str!("%llu\n").as_char_ptr(), value) as isize }
}

/// Returns the unit of a device with [`UNIT_GROUPS`].
///
/// # Safety
///
/// `dev` must be a device created with [`UNIT_GROUPS`] whose `show` is in
/// progress: its drvdata is a unit that outlives the call, since the unit
/// is freed only after `device_destroy()`, which waits for `show`.
unsafe fn unit_of<'a>(dev: *mut bindings::device) -> Pin<&'a Unit> {
    // SAFETY: See above; units are pinned in their `KBox`.
    unsafe { Pin::new_unchecked(&*(*dev).driver_data.cast::<Unit>()) }
}

/// `open_files`: the unit's open files.
unsafe extern "C" fn open_files_show(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: This `show` is only in `UNIT_GROUPS`.
    let (files, _) = unsafe { unit_of(dev) }.gate().usage();
    // SAFETY: `buf` is the page of this `show`.
    unsafe { emit(buf, files) }
}

/// `in_flight`: the unit's calls in progress (not counting open files).
unsafe extern "C" fn in_flight_show(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: This `show` is only in `UNIT_GROUPS`.
    let (_, calls) = unsafe { unit_of(dev) }.gate().usage();
    // SAFETY: `buf` is the page of this `show`.
    unsafe { emit(buf, calls) }
}
