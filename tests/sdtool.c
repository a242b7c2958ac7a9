// SPDX-License-Identifier: GPL-2.0
/*
 * sdtool: the userspace side of the safedetach selftests.
 *
 * Each subcommand does one thing that a shell cannot do by itself (an
 * ioctl, a blocked call whose errno matters, epoll, SCM_RIGHTS, io_uring,
 * sequence-checked data) and prints one line a test can match, for example
 * "read: ENODEV". Exit status: 0 when the subcommand did what was asked,
 * 1 when it observed something wrong, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/uapi/safedetach.h"

static void usage(void);

static const char *errname(int e)
{
	switch (e) {
	case 0: return "OK";
	case ENODEV: return "ENODEV";
	case ENXIO: return "ENXIO";
	case ENOENT: return "ENOENT";
	case EAGAIN: return "EAGAIN";
	case EINTR: return "EINTR";
	case EFAULT: return "EFAULT";
	case ENOTTY: return "ENOTTY";
	case ESPIPE: return "ESPIPE";
	case EINVAL: return "EINVAL";
	case EBADF: return "EBADF";
	case EBUSY: return "EBUSY";
	case ENOMEM: return "ENOMEM";
	case EPIPE: return "EPIPE";
	default: return strerrorname_np(e) ? strerrorname_np(e) : "E?";
	}
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "sdtool: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int open_or_die(const char *dev, int flags)
{
	int fd = open(dev, flags);

	if (fd < 0)
		die("open %s: %s", dev, strerror(errno));
	return fd;
}

/* Prints "<what>: <n bytes | ERRNAME>" for the result of a call. */
static void report(const char *what, long ret)
{
	if (ret < 0)
		printf("%s: %s\n", what, errname(errno));
	else
		printf("%s: %ld\n", what, ret);
	fflush(stdout);
}

static int cmd_stats(const char *dev)
{
	struct safedetach_stats st;
	int fd = open_or_die(dev, O_RDONLY);

	if (ioctl(fd, SAFEDETACH_IOC_STATS, &st) < 0)
		die("SAFEDETACH_IOC_STATS: %s", strerror(errno));
	printf("unit=%llu capacity=%llu bytes_queued=%llu open_files=%llu in_flight=%llu "
	       "bytes_written=%llu bytes_read=%llu opens=%llu\n",
	       st.unit, st.capacity, st.bytes_queued, st.open_files, st.in_flight,
	       st.bytes_written, st.bytes_read, st.opens);
	close(fd);
	return 0;
}

static int failures;

/* Raw system calls, so that the C library does not object to bad input. */
static long raw_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static long raw_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

/* Checks that a call failed with errno @want, or succeeded if @want is 0. */
static void expect(const char *what, long ret, int want)
{
	int got = ret < 0 ? errno : 0;

	if (got == want) {
		printf("ok: %s -> %s\n", what, errname(got));
	} else {
		printf("FAIL: %s -> %s (ret %ld), expected %s\n", what, errname(got), ret,
		       errname(want));
		failures++;
	}
}

