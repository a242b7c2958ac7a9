// SPDX-License-Identifier: GPL-2.0

//! The file operations of a unit: the gate in front of the FIFO.
//!
//! Each operation enters the unit's gate and calls [`Fifo`]; the C entry
//! points that convert the arguments are [`FileOperations`]'s. The FIFO is
//! reachable only through a pass, so no operation can touch a unit without
//! being counted. The table's `owner` is `NULL` on purpose: with
//! `.owner = THIS_MODULE`, `rmmod` would be refused while a file is open
//! (kmod's "is in use"; `delete_module(2)` fails with `EWOULDBLOCK`); this
//! driver drains instead (see Documentation/design.rst, "Policies").

use crate::abstractions::chrdev::{CdevAnchor, FileOperations, FileOps};
use crate::abstractions::wait::{
    events::{POLLERR, POLLHUP},
    PollTable,
};
use crate::fifo::Fifo;
use crate::gate::{FilePass, OpenFile};
use crate::Unit;
use kernel::{
    prelude::*,
    uaccess::{UserSlice, UserSliceReader, UserSliceWriter},
};

/// `SAFEDETACH_IOC_STATS` (include/uapi/safedetach.h).
const IOC_STATS: u32 = kernel::ioctl::_IOR::<crate::fifo::Stats>(0xd7, 1);

/// The operations of every unit.
pub(crate) static FOPS: FileOperations = FileOperations::new::<UnitFile>();

/// The files of a unit.
pub(crate) struct UnitFile;

impl FileOps for UnitFile {
    /// An open file holds the gate for its whole life.
    type Private = FilePass<Fifo>;

    fn open(anchor: &CdevAnchor) -> Result<FilePass<Fifo>> {
        // SAFETY: `FOPS` is only published on the cdevs of units, whose
        // parent is the unit's anchor (`Unit::publish`).
        let unit = unsafe { Unit::from_anchor(anchor) };
        let pass = unit.gate().open()?;
        Fifo::opened(&pass.file().enter()?);
        Ok(pass)
    }

    fn read(
        file: &OpenFile<Fifo>,
        out: UserSliceWriter,
        _pos: &mut i64,
        nonblock: bool,
    ) -> Result<usize> {
        let pass = file.enter()?;
        let count = out.len();
        Fifo::read(&pass, out, count, nonblock)
    }

    fn write(file: &OpenFile<Fifo>, input: UserSliceReader, nonblock: bool) -> Result<usize> {
        let pass = file.enter()?;
        let count = input.len();
        Fifo::write(&pass, input, count, nonblock)
    }

    /// A closing unit reports `POLLHUP | POLLERR`.
    fn poll(file: &OpenFile<Fifo>, table: &PollTable<'_>) -> u32 {
        match file.enter() {
            // SAFETY: `table` belongs to this call on `file` (the contract
            // of `FileOps::poll`), a file of this unit.
            Ok(pass) => unsafe { Fifo::poll(&pass, table) },
            Err(_) => POLLHUP | POLLERR,
        }
    }

    fn ioctl(file: &OpenFile<Fifo>, cmd: u32, arg: usize) -> Result<isize> {
        let pass = file.enter()?;
        match cmd {
            IOC_STATS => {
                let stats = Fifo::stats(&pass);
                let size = core::mem::size_of_val(&stats);
                UserSlice::new(arg, size).writer().write(&stats)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}
