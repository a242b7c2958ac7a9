// SPDX-License-Identifier: GPL-2.0

//! The `file_operations` of a unit: C entry points into the FIFO.
//!
//! Each entry point converts its C arguments once, enters the unit's gate
//! and calls [`Fifo`]. The FIFO is reachable only through a pass, so no
//! entry point can touch a unit without being counted. `owner` is left
//! `NULL` on purpose: with `.owner = THIS_MODULE`, `rmmod` would be refused
//! while a file is open (kmod's "is in use"; `delete_module(2)` fails with
//! `EWOULDBLOCK`); this driver drains instead (see Documentation/design.rst,
//! "Policies").

use crate::abstractions::chrdev::FileOperations;
use crate::abstractions::wait::events::{POLLERR, POLLHUP};
use crate::fifo::Fifo;
use crate::gate::{FilePass, OpenFile};
use crate::Unit;
use kernel::{
    bindings,
    error::from_result,
    ffi::{c_char, c_int, c_long, c_uint, c_ulong},
    prelude::*,
    uaccess::UserSlice,
};

/// `SAFEDETACH_IOC_STATS` (include/uapi/safedetach.h).
const IOC_STATS: u32 = kernel::ioctl::_IOR::<crate::fifo::Stats>(0xd7, 1);

/// The operations of every unit.
pub(crate) const FOPS: FileOperations = FileOperations(bindings::file_operations {
    owner: core::ptr::null_mut(),
    open: Some(open),
    release: Some(release),
    read: Some(read),
    write: Some(write),
    poll: Some(poll),
    unlocked_ioctl: Some(ioctl),
    // SAFETY: All-zero is a valid `file_operations`: every other entry is
    // absent (`llseek` is refused by `nonseekable_open`, `mmap` with ENODEV).
    ..unsafe { core::mem::zeroed() }
});

/// Returns the open file of a unit behind `file`.
///
/// # Safety
///
/// `file` must be a file that [`open`] set up and [`release`] has not yet
/// torn down; the returned reference must not outlive the call.
unsafe fn file_pass<'a>(file: *mut bindings::file) -> &'a OpenFile<Fifo> {
    // SAFETY: By the caller's contract `private_data` is the `FilePass` that
    // `open` gave up with `FilePass::into_raw`, taken back only in `release`.
    unsafe { FilePass::borrow((*file).private_data) }
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

/// `->open`: takes the file's long-lived pass.
unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    from_result(|| {
        // SAFETY: `chrdev_open` holds a reference to the inode's cdev, one
        // of ours, for the whole call.
        let unit = unsafe { Unit::from_inode(inode) };
        let pass = unit.gate().open()?;
        // SAFETY: `inode` and `file` are the arguments of `->open`.
        kernel::error::to_result(unsafe { bindings::nonseekable_open(inode, file) })?;
        Fifo::opened(&pass.file().enter()?);
        // SAFETY: `file` is being opened and is not shared yet.
        unsafe { (*file).private_data = pass.into_raw() };
        Ok(0)
    })
}

/// `->release`: gives the file's pass back.
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `open` stored a `FilePass::into_raw` in `private_data`, and
    // `release` is called once per successful open, after every other call.
    drop(unsafe { FilePass::<Fifo>::from_raw((*file).private_data) });
    0
}

/// `->read`.
unsafe extern "C" fn read(
    file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    from_result(|| {
        // SAFETY: `->read` is only called on files that `open` set up.
        let pass = unsafe { file_pass(file) }.enter()?;
        let out = UserSlice::new(buf as usize, count).writer();
        // SAFETY: `file` is valid during `->read`.
        let n = Fifo::read(&pass, out, count, unsafe { nonblock(file) })?;
        Ok(n as isize)
    })
}

/// `->write`.
unsafe extern "C" fn write(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    from_result(|| {
        // SAFETY: `->write` is only called on files that `open` set up.
        let pass = unsafe { file_pass(file) }.enter()?;
        let input = UserSlice::new(buf as usize, count).reader();
        // SAFETY: `file` is valid during `->write`.
        let n = Fifo::write(&pass, input, count, unsafe { nonblock(file) })?;
        Ok(n as isize)
    })
}

/// `->poll`: a closing unit reports `POLLHUP | POLLERR`.
unsafe extern "C" fn poll(
    file: *mut bindings::file,
    table: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: `->poll` is only called on files that `open` set up.
    match unsafe { file_pass(file) }.enter() {
        // SAFETY: `file` and `table` are the arguments of this `->poll`.
        Ok(pass) => unsafe { Fifo::poll(&pass, file, table) },
        Err(_) => POLLHUP | POLLERR,
    }
}

/// `->unlocked_ioctl`.
unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    from_result(|| {
        // SAFETY: `->unlocked_ioctl` is only called on files `open` set up.
        let pass = unsafe { file_pass(file) }.enter()?;
        match cmd {
            IOC_STATS => {
                let stats = Fifo::stats(&pass);
                let size = core::mem::size_of_val(&stats);
                UserSlice::new(arg as usize, size).writer().write(&stats)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    })
}