/* Bad input: every case gets its documented errno. The unit must be empty. */
static int cmd_badinput(const char *dev)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open_or_die(dev, O_RDWR | O_NONBLOCK);
	char *ro, *unmapped;
	char buf[16] = "0123456789abcdef";
	struct safedetach_stats st;
	void *map, *big;
	long ret;

	/* 1 GiB of address space, touched only as far as the capacity. */
	big = mmap(NULL, 1UL << 30, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unmapped = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED || unmapped == MAP_FAILED || big == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	munmap(unmapped, page);

	expect("ioctl(unknown nr)", ioctl(fd, _IOR(SAFEDETACH_IOC_MAGIC, 99, int), &st), ENOTTY);
	expect("ioctl(other magic)", ioctl(fd, _IO('x', 1)), ENOTTY);
	expect("ioctl(TCGETS)", ioctl(fd, 0x5401, buf), ENOTTY);
	expect("ioctl(STATS, NULL)", ioctl(fd, SAFEDETACH_IOC_STATS, NULL), EFAULT);
	expect("ioctl(STATS, unmapped)", ioctl(fd, SAFEDETACH_IOC_STATS, unmapped), EFAULT);
	expect("ioctl(STATS, read-only)", ioctl(fd, SAFEDETACH_IOC_STATS, ro), EFAULT);
	expect("ioctl(STATS, kernel address)",
	       ioctl(fd, SAFEDETACH_IOC_STATS, (void *)0xffffffff81000000UL), EFAULT);
	expect("read(empty, O_NONBLOCK)", read(fd, buf, sizeof(buf)), EAGAIN);
	expect("read(len 0)", read(fd, buf, 0), 0);
	expect("write(len 0)", write(fd, buf, 0), 0);
	expect("write(NULL)", raw_write(fd, NULL, 16), EFAULT);
	expect("write(unmapped)", raw_write(fd, unmapped, 16), EFAULT);
	expect("write(kernel address)", raw_write(fd, (void *)0xffffffff81000000UL, 16), EFAULT);
	/* Nothing was queued by the failed writes. */
	if (ioctl(fd, SAFEDETACH_IOC_STATS, &st) == 0 && st.bytes_queued == 0)
		printf("ok: failed writes queued nothing\n");
	else
		printf("FAIL: failed writes queued %llu bytes\n", st.bytes_queued), failures++;
	expect("write(16 bytes)", write(fd, buf, 16), 0);
	expect("read(into read-only memory)", raw_read(fd, ro, 16), EFAULT);
	expect("read(into unmapped memory)", raw_read(fd, unmapped, 16), EFAULT);
	expect("read(into NULL)", raw_read(fd, NULL, 16), EFAULT);
	/* ... and the failed reads consumed nothing. */
	memset(buf, 0, sizeof(buf));
	if (read(fd, buf, sizeof(buf)) == 16 && !memcmp(buf, "0123456789abcdef", 16))
		printf("ok: failed reads consumed nothing\n");
	else
		printf("FAIL: failed reads lost data\n"), failures++;
	/* A length beyond the address space fails in the VFS (access_ok). */
	expect("read(length past the address space)", raw_read(fd, buf, SIZE_MAX >> 1), EFAULT);
	expect("write(length past the address space)", raw_write(fd, buf, SIZE_MAX >> 1), EFAULT);
	/* A huge but valid length: reads what is there, writes what fits. */
	expect("read(1 GiB, empty)", raw_read(fd, big, 1UL << 30), EAGAIN);
	ret = raw_write(fd, big, 1UL << 30);
	if (ret == (long)st.capacity)
		printf("ok: write(1 GiB) -> %ld (the capacity)\n", ret);
	else
		printf("FAIL: write(1 GiB) -> %ld, expected %llu\n", ret, st.capacity), failures++;
	ret = raw_read(fd, big, 1UL << 30);
	if (ret == (long)st.capacity)
		printf("ok: read(1 GiB) -> %ld\n", ret);
	else
		printf("FAIL: read(1 GiB) -> %ld, expected %llu\n", ret, st.capacity), failures++;
	expect("lseek(SEEK_SET)", lseek(fd, 0, SEEK_SET), ESPIPE);
	expect("lseek(SEEK_END)", lseek(fd, 0, SEEK_END), ESPIPE);
	expect("pread", pread(fd, buf, 1, 0), ESPIPE);
	expect("pwrite", pwrite(fd, buf, 1, 0), ESPIPE);
	map = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	expect("mmap", map == MAP_FAILED ? -1 : 0, ENODEV);
	close(fd);
	return failures ? 1 : 0;
}

/* A blocking read of an empty unit: reports how it ended. */
static int cmd_block_read(const char *dev)
{
	char c;
	int fd = open_or_die(dev, O_RDONLY);

	printf("blocking\n");
	fflush(stdout);
	report("read", read(fd, &c, 1));
	/* Later calls on the same file must fail too. */
	report("read-again", read(fd, &c, 1));
	close(fd);
	return 0;
}

