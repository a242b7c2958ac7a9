#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Readiness truth of a safedetach unit, with epoll(7).

The promise (include/uapi/safedetach.h): POLLIN means a read returns data,
POLLOUT means a write of up to the atomic size, min(capacity,
SAFEDETACH_ATOMIC_MAX), does not block.

  polltruth.py DEV CAPACITY states   the readiness of chosen fill levels
  polltruth.py DEV CAPACITY lt       level-triggered writer and reader
  polltruth.py DEV CAPACITY et       edge-triggered writer and reader

lt and et move TOTAL bytes of a counting pattern through the unit, a
writer and a reader in two processes, each on its own epoll instance.
Every readiness report must be true: a level-triggered writer that was told
POLLOUT gets no EAGAIN on a write of the atomic size, a reader told POLLIN
gets no EAGAIN. Edge-triggered clients must not stall. Prints one line per
check; exits 1 on the first untrue report or lost byte.
"""
import os
import select
import sys
import time

ATOMIC_MAX = 4096  # SAFEDETACH_ATOMIC_MAX
TOTAL = 1 << 20
TIMEOUT_S = 120


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def events(fd):
    ep = select.epoll()
    ep.register(fd, select.EPOLLIN | select.EPOLLOUT)
    ready = ep.poll(0)
    ep.close()
    return ready[0][1] if ready else 0


def states(dev, cap):
    atomic = min(cap, ATOMIC_MAX)
    w = os.open(dev, os.O_WRONLY | os.O_NONBLOCK)
    r = os.open(dev, os.O_RDONLY | os.O_NONBLOCK)
    queued = 0

    def check(what):
        ev = events(w)
        pollin, pollout = bool(ev & select.EPOLLIN), bool(ev & select.EPOLLOUT)
        want_out = cap - queued >= atomic
        print(f"queued {queued}: POLLIN={int(pollin)} POLLOUT={int(pollout)} ({what})",
              flush=True)
        if pollin != (queued > 0):
            fail(f"POLLIN={int(pollin)} with {queued} bytes queued")
        if pollout != want_out:
            fail(f"POLLOUT={int(pollout)} with {cap - queued} bytes free, atomic size {atomic}")
        # A report is checked against the call it promises.
        try:
            n = os.write(w, b"x" * atomic)
            os.read(r, n)  # put the fill level back
            if not pollout:
                fail(f"a {atomic}-byte write fitted, but POLLOUT was not reported")
        except BlockingIOError:
            if pollout:
                fail(f"POLLOUT reported, but a {atomic}-byte write got EAGAIN")

    check("empty")
    for n in (1, cap - atomic, cap - atomic + 1, cap - 1, cap):
        delta = n - queued
        if delta > 0:
            if os.write(w, b"y" * delta) != delta:
                fail("short fill")
        elif delta < 0:
            os.read(r, -delta)
        queued = n
        check(f"{cap - queued} free")
    os.close(w)
    os.close(r)
    print(f"states: every report true (capacity {cap}, atomic size {atomic})", flush=True)


def pattern(start, n):
    return bytes((start + i) % 251 for i in range(n))


def writer(dev, cap, et):
    atomic = min(cap, ATOMIC_MAX)
    fd = os.open(dev, os.O_WRONLY | os.O_NONBLOCK)
    ep = select.epoll()
    ep.register(fd, select.EPOLLOUT | (select.EPOLLET if et else 0))
    sent = waits = eagain = 0
    deadline = time.monotonic() + TIMEOUT_S
    while sent < TOTAL:
        if not ep.poll(TIMEOUT_S):
            fail(f"writer: no POLLOUT for {TIMEOUT_S} s at {sent} bytes")
        waits += 1
        while sent < TOTAL:
            n = min(atomic, TOTAL - sent)
            try:
                sent += os.write(fd, pattern(sent, n))
            except BlockingIOError:
                eagain += 1
                break
            if not et:
                break  # level-triggered: one write per report
        if time.monotonic() > deadline:
            fail(f"writer: {sent} bytes in {TIMEOUT_S} s")
    # Level-triggered: every report was followed by a write that fitted.
    if not et and eagain:
        fail(f"writer: {eagain} EAGAIN after POLLOUT (a spinning writer)")
    print(f"writer: {sent} bytes, {waits} wake-ups, {eagain} EAGAIN", flush=True)


def reader(dev, et):
    fd = os.open(dev, os.O_RDONLY | os.O_NONBLOCK)
    ep = select.epoll()
    ep.register(fd, select.EPOLLIN | (select.EPOLLET if et else 0))
    got = waits = eagain = 0
    while got < TOTAL:
        if not ep.poll(TIMEOUT_S):
            fail(f"reader: no POLLIN for {TIMEOUT_S} s at {got} bytes")
        waits += 1
        while got < TOTAL:
            try:
                # Small reads leave the unit partly full: the writer then
                # sees fill levels where POLLOUT must not be reported.
                data = os.read(fd, 700)
            except BlockingIOError:
                eagain += 1
                break
            if data != pattern(got, len(data)):
                fail(f"reader: wrong bytes at offset {got}")
            got += len(data)
            if not et:
                break
    if not et and eagain:
        fail(f"reader: {eagain} EAGAIN after POLLIN (a spinning reader)")
    print(f"reader: {got} bytes, {waits} wake-ups, {eagain} EAGAIN", flush=True)


def transfer(dev, cap, et):
    pid = os.fork()
    if pid == 0:
        try:
            reader(dev, et)
        except SystemExit as e:
            os._exit(e.code if isinstance(e.code, int) else 1)
        os._exit(0)
    try:
        writer(dev, cap, et)
    except SystemExit:
        os.kill(pid, 9)
        raise
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        fail("the reader failed")
    kind = "edge" if et else "level"
    print(f"{kind}-triggered: {TOTAL} bytes through, every report true", flush=True)


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("states", "lt", "et"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    dev, cap, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "states":
        states(dev, cap)
    else:
        transfer(dev, cap, mode == "et")


main()
