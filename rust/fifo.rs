// SPDX-License-Identifier: GPL-2.0

//! The state of one unit: a bounded byte FIFO with blocking and polling.
//!
//! Every function here takes a [`Pass`]: the FIFO is reachable only from
//! inside the unit's gate. Blocking calls sleep inside the gate, so the
//! unloader must wake them ([`Fifo::wake_all`]); after a wake-up they see the
//! gate closing and return `ENODEV`.
//!
//! Semantics, as for a pipe: a write of at most [`atomic_max`] bytes
//! (`SAFEDETACH_ATOMIC_MAX`, or the capacity if smaller) is atomic: it waits
//! until it fits whole, so records from several writers never interleave;
//! a larger write stores what fits as space appears and returns the count.
//! A read returns as soon as some bytes are there. `poll` reports `POLLIN`
//! when a read returns data without blocking and `POLLOUT` when an atomic
//! write of the largest size does not block.
//!
//! # User copies
//!
//! No lock is held while bytes are copied to or from user space: a copy
//! can sleep for ever in a page fault (userfaultfd, FUSE), and the
//! unloader's wake-up (`wake_all`) takes `ring`. A reader instead claims
//! the read side (`Ring::reading`) and the bytes it will copy under `ring`,
//! copies them without it, and commits under `ring` again; a writer claims
//! the write side and the free space it fills. The two sides touch
//! disjoint bytes of the buffer; one reader and one writer at a time.

use crate::gate::Pass;
use crate::poll::{events::*, PollQueue};
use core::ptr::NonNull;
use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{CondVar, Mutex},
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// The largest write that is atomic, if the capacity is not smaller
/// (`SAFEDETACH_ATOMIC_MAX` in include/uapi/safedetach.h, `PIPE_BUF`).
pub(crate) const ATOMIC_MAX: usize = 4096;

/// Returns the largest atomic write of a FIFO of `capacity` bytes.
pub(crate) fn atomic_max(capacity: usize) -> usize {
    capacity.min(ATOMIC_MAX)
}

/// The bytes of a FIFO: a buffer that a reader and a writer access at the
/// same time, each in its own part (see "User copies").
///
/// # Invariants
///
/// `ptr`, `len` and `alloc` are the parts of a `KVVec<u8>` of `len`
/// initialised bytes that this owns.
struct Bytes {
    ptr: NonNull<u8>,
    len: usize,
    alloc: usize,
}

// SAFETY: `Bytes` owns its buffer; which parts of it each task may access is
// decided under the FIFO's `ring` lock (see "User copies").
unsafe impl Send for Bytes {}
// SAFETY: See above.
unsafe impl Sync for Bytes {}

impl Bytes {
    fn new(len: usize) -> Result<Self> {
        let (ptr, len, alloc) = KVVec::from_elem(0u8, len, GFP_KERNEL)?.into_raw_parts();
        // INVARIANT: the parts of a vector of `len` initialised bytes; a
        // vector's pointer is never null.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
            len,
            alloc,
        })
    }

    /// Copies `n` bytes at `at` out to `out`.
    ///
    /// # Safety
    ///
    /// `at + n <= len`, and nobody writes these bytes during the call.
    unsafe fn copy_out(&self, out: &mut UserSliceWriter, at: usize, n: usize) -> Result {
        // SAFETY: In bounds and not written concurrently (the caller's
        // contract); the bytes are initialised (type invariant).
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(at), n) };
        out.write_slice(bytes)
    }

    /// Copies `n` bytes in from `input` to `at`.
    ///
    /// # Safety
    ///
    /// `at + n <= len`, and nobody else accesses these bytes during the call.
    unsafe fn copy_in(&self, input: &mut UserSliceReader, at: usize, n: usize) -> Result {
        // SAFETY: In bounds and accessed by nobody else (the caller's
        // contract); `ptr` comes from an owned vector, so writing is allowed.
        let bytes = unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(at), n) };
        input.read_slice(bytes)
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        // SAFETY: By the type invariant these are the parts of a `KVVec<u8>`
        // that this owns; nobody uses the bytes any more.
        drop(unsafe { KVVec::from_raw_parts(self.ptr.as_ptr(), self.len, self.alloc) });
    }
}