/* Fills the unit, then a blocking write: reports how it ended. */
static int cmd_block_write(const char *dev)
{
	char buf[4096];
	int fd = open_or_die(dev, O_WRONLY | O_NONBLOCK);

	memset(buf, 'x', sizeof(buf));
	while (write(fd, buf, 1) == 1)
		;
	if (errno != EAGAIN)
		die("filling %s: %s", dev, strerror(errno));
	if (fcntl(fd, F_SETFL, 0) < 0)
		die("fcntl: %s", strerror(errno));
	printf("blocking\n");
	fflush(stdout);
	report("write", write(fd, buf, 1));
	close(fd);
	return 0;
}

/* epoll on an empty unit until something happens: prints the events. */
static int cmd_epoll(const char *dev)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd = open_or_die(dev, O_RDONLY | O_NONBLOCK);
	int ep = epoll_create1(0);
	int n;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll: %s", strerror(errno));
	printf("blocking\n");
	fflush(stdout);
	n = epoll_wait(ep, &ev, 1, -1);
	if (n < 0)
		die("epoll_wait: %s", strerror(errno));
	printf("epoll:%s%s%s%s\n", ev.events & EPOLLIN ? " IN" : "",
	       ev.events & EPOLLOUT ? " OUT" : "", ev.events & EPOLLHUP ? " HUP" : "",
	       ev.events & EPOLLERR ? " ERR" : "");
	close(ep);
	close(fd);
	return 0;
}

/* poll(2) readiness of a unit, without waiting. */
static int cmd_poll(const char *dev)
{
	struct pollfd p = { .events = POLLIN | POLLOUT };

	p.fd = open_or_die(dev, O_RDWR | O_NONBLOCK);
	if (poll(&p, 1, 0) < 0)
		die("poll: %s", strerror(errno));
	printf("poll:%s%s%s%s\n", p.revents & POLLIN ? " IN" : "", p.revents & POLLOUT ? " OUT" : "",
	       p.revents & POLLHUP ? " HUP" : "", p.revents & POLLERR ? " ERR" : "");
	close(p.fd);
	return 0;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void catch(int sig)
{
	struct sigaction sa = { .sa_handler = on_signal };

	/* No SA_RESTART: a blocked call returns EINTR. */
	sigaction(sig, &sa, NULL);
}

static volatile sig_atomic_t poke;

static void on_poke(int sig)
{
	(void)sig;
	poke = 1;
}

/*
 * The mask a command that waits for SIGTERM or SIGUSR1 sleeps with: its
 * own, without them. See block_signals().
 */
static sigset_t sleep_mask;

/*
 * Blocks SIGTERM and SIGUSR1, so that a command checks the flags that their
 * handlers set and then sleeps in wait_signal() without losing one:
 * `while (!stop) pause();` sleeps for good if the signal comes between the
 * test and pause() (and a holder's file then stays open: the likely cause
 * of an rmmod in stress.sh that waited until its case timed out, in CI).
 * sigsuspend() unblocks them and sleeps in one step, and delivers one that
 * came before.
 */
static void block_signals(void)
{
	sigset_t waited;

	sigemptyset(&waited);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &waited, &sleep_mask);
	sigdelset(&sleep_mask, SIGTERM);
	sigdelset(&sleep_mask, SIGUSR1);
}

/* Unblocks them again, for a call that they must interrupt. */
static void unblock_signals(void)
{
	pthread_sigmask(SIG_SETMASK, &sleep_mask, NULL);
}

/* Sleeps until a signal handler has run; they stay blocked after it. */
static void wait_signal(void)
{
	sigsuspend(&sleep_mask);
}

/*
 * Keeps a unit open without using it until SIGTERM, then closes it. On
 * SIGUSR1 it tries one read and reports the result.
 */
static int cmd_hold(const char *dev)
{
	struct sigaction sa = { .sa_handler = on_poke };
	int fd = open_or_die(dev, O_RDONLY);
	char c;

	catch(SIGTERM);
	sigaction(SIGUSR1, &sa, NULL);
	block_signals();
	printf("holding\n");
	fflush(stdout);
	while (!stop) {
		wait_signal();
		if (poke) {
			poke = 0;
			/* A SIGTERM must end a read that blocks. */
			unblock_signals();
			report("read", read(fd, &c, 1));
			block_signals();
		}
	}
	close(fd);
	printf("closed\n");
	return 0;
}

