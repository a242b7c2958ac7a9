// SPDX-License-Identifier: GPL-2.0

//! Char-device registration, as RAII values.
//!
//! 6.12's `kernel` crate has no cdev abstraction (and `cdev.h` is not in its
//! bindings), so this module wraps what the driver needs:
//!
//! - [`Region`]: a range of device numbers (`alloc_chrdev_region()`);
//! - [`Class`]: a device class, so that devtmpfs creates `/dev` nodes;
//! - [`DeviceNode`]: one `/dev/<name>` node (`device_create()`);
//! - [`Cdev`]: the published `struct cdev` that maps a device number to the
//!   driver's `file_operations` (`cdev_add()`);
//! - [`FileOps`] and [`FileOperations`]: the driver's file operations as
//!   safe functions, and the C table that calls them;
//! - [`CdevAnchor`]: the parent kobject of a [`Cdev`], whose release tells
//!   the driver that the cdev itself is gone.
//!
//! Why the anchor: `cdev_del()` unmaps the device number, but "any cdevs
//! already open will remain and their fops will still be callable even after
//! cdev_del returns" (fs/char_dev.c). Worse, an inode that has cached
//! `i_cdev` can still reach the driver's `open` through it, for example
//! `open("/proc/self/fd/N")` of an open file (`chrdev_open()`). The cdev is
//! allocated with `cdev_alloc()` so that it lives on the heap, not in
//! module memory, and its release drops the reference it holds on its
//! parent: when the anchor is released, no path into the driver through the
//! cdev is left.

use super::completion::Completion;
use super::ffi;
use super::wait::{
    events::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM},
    PollTable,
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    bindings,
    error::{from_result, to_result},
    ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void},
    prelude::*,
    str::CStr,
    types::{ForeignOwnable, Opaque},
    uaccess::{UserSlice, UserSliceReader, UserSliceWriter},
};

/// A range of char-device numbers with a dynamic major.
///
/// # Invariants
///
/// `base..base + count` was allocated by `alloc_chrdev_region()` and is
/// released on drop.
pub(crate) struct Region {
    base: bindings::dev_t,
    count: u32,
}

impl Region {
    /// Allocates `count` device numbers named `name` (/proc/devices).
    pub(crate) fn new(count: u32, name: &'static CStr) -> Result<Self> {
        let mut base: bindings::dev_t = 0;
        // SAFETY: `base` is valid for writing; `name` is a NUL-terminated
        // string that outlives the region ('static).
        to_result(unsafe {
            bindings::alloc_chrdev_region(&mut base, 0, count, name.as_char_ptr())
        })?;
        // INVARIANT: the range was just allocated.
        Ok(Self { base, count })
    }

    /// Returns the device number of the `index`-th minor of the range.
    pub(crate) fn devt(&self, index: u32) -> bindings::dev_t {
        self.base + index
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the range was allocated.
        unsafe { bindings::unregister_chrdev_region(self.base, self.count) };
    }
}

/// A device class (`/sys/class/<name>`).
///
/// # Invariants
///
/// `ptr` was returned by `class_create()` and is destroyed on drop.
pub(crate) struct Class {
    ptr: *mut bindings::class,
}

// SAFETY: The driver core serialises operations on a class internally.
unsafe impl Send for Class {}
// SAFETY: See above.
unsafe impl Sync for Class {}