/// The state of a FIFO and its totals.
///
/// # Invariants
///
/// `head < capacity` and `len <= capacity`; `reading` is set while a reader
/// copies out bytes of `head..head + len` without holding the lock,
/// `writing` while a writer copies into the free space after them.
struct Ring {
    capacity: usize,
    head: usize,
    len: usize,
    reading: bool,
    writing: bool,
    bytes_written: u64,
    bytes_read: u64,
    opens: u64,
}

impl Ring {
    fn space(&self) -> usize {
        self.capacity - self.len
    }
}

/// Statistics of a unit, laid out as `struct safedetach_stats`
/// (include/uapi/safedetach.h).
#[repr(C)]
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) unit: u64,
    pub(crate) capacity: u64,
    pub(crate) bytes_queued: u64,
    pub(crate) open_files: u64,
    pub(crate) in_flight: u64,
    pub(crate) bytes_written: u64,
    pub(crate) bytes_read: u64,
    pub(crate) opens: u64,
}

// SAFETY: `Stats` is `repr(C)` with only `u64` fields: no padding, and
// every byte is initialised.
unsafe impl kernel::types::AsBytes for Stats {}

/// One unit's FIFO, its sleepers and its pollers.
#[pin_data]
pub(crate) struct Fifo {
    index: u32,
    bytes: Bytes,
    #[pin]
    ring: Mutex<Ring>,
    /// Readers waiting for bytes or for the read side.
    #[pin]
    readable: CondVar,
    /// Writers waiting for space or for the write side.
    #[pin]
    writable: CondVar,
    #[pin]
    pollers: PollQueue,
}