/*
 * Holds a unit open and keeps calling read() on it with random pauses of up
 * to 1 ms. Once the unit is closing, each call enters the gate and backs
 * out with ENODEV while this file keeps the gate busy: it prints "unit
 * closing" at the first ENODEV and goes on for @secs more seconds. Just
 * before it closes the file it prints whether the module is still loaded,
 * which it must be while the file is open.
 */
static int cmd_hammer(const char *dev, int secs)
{
	struct timespec pause = { 0 };
	unsigned int seed = getpid();
	time_t end = 0;
	long calls = 0, enodev = 0;
	int fd = open_or_die(dev, O_RDONLY | O_NONBLOCK);
	char c;

	printf("holding\n");
	fflush(stdout);
	while (!end || time(NULL) < end) {
		if (read(fd, &c, 1) < 0 && errno == ENODEV && !enodev++) {
			end = time(NULL) + secs;
			printf("unit closing\n");
			fflush(stdout);
		}
		calls++;
		pause.tv_nsec = (rand_r(&seed) % 1000) * 1000;
		nanosleep(&pause, NULL);
	}
	printf("closing, module %s\n",
	       access("/sys/module/safedetach", F_OK) ? "gone" : "loaded");
	fflush(stdout);
	close(fd);
	printf("hammer: %ld calls, %ld ENODEV\n", calls, enodev);
	return 0;
}

/* A blocked read interrupted by a signal. */
static int cmd_signal(const char *dev)
{
	char c;
	int fd = open_or_die(dev, O_RDONLY);

	catch(SIGALRM);
	alarm(1);
	report("read", read(fd, &c, 1));
	close(fd);
	return 0;
}

/*
 * Reopens an open unit through /proc/self/fd/N (the inode's cached i_cdev)
 * until that fails or @secs pass; prints the first failure.
 */
static int cmd_procfd(const char *dev, int secs)
{
	char path[64];
	time_t end = time(NULL) + secs;
	long n = 0;
	int fd = open_or_die(dev, O_RDONLY | O_NONBLOCK);

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	printf("reopening\n");
	fflush(stdout);
	while (time(NULL) < end) {
		int fd2 = open(path, O_RDONLY | O_NONBLOCK);

		if (fd2 < 0) {
			printf("reopen: %s after %ld reopens\n", errname(errno), n);
			close(fd);
			return 0;
		}
		close(fd2);
		n++;
	}
	printf("reopen: still OK after %ld reopens\n", n);
	close(fd);
	return 0;
}

/* Reads a unit through a descriptor received by SCM_RIGHTS. */
static int cmd_scm(const char *dev)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char cbuf[CMSG_SPACE(sizeof(int))], c;
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		int fd;

		close(sv[0]);
		if (recvmsg(sv[1], &msg, 0) != 1 || !CMSG_FIRSTHDR(&msg))
			die("recvmsg: %s", strerror(errno));
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
		printf("received\n");
		fflush(stdout);
		/* The sender has closed its copy: this is the only reference. */
		report("read", read(fd, &c, 1));
		close(fd);
		_exit(0);
	} else {
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, c = 0;
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		int fd = open_or_die(dev, O_RDONLY), status;

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		if (sendmsg(sv[0], &msg, 0) != 1)
			die("sendmsg: %s", strerror(errno));
		close(fd);
		waitpid(pid, &status, 0);
		return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	}
}

/* An io_uring read of an empty unit, in flight until the unit goes away. */
static int cmd_uring(const char *dev)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	char c;
	int fd = open_or_die(dev, O_RDONLY), ret;

	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0)
		die("io_uring_queue_init: %s", strerror(-ret));
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, fd, &c, 1, 0);
	io_uring_submit(&ring);
	printf("submitted\n");
	fflush(stdout);
	ret = io_uring_wait_cqe(&ring, &cqe);
	if (ret < 0)
		die("io_uring_wait_cqe: %s", strerror(-ret));
	errno = -cqe->res;
	report("uring-read", cqe->res < 0 ? -1 : cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	close(fd);
	return 0;
}