impl Class {
    /// Creates the class `name`.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated and outlives the class.
        let ptr =
            kernel::error::from_err_ptr(unsafe { bindings::class_create(name.as_char_ptr()) })?;
        // INVARIANT: `class_create` succeeded.
        Ok(Self { ptr })
    }

    /// Returns the class as C knows it.
    pub(crate) fn as_ptr(&self) -> *const bindings::class {
        self.ptr
    }

    /// Creates the device node `/dev/<name>` for `devt`, with the sysfs
    /// attributes `groups` (a NULL-terminated array) and drvdata `data`.
    ///
    /// # Safety
    ///
    /// The class must outlive the returned node, and `data` must be what
    /// the attributes of `groups` expect as drvdata until the node is
    /// dropped (which waits for their callbacks in progress).
    pub(crate) unsafe fn create_node(
        &self,
        devt: bindings::dev_t,
        name: &CStr,
        data: *mut c_void,
        groups: *mut *const bindings::attribute_group,
    ) -> Result<DeviceNode> {
        // SAFETY: `self.ptr` is a live class (type invariant); `name` is
        // NUL-terminated and is copied by `device_create_with_groups`;
        // `groups` and `data` are the caller's.
        let dev = unsafe {
            ffi::safedetach_device_create_with_groups(
                self.ptr,
                devt,
                data,
                groups,
                name.as_char_ptr(),
            )
        };
        kernel::error::from_err_ptr(dev)?;
        // INVARIANT: the caller guarantees the class outlives the node.
        Ok(DeviceNode {
            class: self.ptr,
            devt,
        })
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` came from `class_create`.
        unsafe { bindings::class_destroy(self.ptr) };
    }
}

/// A device in a [`Class`], which devtmpfs shows as `/dev/<name>`.
///
/// # Invariants
///
/// A device numbered `devt` exists in the live class `class` until drop.
pub(crate) struct DeviceNode {
    class: *mut bindings::class,
    devt: bindings::dev_t,
}

// SAFETY: See `Class`.
unsafe impl Send for DeviceNode {}
// SAFETY: See `Class`.
unsafe impl Sync for DeviceNode {}

impl Drop for DeviceNode {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the class is alive and has the device.
        unsafe { bindings::device_destroy(self.class, self.devt) };
    }
}

/// The operations of a char device's files, as safe functions.
///
/// [`FileOperations::new`] turns an implementation into the C
/// `file_operations` table: its entry points convert their C arguments once
/// and call these (as mainline's `MiscDevice` does in
/// `rust/kernel/miscdevice.rs`, from 6.13 on).
pub(crate) trait FileOps: 'static {
    /// What an open file keeps in `private_data`, from `open` to `release`.
    type Private: ForeignOwnable;

    /// `->open` of a file of the cdev whose parent is `anchor` (see
    /// [`Cdev::add`]). The anchor is alive for the call.
    fn open(anchor: &CdevAnchor) -> Result<Self::Private>;

    /// `->read`: copy at most `out.len()` bytes out, from file position
    /// `pos` (update it if the device has positions); `nonblock` says
    /// whether the file was opened with `O_NONBLOCK`.
    fn read(
        file: <Self::Private as ForeignOwnable>::Borrowed<'_>,
        out: UserSliceWriter,
        pos: &mut i64,
        nonblock: bool,
    ) -> Result<usize>;

    /// `->write`: copy at most `input.len()` bytes in. Without it, `EINVAL`
    /// (as for a `file_operations` without `write`).
    fn write(
        _file: <Self::Private as ForeignOwnable>::Borrowed<'_>,
        _input: UserSliceReader,
        _nonblock: bool,
    ) -> Result<usize> {
        Err(EINVAL)
    }

    /// `->poll`: register on `table`, which belongs to this call on
    /// `file`, and return the ready events. Without it, always readable and
    /// writable (as for a `file_operations` without `poll`).
    fn poll(_file: <Self::Private as ForeignOwnable>::Borrowed<'_>, _table: &PollTable<'_>) -> u32 {
        POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM
    }

    /// `->unlocked_ioctl`. Without it, `ENOTTY`.
    fn ioctl(
        _file: <Self::Private as ForeignOwnable>::Borrowed<'_>,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        Err(ENOTTY)
    }
}

/// The `file_operations` table of a char device.
///
/// `owner` is `NULL`: the module's reference count does not keep it loaded
/// while a file is open, so the driver must drain its files before it is
/// freed (Documentation/design.rst, "Policies"). Files are not seekable
/// (`nonseekable_open()`); `mmap` and every other absent entry fail.
///
/// # Invariants
///
/// The table is only published with [`Cdev::add`], so the cdev of every file
/// that reaches its entry points has a [`CdevAnchor`] as its parent.
#[repr(transparent)]
pub(crate) struct FileOperations(bindings::file_operations);

// SAFETY: The table is immutable; the kernel reads it from any thread.
unsafe impl Sync for FileOperations {}

impl FileOperations {
    /// The table whose entries call `T`.
    pub(crate) const fn new<T: FileOps>() -> Self {
        Self(bindings::file_operations {
            owner: core::ptr::null_mut(),
            open: Some(open::<T>),
            release: Some(release::<T>),
            read: Some(read::<T>),
            write: Some(write::<T>),
            poll: Some(poll::<T>),
            unlocked_ioctl: Some(ioctl::<T>),
            // SAFETY: All-zero is a valid `file_operations`: every other
            // entry is absent.
            ..unsafe { core::mem::zeroed() }
        })
    }
}

/// Returns the private data of `file`, which `open` set.
///
/// # Safety
///
/// `file` must be a file of a [`FileOperations::new::<T>`] table that `open`
/// set up and `release` has not yet torn down; the result must not outlive
/// the call.
unsafe fn private<'a, T: FileOps>(
    file: *mut bindings::file,
) -> <T::Private as ForeignOwnable>::Borrowed<'a> {
    // SAFETY: By the caller's contract `private_data` is what `open` gave up
    // with `into_foreign`, taken back only in `release`.
    unsafe { T::Private::borrow((*file).private_data) }
}

/// Returns whether `file` was opened with `O_NONBLOCK`.
///
/// # Safety
///
/// `file` must be a valid file.
unsafe fn nonblock(file: *mut bindings::file) -> bool {
    // SAFETY: By the caller's contract `file` is valid.
    unsafe { (*file).f_flags & bindings::O_NONBLOCK != 0 }
}

unsafe extern "C" fn open<T: FileOps>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    from_result(|| {
        // SAFETY: `inode` and `file` are the arguments of `->open`.
        to_result(unsafe { bindings::nonseekable_open(inode, file) })?;
        // SAFETY: `chrdev_open()` holds a reference to the inode's cdev for
        // the whole call, and the cdev one to its parent, which is an anchor
        // (the type invariant of `FileOperations`).
        let anchor = unsafe { &*CdevAnchor::from_kobj(ffi::safedetach_inode_cdev_parent(inode)) };
        let private = T::open(anchor)?;
        // SAFETY: `file` is being opened and is not shared yet.
        unsafe { (*file).private_data = private.into_foreign().cast_mut() };
        Ok(0)
    })
}

unsafe extern "C" fn release<T: FileOps>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `open` stored an `into_foreign` in `private_data`, and
    // `release` is called once per successful open, after every other call.
    drop(unsafe { T::Private::from_foreign((*file).private_data) });
    0
}

unsafe extern "C" fn read<T: FileOps>(
    file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    from_result(|| {
        let out = UserSlice::new(buf as usize, count).writer();
        // SAFETY: `file` is valid during `->read`.
        let nonblock = unsafe { nonblock(file) };
        // SAFETY: `ppos` is NULL (a stream) or valid during `->read`.
        let mut pos = unsafe { ppos.as_ref() }.copied().unwrap_or(0);
        // SAFETY: `->read` is only called on files that `open` set up.
        let file = unsafe { private::<T>(file) };
        let n = T::read(file, out, &mut pos, nonblock)?;
        // SAFETY: As above.
        if let Some(ppos) = unsafe { ppos.as_mut() } {
            *ppos = pos;
        }
        Ok(n as isize)
    })
}

unsafe extern "C" fn write<T: FileOps>(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    from_result(|| {
        let input = UserSlice::new(buf as usize, count).reader();
        // SAFETY: `file` is valid during `->write`.
        let nonblock = unsafe { nonblock(file) };
        // SAFETY: `->write` is only called on files that `open` set up.
        let n = T::write(unsafe { private::<T>(file) }, input, nonblock)?;
        Ok(n as isize)
    })
}

unsafe extern "C" fn poll<T: FileOps>(
    file: *mut bindings::file,
    table: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: `file` and `table` are the arguments of this `->poll`.
    let table = unsafe { PollTable::from_raw(file, table) };
    // SAFETY: `->poll` is only called on files that `open` set up.
    T::poll(unsafe { private::<T>(file) }, &table)
}

unsafe extern "C" fn ioctl<T: FileOps>(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    from_result(|| {
        // SAFETY: `->unlocked_ioctl` is only called on files `open` set up.
        let ret = T::ioctl(unsafe { private::<T>(file) }, cmd, arg as usize)?;
        Ok(ret as c_long)
    })
}

/// The parent kobject of a [`Cdev`], released when the cdev is.
///
/// # Invariants
///
/// - `kobj` was initialised with `kobject_init()` and [`ANCHOR_KTYPE`];
///   the anchor holds one reference until [`CdevAnchor::release`].
/// - The anchor is not freed before its kobject has been released.
#[pin_data(PinnedDrop)]
pub(crate) struct CdevAnchor {
    #[pin]
    kobj: Opaque<bindings::kobject>,
    #[pin]
    released: Completion,
    put: AtomicBool,
}

// SAFETY: kobjects are reference-counted with atomics and may be put from
// any thread; `released` is a `Completion`.
unsafe impl Send for CdevAnchor {}
// SAFETY: See above.
unsafe impl Sync for CdevAnchor {}

/// A `struct kobj_type` that can be a `static`.
#[repr(transparent)]
struct KobjType(bindings::kobj_type);

// SAFETY: The table is immutable; the kobject core only reads it.
unsafe impl Sync for KobjType {}

/// The kobject type of [`CdevAnchor`]: its release completes `released`.
static ANCHOR_KTYPE: KobjType = KobjType(bindings::kobj_type {
    release: Some(anchor_release),
    // SAFETY: All-zero is a valid `kobj_type`: no sysfs ops, no attributes.
    ..unsafe { core::mem::zeroed() }
});

/// Called by the kobject core when the anchor's last reference is dropped.
unsafe extern "C" fn anchor_release(kobj: *mut bindings::kobject) {
    // SAFETY: `kobj` is the `kobj` field of a `CdevAnchor` (the only users of
    // `ANCHOR_KTYPE`), which is alive until `released` is completed.
    let anchor = unsafe { &*CdevAnchor::from_kobj(kobj) };
    anchor.released.complete();
    if crate::variant::WIDE_TAIL {
        // Test builds only: stay in the tail, the code that runs after the
        // unloader was told to go on, for 100 ms, then look at the anchor
        // again. Only the unloader's RCU Tasks wait makes this safe.
        for _ in 0..100 {
            // SAFETY: FFI call without preconditions.
            unsafe { bindings::__udelay(1000) };
        }
        // SAFETY: As above: the anchor is alive until an RCU Tasks grace
        // period after `released` completed, and this task has not yet
        // switched context voluntarily.
        let put = unsafe { &*CdevAnchor::from_kobj(kobj) }
            .put
            .load(Ordering::Relaxed);
        core::hint::black_box(put);
    }
}

impl CdevAnchor {
    /// Creates an anchor holding one reference.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `kobject_init` initialises the kobject in place; it
            // is pinned by `pin_init!`, and `ANCHOR_KTYPE` is 'static.
            // INVARIANT: initialised with `ANCHOR_KTYPE`, one reference.
            kobj <- unsafe {
                Opaque::ffi_init(|slot: *mut bindings::kobject| {
                    // The kobject must be zeroed before `kobject_init`.
                    core::ptr::write_bytes(slot, 0, 1);
                    bindings::kobject_init(slot, &ANCHOR_KTYPE.0 as *const _ as *mut _)
                })
            },
            released <- Completion::new(),
            put: AtomicBool::new(false),
        })
    }

    /// Returns the anchor whose `kobj` field is `kobj`.
    ///
    /// # Safety
    ///
    /// `kobj` must point to the `kobj` field of a live `CdevAnchor`.
    pub(crate) unsafe fn from_kobj(kobj: *mut bindings::kobject) -> *const Self {
        // SAFETY: By the caller's contract `kobj` is inside a `CdevAnchor`.
        unsafe {
            kobj.cast::<u8>()
                .sub(core::mem::offset_of!(Self, kobj))
                .cast()
        }
    }

    /// Returns the kobject to use as the parent of a cdev.
    fn kobj(&self) -> *mut bindings::kobject {
        self.kobj.get()
    }

    /// Drops the anchor's own reference: from now on only the cdev that
    /// uses it as parent keeps the kobject alive. Idempotent.
    ///
    /// The unloader does this as soon as the cdev is deleted, so that the
    /// cdev's release, which may come much later (every file of the cdev
    /// holds it), runs while the other units are being drained.
    pub(crate) fn release(&self) {
        if !self.put.swap(true, Ordering::SeqCst) {
            // SAFETY: The anchor holds one reference (type invariant),
            // dropped only here thanks to `put`.
            unsafe { bindings::kobject_put(self.kobj()) };
        }
    }

    /// Drops the anchor's own reference if [`release`](Self::release) did
    /// not, and waits until the kobject is released, that is, until the cdev
    /// that used it as parent is gone.
    ///
    /// Logs while it waits, at the intervals of the gate's drain.
    pub(crate) fn wait_released(&self) {
        use crate::gate::{next_report_interval, FIRST_REPORT_MS, MAX_SLEEP_MS};
        self.release();
        if crate::variant::SKIP_CDEV_WAIT {
            return;
        }
        let start = super::diag::ktime_ms();
        let (mut next_report, mut interval) = (start + i64::from(FIRST_REPORT_MS), FIRST_REPORT_MS);
        loop {
            let now = super::diag::ktime_ms();
            if now >= next_report {
                pr_info!(
                    "unload waiting {} s for the cdev to be released\n",
                    (now - start) / 1000
                );
                interval = next_report_interval(interval);
                next_report = now + i64::from(interval);
            }
            // Short sleeps, for the hung-task detector (`MAX_SLEEP_MS`).
            let left = u32::try_from(next_report - now).unwrap_or(MAX_SLEEP_MS);
            if self
                .released
                .wait_timeout(kernel::time::msecs_to_jiffies(left.clamp(1, MAX_SLEEP_MS)))
            {
                break;
            }
        }
        // The next waiter (the drop) must not block: keep it completed.
        self.released.complete();
    }
}

#[pinned_drop]
impl PinnedDrop for CdevAnchor {
    fn drop(self: Pin<&mut Self>) {
        // INVARIANT: the memory goes only after the kobject is released.
        self.wait_released();
    }
}

/// A published char device: its number now leads to the driver's fops.
///
/// # Invariants
///
/// `ptr` is a cdev from `cdev_alloc()` that was added with `cdev_add()`; the
/// `Cdev` owns the reference that `cdev_del()` drops on drop.
pub(crate) struct Cdev {
    ptr: *mut ffi::Cdev,
}

// SAFETY: cdev_add/cdev_del may be called from any thread.
unsafe impl Send for Cdev {}
// SAFETY: A `Cdev` has no `&self` methods that touch the cdev.
unsafe impl Sync for Cdev {}

impl Cdev {
    /// Publishes `devt` with the operations `fops`, parented by `anchor`.
    pub(crate) fn add(
        fops: &'static FileOperations,
        devt: bindings::dev_t,
        anchor: &CdevAnchor,
    ) -> Result<Self> {
        // SAFETY: FFI call without preconditions.
        let ptr = unsafe { ffi::safedetach_cdev_alloc() };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `ptr` is a fresh cdev, not yet visible to anyone; `fops`
        // is 'static; `anchor.kobj()` is an initialised kobject (its type
        // invariant), which `cdev_add` takes a reference to.
        unsafe {
            ffi::safedetach_cdev_set_ops(ptr, &fops.0);
            ffi::safedetach_cdev_set_parent(ptr, anchor.kobj());
        }
        // SAFETY: `ptr` is a fresh cdev from `cdev_alloc`.
        if let Err(e) = to_result(unsafe { ffi::safedetach_cdev_add(ptr, devt) }) {
            // `cdev_add` takes its reference on the parent only when it
            // succeeds, but the cdev's release always puts the parent
            // (`cdev_dynamic_release()`, fs/char_dev.c): forget the parent,
            // or the anchor loses a reference it never gave.
            // SAFETY: `cdev_add` failed, so ours is the only reference, and
            // nobody else looks at the cdev.
            unsafe {
                ffi::safedetach_cdev_clear_parent(ptr);
                ffi::safedetach_cdev_put(ptr);
            }
            return Err(e);
        }
        // INVARIANT: allocated and added.
        Ok(Self { ptr })
    }
}

impl Drop for Cdev {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the cdev was added and this drops
        // the reference that `cdev_alloc` gave us.
        unsafe { ffi::safedetach_cdev_del(self.ptr) };
    }
}
