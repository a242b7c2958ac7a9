// SPDX-License-Identifier: GPL-2.0

//! A read-only debugfs file that outlives nothing: the status file.
//!
//! A [`StatusFile`] is `/sys/kernel/debug/<dir>/<file>`, a `seq_file` whose
//! whole text a [`Status`] target writes at each read. 6.12's `kernel`
//! crate has no debugfs or `seq_file` abstraction, and `debugfs.h` is not in
//! its bindings, so the calls go through thin wrappers (`helpers.c`). With
//! `CONFIG_DEBUG_FS=n` the wrappers call the header's stubs, and the file
//! simply does not exist; if its creation fails, likewise: debugfs is
//! optional, so nothing here fails the module's init.
//!
//! # Lifetime: why `debugfs_create_devm_seqfile()`
//!
//! A debugfs file made with `debugfs_create_file()` gets proxy
//! `file_operations` (fs/debugfs/file.c): `read` and `llseek` run the real
//! ones between `debugfs_file_get()` and `debugfs_file_put()`, and
//! `debugfs_remove()` waits until no call is inside that pair. After the
//! removal, the proxies fail with `EIO`. That protects the file's *data*.
//! It does not protect the real `file_operations` themselves:
//! `full_proxy_release()` calls `real_fops->release` and
//! `fops_put(real_fops)` when the last reference to an open file goes,
//! whenever that is. If the real operations were a static of this module, a
//! file held open across `rmmod` would read freed module memory when it is
//! closed; the usual cure, `.owner = THIS_MODULE`, makes `rmmod` fail while
//! the file is open instead, which is not what this driver promises
//! (design.rst, "Policies").
//!
//! So the file uses the kernel's own operations: those of
//! `debugfs_create_devm_seqfile()` (`debugfs_devm_entry_ops`, built into
//! the kernel, with `single_release()` and `seq_read()`). The only module
//! code they reach is the show function, through `seq_read()` or
//! `seq_lseek()`, inside the proxies' `debugfs_file_get()`; their entry (the
//! show function and a device) is managed memory of a root device that the
//! file owns, freed when that device is released. [`StatusFile`]'s drop
//! removes the directory, which waits for every read in progress, and only
//! then unregisters the device. An open file after that fails every read
//! with `EIO`, and its close runs kernel code only.

use super::ffi;
use core::{fmt, marker::PhantomData};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{c_int, c_void},
    str::CStr,
};

/// What writes the text of a [`StatusFile`].
pub(crate) trait Status: Sync {
    /// Writes the whole text of the file to `out`.
    ///
    /// Runs in process context and may sleep. It may run more than once
    /// for one read, when the text does not fit in the `seq_file`'s buffer.
    fn show(&self, out: &mut SeqFile<'_>);
}

/// The `seq_file` of a read in progress.
pub(crate) struct SeqFile<'a> {
    m: *mut bindings::seq_file,
    _call: PhantomData<&'a mut bindings::seq_file>,
}

impl SeqFile<'_> {
    /// Appends formatted text. Text that does not fit makes `seq_read()`
    /// retry with a larger buffer.
    pub(crate) fn print(&mut self, args: fmt::Arguments<'_>) {
        // SAFETY: `m` is the `seq_file` of the show call in progress, which
        // outlives `self`; `%pA` formats a `fmt::Arguments` (lib/vsprintf.c,
        // `rust_fmt_argument`), and `args` lives across the call.
        unsafe {
            bindings::seq_printf(
                self.m,
                kernel::c_str!("%pA").as_char_ptr(),
                &args as *const fmt::Arguments<'_> as *const c_void,
            )
        };
    }
}

/// A debugfs directory with one read-only `seq_file` in it, mode 0444.
///
/// # Invariants
///
/// `dev` is a registered root device whose drvdata points to the target,
/// which outlives `self` (the contract of [`StatusFile::new`]); `dir` is
/// the debugfs directory of the file, or an error pointer, which the
/// debugfs API takes as "no directory".
pub(crate) struct StatusFile<T: Status> {
    dir: *mut bindings::dentry,
    dev: *mut bindings::device,
    _target: PhantomData<*const T>,
}