/* splice(2) from a unit into a pipe. */
static int cmd_splice(const char *dev)
{
	int p[2], fd = open_or_die(dev, O_RDONLY | O_NONBLOCK);

	if (pipe(p) < 0)
		die("pipe: %s", strerror(errno));
	report("splice", splice(fd, NULL, p[1], NULL, 16, SPLICE_F_NONBLOCK));
	close(fd);
	return 0;
}

/*
 * Mixed random operations on units for @secs seconds (or until SIGTERM).
 * Files whose unit is going (ENODEV) are closed at once, as a well-behaved
 * client would, or, with @retry_ms > 0, kept and retried for up to that
 * many milliseconds first, as a sloppy one would (which keeps the drain
 * waiting while calls enter and back out). Counts operations, successes
 * and errnos; only the documented errnos are allowed:
 * ENODEV (unit closing), ENOENT (node gone), ENXIO (number unmapped),
 * EAGAIN (O_NONBLOCK).
 */
static int cmd_stress(int secs, unsigned int seed, int retry_ms, int ndev, char **devs)
{
	enum { OPEN, READ, WRITE, IOCTL, POLL, CLOSE, NOPS };
	static const char *const names[NOPS] = { "open", "read", "write", "ioctl", "poll", "close" };
	long ops[NOPS] = { 0 }, errs[4] = { 0 }, bad = 0, ok = 0, retried = 0;
	int fds[8], i;
	time_t end = time(NULL) + secs;
	char buf[64];

	for (i = 0; i < 8; i++)
		fds[i] = -1;
	catch(SIGTERM);
	memset(buf, 's', sizeof(buf));
	while (!stop && time(NULL) < end) {
		int slot = rand_r(&seed) % 8, op = rand_r(&seed) % NOPS, e;
		struct safedetach_stats st;
		struct pollfd p;
		long ret;

		if (fds[slot] < 0)
			op = OPEN;
		switch (op) {
		case OPEN:
			if (fds[slot] >= 0)
				close(fds[slot]);
			ret = fds[slot] = open(devs[rand_r(&seed) % ndev], O_RDWR | O_NONBLOCK);
			break;
		case READ:
			ret = read(fds[slot], buf, 1 + rand_r(&seed) % sizeof(buf));
			break;
		case WRITE:
			ret = write(fds[slot], buf, 1 + rand_r(&seed) % sizeof(buf));
			break;
		case IOCTL:
			ret = ioctl(fds[slot], SAFEDETACH_IOC_STATS, &st);
			break;
		case POLL:
			p.fd = fds[slot];
			p.events = POLLIN | POLLOUT;
			ret = poll(&p, 1, 0);
			if (ret == 1 && (p.revents & POLLHUP)) {
				errno = ENODEV;
				ret = -1;
			}
			break;
		default:
			ret = close(fds[slot]);
			fds[slot] = -1;
			break;
		}
		ops[op]++;
		if (ret >= 0) {
			ok++;
			continue;
		}
		e = errno;
		if (e == ENODEV && op != OPEN && op != CLOSE) {
			/* A sloppy client retries on the same file for a while. */
			struct timespec t0, t;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			do {
				if (read(fds[slot], buf, 1) < 0 && errno == ENODEV)
					retried++;
				clock_gettime(CLOCK_MONOTONIC, &t);
			} while (!stop && (t.tv_sec - t0.tv_sec) * 1000 +
					  (t.tv_nsec - t0.tv_nsec) / 1000000 < retry_ms);
			close(fds[slot]);
			fds[slot] = -1;
		}
		if (e == ENODEV)
			errs[0]++;
		else if (e == ENOENT)
			errs[1]++;
		else if (e == ENXIO)
			errs[2]++;
		else if (e == EAGAIN)
			errs[3]++;
		else if (bad++ < 5)
			printf("stress: undocumented errno %s from %s\n", errname(e), names[op]);
	}
	for (i = 0; i < 8; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	printf("stress: ok=%ld open=%ld read=%ld write=%ld ioctl=%ld poll=%ld close=%ld "
	       "ENODEV=%ld ENOENT=%ld ENXIO=%ld EAGAIN=%ld retried=%ld undocumented=%ld\n",
	       ok, ops[OPEN], ops[READ], ops[WRITE], ops[IOCTL], ops[POLL], ops[CLOSE],
	       errs[0], errs[1], errs[2], errs[3], retried, bad);
	return bad ? 1 : 0;
}

/*
 * Makes the @nth fallible allocation (or other fault-injection point) of
 * the next system call fail (/proc/thread-self/fail-nth), then makes that
 * call: "finit" loads the module @path with @params, "open" opens @path.
 * Prints the call's result and whether the fault was injected (fail-nth
 * reads back 0 once it fired).
 */
static int cmd_failnth(const char *what, const char *path, int nth, const char *params)
{
	char buf[32];
	int fd, ffd = -1, ret, e, injected;
	ssize_t n;

	if (!strcmp(what, "finit"))
		ffd = open_or_die(path, O_RDONLY | O_CLOEXEC);
	fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (fd < 0)
		die("/proc/thread-self/fail-nth: %s", strerror(errno));
	n = snprintf(buf, sizeof(buf), "%d", nth);
	if (write(fd, buf, n) != n)
		die("write fail-nth: %s", strerror(errno));
	if (ffd >= 0)
		ret = syscall(SYS_finit_module, ffd, params, 0);
	else
		ret = open(path, O_RDWR | O_NONBLOCK);
	e = ret < 0 ? errno : 0;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	injected = atoi(buf) == 0;
	/* Disarm whatever is left before anything else allocates. */
	write(fd, "0", 1);
	printf("failnth %d: %s, %s\n", nth, errname(e), injected ? "injected" : "not reached");
	if (ret >= 0 && ffd < 0)
		close(ret);
	return 0;
}

/* A sequence-numbered record. */
struct record {
	uint32_t magic;
	uint32_t writer;
	uint64_t seq;
};

#define RECORD_MAGIC 0x5afed7ac

/*
 * @writers writers each write @count records to @dev while @readers readers
 * read them; every record must arrive exactly once, and each reader must see
 * each writer's records in order.
 */
static int cmd_seq(const char *dev, int writers, int readers, long count)
{
	size_t total = (size_t)writers * count;
	unsigned char *seen;
	long *received;
	int i, status, bad = 0;
	pid_t *pids = calloc(writers + readers, sizeof(*pids));

	seen = mmap(NULL, total + sizeof(long), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (seen == MAP_FAILED || !pids)
		die("mmap: %s", strerror(errno));
	received = (long *)(seen + total);
	for (i = 0; i < writers + readers; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i])
			continue;
		if (i < writers) {
			int fd = open_or_die(dev, O_WRONLY);
			struct record r = { RECORD_MAGIC, i, 0 };

			for (r.seq = 0; r.seq < (uint64_t)count; r.seq++)
				if (write(fd, &r, sizeof(r)) != sizeof(r))
					die("writer %d: %s", i, strerror(errno));
			_exit(0);
		} else {
			int fd = open_or_die(dev, O_RDONLY | O_NONBLOCK), errors = 0;
			uint64_t *last = calloc(writers, sizeof(*last));
			struct record buf[64];

			for (int w = 0; w < writers; w++)
				last[w] = UINT64_MAX;
			while (__atomic_load_n(received, __ATOMIC_SEQ_CST) < (long)total) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				ssize_t n = read(fd, buf, sizeof(buf));

				if (n < 0 && errno == EAGAIN) {
					poll(&p, 1, 100);
					continue;
				}
				if (n < 0 || n % sizeof(struct record))
					die("reader: read returned %zd (%s)", n, strerror(errno));
				for (size_t k = 0; k < n / sizeof(struct record); k++) {
					struct record *r = &buf[k];

					if (r->magic != RECORD_MAGIC || r->writer >= (uint32_t)writers ||
					    r->seq >= (uint64_t)count) {
						if (errors++ < 5)
							printf("seq: corrupt record\n");
						continue;
					}
					if (last[r->writer] != UINT64_MAX && r->seq <= last[r->writer] &&
					    errors++ < 5)
						printf("seq: writer %u: %llu after %llu\n", r->writer,
						       (unsigned long long)r->seq,
						       (unsigned long long)last[r->writer]);
					last[r->writer] = r->seq;
					__atomic_add_fetch(&seen[r->writer * count + r->seq], 1,
							   __ATOMIC_SEQ_CST);
					__atomic_add_fetch(received, 1, __ATOMIC_SEQ_CST);
				}
			}
			_exit(errors ? 1 : 0);
		}
	}
	for (i = 0; i < writers + readers; i++) {
		waitpid(pids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bad++;
	}
	for (size_t k = 0; k < total; k++)
		if (seen[k] != 1) {
			if (bad++ < 5)
				printf("seq: writer %zu record %zu seen %d times\n", k / count,
				       k % count, seen[k]);
		}
	printf("seq: %d writers x %ld records, %d readers: %ld received, %s\n", writers, count,
	       readers, *received, bad ? "MISMATCH" : "all exactly once, in order");
	return bad ? 1 : 0;
}

