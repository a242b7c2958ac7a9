/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * safedetach: userspace API of the /dev/safedetachN character devices.
 *
 * Each unit is a bounded byte FIFO. read(2) consumes bytes and blocks while
 * the FIFO is empty; write(2) appends and blocks while it is full;
 * O_NONBLOCK turns both waits into -EAGAIN. Once the module starts
 * unloading, every call on the unit fails with -ENODEV and poll(2) reports
 * POLLHUP | POLLERR.
 *
 * Like a pipe's PIPE_BUF: a write of at most min(capacity,
 * SAFEDETACH_ATOMIC_MAX) bytes is atomic. It is stored whole or waits (or
 * fails with -EAGAIN) until it fits, so records of several writers never
 * interleave. A larger write stores what fits and returns that count.
 *
 * Readiness (poll(2), select(2), epoll(7), level- or edge-triggered):
 * POLLIN | POLLRDNORM when a read returns data without blocking,
 * POLLOUT | POLLWRNORM when an atomic write of the largest size,
 * min(capacity, SAFEDETACH_ATOMIC_MAX) bytes, fits without blocking.
 */
#ifndef _UAPI_SAFEDETACH_H
#define _UAPI_SAFEDETACH_H

#include <linux/ioctl.h>
#include <linux/types.h>

/**
 * struct safedetach_stats - a snapshot of one unit, from SAFEDETACH_IOC_STATS
 * @unit:          index N of /dev/safedetachN
 * @capacity:      FIFO capacity in bytes (module parameter "capacity")
 * @bytes_queued:  bytes written and not yet read
 * @open_files:    open file descriptions of this unit (including the caller's)
 * @in_flight:     file operations executing in the unit (including this ioctl)
 * @bytes_written: bytes written since the module was loaded
 * @bytes_read:    bytes read since the module was loaded
 * @opens:         successful open(2) calls since the module was loaded
 */
struct safedetach_stats {
	__u64 unit;
	__u64 capacity;
	__u64 bytes_queued;
	__u64 open_files;
	__u64 in_flight;
	__u64 bytes_written;
	__u64 bytes_read;
	__u64 opens;
};

/* The largest atomic write, unless the capacity is smaller (PIPE_BUF). */
#define SAFEDETACH_ATOMIC_MAX	4096

#define SAFEDETACH_IOC_MAGIC	0xd7
#define SAFEDETACH_IOC_STATS	_IOR(SAFEDETACH_IOC_MAGIC, 1, struct safedetach_stats)

#endif /* _UAPI_SAFEDETACH_H */