impl Fifo {
    /// Creates an empty FIFO of `capacity > 0` bytes for unit `index`.
    pub(crate) fn new(index: u32, capacity: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            index,
            bytes: Bytes::new(capacity)?,
            ring <- new_mutex!(
                Ring {
                    capacity,
                    head: 0,
                    len: 0,
                    reading: false,
                    writing: false,
                    bytes_written: 0,
                    bytes_read: 0,
                    opens: 0,
                },
                "Fifo::ring"
            ),
            readable <- new_condvar!("Fifo::readable"),
            writable <- new_condvar!("Fifo::writable"),
            pollers <- PollQueue::new(),
        })
    }

    /// Counts a successful open.
    pub(crate) fn opened(pass: &Pass<'_, Self>) {
        pass.ring.lock().opens += 1;
    }

    /// Reads up to `count` bytes into `out`, sleeping while empty.
    ///
    /// On a fault nothing is consumed.
    pub(crate) fn read(
        pass: &Pass<'_, Self>,
        mut out: UserSliceWriter,
        count: usize,
        nonblock: bool,
    ) -> Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let mut ring = pass.ring.lock();
        // The closing check and the sleep are under `ring`, which
        // `wake_all` takes: a wake-up cannot fall between them.
        while ring.len == 0 || ring.reading {
            if pass.is_closing() {
                return Err(ENODEV);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            if pass.readable.wait_interruptible(&mut ring) {
                return Err(ERESTARTSYS);
            }
        }
        let (head, n, cap) = (ring.head, count.min(ring.len), ring.capacity);
        // INVARIANT: this reader owns bytes `head..head + n` (modulo the
        // capacity) until it clears `reading`.
        ring.reading = true;
        drop(ring);
        let first = n.min(cap - head);
        // SAFETY: `reading` gives this task the bytes `head..head + first`
        // and `0..n - first` (wrapped): in bounds, and no writer touches
        // them until they are consumed.
        let copied = unsafe { pass.bytes.copy_out(&mut out, head, first) }
            .and_then(|()| unsafe { pass.bytes.copy_out(&mut out, 0, n - first) });
        let mut ring = pass.ring.lock();
        ring.reading = false;
        if copied.is_ok() {
            // INVARIANT: `n <= len`, and the head wraps modulo the capacity.
            ring.head = (head + n) % cap;
            ring.len -= n;
            ring.bytes_read += n as u64;
        }
        drop(ring);
        // Another reader may take the read side, and writers the space.
        pass.readable.notify_all();
        pass.writable.notify_all();
        pass.pollers.notify();
        copied.map(|()| n)
    }

    /// Writes `count` bytes from `input`, sleeping while there is no room.
    ///
    /// On a fault nothing is added.
    pub(crate) fn write(
        pass: &Pass<'_, Self>,
        mut input: UserSliceReader,
        count: usize,
        nonblock: bool,
    ) -> Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let mut ring = pass.ring.lock();
        // Up to the atomic size, a write goes in whole or not at all.
        let need = if count <= atomic_max(ring.capacity) {
            count
        } else {
            1
        };
        while ring.space() < need || ring.writing {
            if pass.is_closing() {
                return Err(ENODEV);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            if pass.writable.wait_interruptible(&mut ring) {
                return Err(ERESTARTSYS);
            }
        }
        let cap = ring.capacity;
        let (tail, n) = ((ring.head + ring.len) % cap, count.min(ring.space()));
        // INVARIANT: this writer owns `n` free bytes from `tail` (modulo the
        // capacity) until it clears `writing`.
        ring.writing = true;
        drop(ring);
        let first = n.min(cap - tail);
        // SAFETY: `writing` gives this task the free bytes `tail..tail +
        // first` and `0..n - first` (wrapped): in bounds, and no reader
        // touches them until they are added to `len`.
        let copied = unsafe { pass.bytes.copy_in(&mut input, tail, first) }
            .and_then(|()| unsafe { pass.bytes.copy_in(&mut input, 0, n - first) });
        let mut ring = pass.ring.lock();
        ring.writing = false;
        if copied.is_ok() {
            // INVARIANT: readers only consume, so `n <= space()` still holds.
            ring.len += n;
            ring.bytes_written += n as u64;
        }
        drop(ring);
        // Another writer may take the write side, and readers the bytes.
        pass.writable.notify_all();
        pass.readable.notify_all();
        pass.pollers.notify();
        copied.map(|()| n)
    }

    /// Returns the `poll(2)` events of the unit, registering `table`.
    ///
    /// `POLLIN`: a read returns data. `POLLOUT`: a write of up to the atomic
    /// size fits whole (see the module documentation).
    ///
    /// # Safety
    ///
    /// `file` and `table` must be the arguments of a `->poll` call in
    /// progress on a file of this unit.
    pub(crate) unsafe fn poll(
        pass: &Pass<'_, Self>,
        file: *mut kernel::bindings::file,
        table: *mut kernel::bindings::poll_table_struct,
    ) -> u32 {
        // SAFETY: The caller's contract; the unit outlives its open files
        // (the unloader drains every open file before freeing it).
        unsafe { pass.pollers.register(file, table) };
        // Registered first, checked second: a wake-up after the check
        // finds the poller on the queue.
        if pass.is_closing() {
            return POLLHUP | POLLERR;
        }
        let ring = pass.ring.lock();
        let mut mask = 0;
        if ring.len > 0 {
            mask |= POLLIN | POLLRDNORM;
        }
        if ring.space() >= atomic_max(ring.capacity) {
            mask |= POLLOUT | POLLWRNORM;
        }
        mask
    }

    /// Returns a snapshot of the unit's statistics.
    pub(crate) fn stats(pass: &Pass<'_, Self>) -> Stats {
        let (open_files, in_flight) = pass.usage();
        let ring = pass.ring.lock();
        Stats {
            unit: pass.index as u64,
            capacity: ring.capacity as u64,
            bytes_queued: ring.len as u64,
            open_files,
            in_flight,
            bytes_written: ring.bytes_written,
            bytes_read: ring.bytes_read,
            opens: ring.opens,
        }
    }

    /// Wakes every sleeper and poller, after the gate closed.
    ///
    /// Taking `ring` orders this after any sleeper's closing check: a
    /// sleeper either saw the gate closing, or is already on the queue.
    /// `ring` is never held across a user copy, so this cannot wait behind
    /// a task stuck in a page fault.
    pub(crate) fn wake_all(&self) {
        let ring = self.ring.lock();
        self.readable.notify_all();
        self.writable.notify_all();
        drop(ring);
        self.pollers.notify();
    }
}