/* Milliseconds since @t0 (CLOCK_MONOTONIC). */
static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * Opens a unit @n times and keeps every file open until SIGTERM, then
 * closes them all. Prints how long the opens and the closes took.
 */
static int cmd_holdmany(const char *dev, long n)
{
	struct rlimit rl = { .rlim_cur = n + 64, .rlim_max = n + 64 };
	struct timespec t0;
	int *fds;
	long i;

	if (n < 1)
		usage();
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		die("calloc: %s", strerror(errno));
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit(RLIMIT_NOFILE, %ld): %s", n + 64, strerror(errno));
	catch(SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		fds[i] = open(dev, O_RDONLY);
		if (fds[i] < 0)
			die("open %ld of %ld: %s", i + 1, n, errname(errno));
	}
	printf("opened %ld files in %ld ms\n", n, ms_since(&t0));
	block_signals();
	printf("holding\n");
	while (!stop)
		wait_signal();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		if (close(fds[i]))
			die("close %ld of %ld: %s", i + 1, n, errname(errno));
	printf("closed %ld files in %ld ms\n", n, ms_since(&t0));
	free(fds);
	return 0;
}

struct uffd_read {
	int fd;
	char *buf;
	long ret;
	int err;
};

static void *uffd_reader(void *arg)
{
	struct uffd_read *r = arg;

	r->ret = read(r->fd, r->buf, 64);
	r->err = errno;
	return NULL;
}