// SAFETY: The directory and the device may be removed from any thread, and
// the target is `Sync`: `show` runs in whatever task reads the file.
unsafe impl<T: Status> Send for StatusFile<T> {}
// SAFETY: `StatusFile` has no methods that take `&self`.
unsafe impl<T: Status> Sync for StatusFile<T> {}

impl<T: Status> StatusFile<T> {
    /// Creates `/sys/kernel/debug/<dir>/<file>`, whose reads show `target`,
    /// and the root device `/sys/devices/<dir>` that holds its entry.
    ///
    /// Returns `None` if the device cannot be registered; if only the
    /// debugfs entries cannot be created (no debugfs, no memory), the
    /// result holds the device and no file.
    ///
    /// # Safety
    ///
    /// `target` must outlive the returned value.
    pub(crate) unsafe fn new(dir: &'static CStr, file: &'static CStr, target: &T) -> Option<Self> {
        // SAFETY: `dir` is a NUL-terminated string; the name is copied.
        let dev = from_err_ptr(unsafe { ffi::safedetach_root_device_register(dir.as_char_ptr()) })
            .ok()?;
        // SAFETY: `dev` is a registered device that nothing else uses yet;
        // its drvdata is ours. It is set before the file exists.
        unsafe { (*dev).driver_data = (target as *const T).cast_mut().cast() };
        // SAFETY: `dir` is a NUL-terminated string; the name is copied.
        let dentry = unsafe { ffi::safedetach_debugfs_create_dir(dir.as_char_ptr()) };
        // SAFETY: `dev` is registered; the file's entry is managed memory
        // of `dev`, which is unregistered only after the file was removed
        // (`drop`). `dentry` may be an error pointer: then this does
        // nothing. `file` is copied.
        unsafe {
            ffi::safedetach_debugfs_create_devm_seqfile(
                dev,
                file.as_char_ptr(),
                dentry,
                Some(show::<T>),
            )
        };
        // INVARIANT: see above; the caller guarantees the target's lifetime.
        Some(Self {
            dir: dentry,
            dev,
            _target: PhantomData,
        })
    }
}

impl<T: Status> Drop for StatusFile<T> {
    fn drop(&mut self) {
        // The file first: this waits until no read is inside `show`, and
        // every later read fails with EIO (see the module documentation).
        // SAFETY: `dir` is our directory or an error pointer, which
        // `debugfs_remove()` ignores.
        unsafe { ffi::safedetach_debugfs_remove(self.dir) };
        // Then the device, whose release frees the file's entry: nothing
        // reads the entry once the file is gone.
        // SAFETY: By the type invariant `dev` is a registered root device.
        unsafe { bindings::root_device_unregister(self.dev) };
    }
}

/// The show function of every [`StatusFile<T>`].
///
/// `debugfs_devm_entry_open()` makes the root device the `seq_file`'s
/// `private` (`single_open()`); the second argument is only
/// `single_open()`'s iterator token.
unsafe extern "C" fn show<T: Status>(m: *mut bindings::seq_file, _token: *mut c_void) -> c_int {
    // SAFETY: `m` is the `seq_file` of this call.
    let dev = unsafe { (*m).private }.cast::<bindings::device>();
    // SAFETY: `dev` is the root device of a `StatusFile<T>` (only
    // `StatusFile::new` passes this function), and this call runs inside
    // the proxies' `debugfs_file_get()`: the file has not been removed, so
    // the `StatusFile` has not been dropped, and its device and its target
    // are alive (type invariant).
    let target = unsafe { &*(*dev).driver_data.cast::<T>() };
    target.show(&mut SeqFile {
        m,
        _call: PhantomData,
    });
    0
}
