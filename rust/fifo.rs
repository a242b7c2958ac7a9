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
//! User copies run under `ring`. The unloader's [`Fifo::wake_all`] does not
//! take it: a copy stuck in a page fault that is never served (userfaultfd,
//! FUSE) holds up only the calls of its own unit, which the drain reports
//! as calls in flight (see "User copies and the FIFO lock" in
//! Documentation/design.rst).

use crate::abstractions::wait::{events::*, PollTable, WaitQueue};
use crate::gate::Pass;
use crate::variant;
use kernel::{
    new_mutex,
    prelude::*,
    sync::Mutex,
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// The largest write that is atomic, if the capacity is not smaller
/// (`SAFEDETACH_ATOMIC_MAX` in include/uapi/safedetach.h, `PIPE_BUF`).
pub(crate) const ATOMIC_MAX: usize = 4096;

/// Returns the largest atomic write of a FIFO of `capacity` bytes.
pub(crate) fn atomic_max(capacity: usize) -> usize {
    capacity.min(ATOMIC_MAX)
}

/// The bytes of a FIFO and its totals.
///
/// # Invariants
///
/// `buf.len()` is the capacity, `head < buf.len()` and `len <= buf.len()`.
struct Ring {
    buf: KVVec<u8>,
    head: usize,
    len: usize,
    bytes_written: u64,
    bytes_read: u64,
    opens: u64,
}

impl Ring {
    fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn space(&self) -> usize {
        self.capacity() - self.len
    }

    /// Copies up to `count` bytes out to `out`; on a fault nothing is consumed.
    fn pop_to(&mut self, out: &mut UserSliceWriter, count: usize) -> Result<usize> {
        let n = count.min(self.len);
        let first = n.min(self.capacity() - self.head);
        out.write_slice(&self.buf[self.head..self.head + first])?;
        out.write_slice(&self.buf[..n - first])?;
        // INVARIANT: `n <= len`, and the head wraps modulo the capacity.
        self.head = (self.head + n) % self.capacity();
        self.len -= n;
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Copies `n <= space()` bytes in from `input`; on a fault nothing is added.
    fn push_from(&mut self, input: &mut UserSliceReader, n: usize) -> Result<usize> {
        let cap = self.capacity();
        let tail = (self.head + self.len) % cap;
        let first = n.min(cap - tail);
        input.read_slice(&mut self.buf[tail..tail + first])?;
        input.read_slice(&mut self.buf[..n - first])?;
        // INVARIANT: `n <= space()`, so `len` stays within the capacity.
        self.len += n;
        self.bytes_written += n as u64;
        Ok(n)
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
    #[pin]
    ring: Mutex<Ring>,
    /// Readers waiting for bytes.
    #[pin]
    readable: WaitQueue,
    /// Writers waiting for space.
    #[pin]
    writable: WaitQueue,
    #[pin]
    pollers: WaitQueue,
}

impl Fifo {
    /// Creates an empty FIFO of `capacity` bytes for unit `index`.
    pub(crate) fn new(index: u32, capacity: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            index,
            ring <- new_mutex!(
                Ring {
                    buf: KVVec::from_elem(0u8, capacity, GFP_KERNEL)?,
                    head: 0,
                    len: 0,
                    bytes_written: 0,
                    bytes_read: 0,
                    opens: 0,
                },
                "Fifo::ring"
            ),
            readable <- WaitQueue::new(),
            writable <- WaitQueue::new(),
            pollers <- WaitQueue::new(),
        })
    }

    /// Counts a successful open.
    pub(crate) fn opened(pass: &Pass<'_, Self>) {
        pass.ring.lock().opens += 1;
    }

    /// Reads up to `count` bytes into `out`, sleeping while empty.
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
        // A writer fills the ring under `ring` and notifies after it; the
        // unloader closes the gate and notifies without `ring`: the sleep
        // misses neither (`WaitQueue::sleep_unlocked`).
        while ring.len == 0 {
            if pass.is_closing() {
                return Err(ENODEV);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            pass.readable.sleep_unlocked(ring, || pass.is_closing())?;
            ring = pass.ring.lock();
        }
        let n = ring.pop_to(&mut out, count)?;
        drop(ring);
        pass.writable.notify();
        pass.pollers.notify();
        Ok(n)
    }

    /// Writes `count` bytes from `input`, sleeping while there is no room.
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
        let need = if count <= atomic_max(ring.capacity()) {
            count
        } else {
            1
        };
        while ring.space() < need {
            if pass.is_closing() {
                return Err(ENODEV);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            pass.writable.sleep_unlocked(ring, || pass.is_closing())?;
            ring = pass.ring.lock();
        }
        let n = count.min(ring.space());
        let n = ring.push_from(&mut input, n)?;
        drop(ring);
        pass.readable.notify();
        pass.pollers.notify();
        Ok(n)
    }

    /// Returns the `poll(2)` events of the unit, registering `table`.
    ///
    /// `POLLIN`: a read returns data. `POLLOUT`: a write of up to the atomic
    /// size fits whole (see the module documentation).
    ///
    /// # Safety
    ///
    /// `table` must be that of a `->poll` call on a file of this unit.
    pub(crate) unsafe fn poll(pass: &Pass<'_, Self>, table: &PollTable<'_>) -> u32 {
        // SAFETY: The caller's contract; the unit outlives its open files
        // (the unloader drains every open file before freeing it).
        unsafe { pass.pollers.register(table) };
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
        if ring.space() >= atomic_max(ring.capacity()) {
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
            capacity: ring.capacity() as u64,
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
    /// A sleeper checks the gate after it joined its queue, so it either
    /// sees the gate closing or is woken here. `ring` is not taken: a task
    /// that holds it while its user copy waits for a page fault does not
    /// hold up the unloader, which goes on to wake the other units.
    pub(crate) fn wake_all(&self) {
        let _ring = variant::WAKE_LOCKED.then(|| self.ring.lock());
        self.readable.notify();
        self.writable.notify();
        self.pollers.notify();
    }
}