/*
 * Reads a unit that holds data into a page registered with userfaultfd and
 * never populated: the driver's copy to user space faults, and the reading
 * thread sleeps in handle_userfault() with the call in flight. Prints
 * "fault at read" once the fault has arrived, serves it on SIGUSR1 (the
 * copy then completes), and prints the read's result.
 */
static int cmd_uffd_read(const char *dev)
{
	struct sigaction sa = { .sa_handler = on_poke };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy = { 0 };
	struct uffd_read r = { 0 };
	struct uffd_msg msg;
	long page = sysconf(_SC_PAGESIZE);
	struct pollfd pfd;
	pthread_t thread;
	sigset_t mask;
	char *src;
	int uffd;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		die("userfaultfd: %s", strerror(errno));
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API: %s", strerror(errno));
	r.buf = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r.buf == MAP_FAILED || src == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	reg.range.start = (unsigned long)r.buf;
	reg.range.len = page;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER: %s", strerror(errno));
	r.fd = open_or_die(dev, O_RDONLY);
	catch(SIGTERM);
	sigaction(SIGUSR1, &sa, NULL);
	/*
	 * The reading thread must not take the signals: one would end its
	 * fault with EFAULT instead of waiting to be served.
	 */
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if (pthread_create(&thread, NULL, uffd_reader, &r))
		die("pthread_create failed");
	pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	if (poll(&pfd, 1, -1) != 1 || read(uffd, &msg, sizeof(msg)) != sizeof(msg))
		die("reading the userfaultfd: %s", strerror(errno));
	if (msg.event != UFFD_EVENT_PAGEFAULT)
		die("unexpected userfaultfd event %u", msg.event);
	printf("fault at read\n");
	block_signals();
	while (!poke && !stop)
		wait_signal();
	unblock_signals();
	copy.dst = msg.arg.pagefault.address & ~(page - 1);
	copy.src = (unsigned long)src;
	copy.len = page;
	if (ioctl(uffd, UFFDIO_COPY, &copy))
		die("UFFDIO_COPY: %s", strerror(errno));
	printf("fault served\n");
	pthread_join(thread, NULL);
	errno = r.err;
	report("read", r.ret);
	close(r.fd);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: sdtool stats|badinput|block-read|block-write|epoll|poll|hold|signal|"
		"scm|uring|splice|uffd-read DEV\n"
		"       sdtool holdmany DEV N\n"
		"       sdtool procfd|hammer DEV SECS\n"
		"       sdtool stress SECS SEED [--retry-ms MS] DEV...\n"
		"       sdtool failnth finit KO N PARAMS | failnth open DEV N\n"
		"       sdtool seq DEV WRITERS READERS COUNT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3) {
		if (!strcmp(cmd, "stats"))
			return cmd_stats(argv[2]);
		if (!strcmp(cmd, "badinput"))
			return cmd_badinput(argv[2]);
		if (!strcmp(cmd, "block-read"))
			return cmd_block_read(argv[2]);
		if (!strcmp(cmd, "block-write"))
			return cmd_block_write(argv[2]);
		if (!strcmp(cmd, "epoll"))
			return cmd_epoll(argv[2]);
		if (!strcmp(cmd, "poll"))
			return cmd_poll(argv[2]);
		if (!strcmp(cmd, "hold"))
			return cmd_hold(argv[2]);
		if (!strcmp(cmd, "signal"))
			return cmd_signal(argv[2]);
		if (!strcmp(cmd, "scm"))
			return cmd_scm(argv[2]);
		if (!strcmp(cmd, "uring"))
			return cmd_uring(argv[2]);
		if (!strcmp(cmd, "splice"))
			return cmd_splice(argv[2]);
		if (!strcmp(cmd, "uffd-read"))
			return cmd_uffd_read(argv[2]);
	}
	if (argc == 4 && !strcmp(cmd, "hammer"))
		return cmd_hammer(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(cmd, "holdmany"))
		return cmd_holdmany(argv[2], atol(argv[3]));
	if (argc == 4 && !strcmp(cmd, "procfd"))
		return cmd_procfd(argv[2], atoi(argv[3]));
	if (argc >= 7 && !strcmp(cmd, "stress") && !strcmp(argv[4], "--retry-ms"))
		return cmd_stress(atoi(argv[2]), strtoul(argv[3], NULL, 0), atoi(argv[5]),
				  argc - 6, argv + 6);
	if (argc >= 5 && !strcmp(cmd, "stress"))
		return cmd_stress(atoi(argv[2]), strtoul(argv[3], NULL, 0), 0, argc - 4, argv + 4);
	if (argc == 6 && !strcmp(cmd, "failnth") && !strcmp(argv[2], "finit"))
		return cmd_failnth("finit", argv[3], atoi(argv[4]), argv[5]);
	if (argc == 5 && !strcmp(cmd, "failnth") && !strcmp(argv[2], "open"))
		return cmd_failnth("open", argv[3], atoi(argv[4]), NULL);
	if (argc == 6 && !strcmp(cmd, "seq"))
		return cmd_seq(argv[2], atoi(argv[3]), atoi(argv[4]), atol(argv[5]));
	usage();
	return 2;
}
