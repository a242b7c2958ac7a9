// SPDX-License-Identifier: GPL-2.0
/*
 * sdunplug: detach a busy unit and time it, while other units are used.
 *
 * Usage: sdunplug BEFORE_MS AFTER_MS INDEX CLIENTS DEV OTHER_DEV...
 *
 * Starts CLIENTS processes on DEV (/dev/safedetach<INDEX>) and one process
 * per OTHER_DEV. Each opens its unit with O_RDWR | O_NONBLOCK:
 *
 * - a client of DEV loops: write 1 byte, read 1 byte, sleep 1 ms (busy:
 *   its file is open and it calls into the unit all the time, without
 *   taking the CPUs away from the other units). Once a call fails with
 *   ENODEV it closes its file and exits;
 * - a client of an OTHER_DEV loops: write 1 byte, read 1 byte, as fast as
 *   it can, and counts the pairs in shared memory.
 *
 * The main process samples the other units' total count every 5 ms.
 * BEFORE_MS after every client made its first call, it writes INDEX to
 * /sys/class/safedetach/detach and times the write(2) on CLOCK_MONOTONIC;
 * then it waits until every client of DEV has exited (the unit's files are
 * closed, its drain can end), and AFTER_MS more. It prints one line:
 *
 *   sdunplug: clients=N others=M detach_us=W closed_us=C
 *             before=R1 during=R2 after=R3 during_ms=D
 *
 * W: the detach write, from the call to its return; C: from the call to
 * the exit of the last client of DEV; R1, R2, R3: the other units' pairs
 * per second over the BEFORE_MS before the write, from the write to the
 * last client's exit (at least 50 ms: the samples are 5 ms apart), and
 * over the AFTER_MS after that. Exit status 1 if something failed: the
 * detach, a client (any errno but EAGAIN, and ENODEV for DEV's clients),
 * or a client of DEV that did not exit within 10 s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define MAX_OTHERS 63
#define SAMPLE_NS 5000000LL

/* Shared by every process; each counter on its own cache line. */
struct shared {
	struct {
		volatile unsigned long pairs;
		char pad[56];
	} other[MAX_OTHERS];
	volatile int started;		/* clients that made their first call */
	volatile int stop;		/* the other units' clients stop */
	volatile int failed;		/* a client saw an unexpected error */
};

static struct shared *sh;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int open_dev(const char *dev)
{
	int fd = open(dev, O_RDWR | O_NONBLOCK);

	if (fd < 0) {
		fprintf(stderr, "sdunplug: open %s: %s\n", dev, strerror(errno));
		sh->failed = 1;
		_exit(1);
	}
	return fd;
}

/* One write+read pair: 0, or the errno of the first call that failed. */
static int pair(int fd)
{
	char c = 'x';

	if (write(fd, &c, 1) < 0 && errno != EAGAIN)
		return errno;
	if (read(fd, &c, 1) < 0 && errno != EAGAIN)
		return errno;
	return 0;
}

static void target_client(const char *dev)
{
	struct timespec ms = { 0, 1000000 };
	int fd = open_dev(dev), err, first = 1;

	for (;;) {
		err = pair(fd);
		if (first) {
			__atomic_add_fetch(&sh->started, 1, __ATOMIC_SEQ_CST);
			first = 0;
		}
		if (err == ENODEV) {
			close(fd);
			_exit(0);
		}
		if (err) {
			fprintf(stderr, "sdunplug: %s: %s\n", dev, strerror(err));
			sh->failed = 1;
			_exit(1);
		}
		nanosleep(&ms, NULL);
	}
}

static void other_client(const char *dev, int i)
{
	int fd = open_dev(dev), err;

	__atomic_add_fetch(&sh->started, 1, __ATOMIC_SEQ_CST);
	while (!sh->stop) {
		err = pair(fd);
		if (err) {
			fprintf(stderr, "sdunplug: %s: %s\n", dev, strerror(err));
			sh->failed = 1;
			_exit(1);
		}
		sh->other[i].pairs++;
	}
	close(fd);
	_exit(0);
}

static unsigned long others_total(int n)
{
	unsigned long sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum += sh->other[i].pairs;
	return sum;
}

/* Samples of (time, total pairs of the other units). */
static long long *st;
static unsigned long *sp;
static int ns, cap;

static void sample(int others)
{
	if (ns == cap) {
		cap = cap ? 2 * cap : 4096;
		st = realloc(st, cap * sizeof(*st));
		sp = realloc(sp, cap * sizeof(*sp));
		if (!st || !sp) {
			perror("sdunplug: realloc");
			exit(1);
		}
	}
	st[ns] = now_ns();
	sp[ns] = others_total(others);
	ns++;
}

/* Sleeps one sampling period, sampling at its end. */
static void tick(int others)
{
	struct timespec p = { 0, SAMPLE_NS };

	nanosleep(&p, NULL);
	sample(others);
}

/* Pairs per second between the last sample at or before `from` and the
 * first at or after `to`. */
static double rate(long long from, long long to)
{
	int a = 0, b = ns - 1, i;

	for (i = 0; i < ns; i++)
		if (st[i] <= from)
			a = i;
	for (i = ns - 1; i >= 0; i--)
		if (st[i] >= to)
			b = i;
	if (b <= a)
		return 0;
	return (sp[b] - sp[a]) * 1e9 / (st[b] - st[a]);
}

int main(int argc, char **argv)
{
	int before_ms, after_ms, clients, others, i, fd, status, alive, failed = 0;
	pid_t pids[MAX_CLIENTS], opids[MAX_OTHERS], pid;
	long long t0, t1, tclosed, deadline, tend, during_end;
	const char *dev;
	char cmd[16];

	if (argc < 7) {
		fprintf(stderr, "usage: sdunplug BEFORE_MS AFTER_MS INDEX CLIENTS DEV OTHER_DEV...\n");
		return 2;
	}
	before_ms = atoi(argv[1]);
	after_ms = atoi(argv[2]);
	snprintf(cmd, sizeof(cmd), "%s\n", argv[3]);
	clients = atoi(argv[4]);
	dev = argv[5];
	others = argc - 6;
	if (clients < 1 || clients > MAX_CLIENTS || others > MAX_OTHERS) {
		fprintf(stderr, "sdunplug: 1..%d clients, at most %d other units\n",
			MAX_CLIENTS, MAX_OTHERS);
		return 2;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("sdunplug: mmap");
		return 1;
	}
	fd = open("/sys/class/safedetach/detach", O_WRONLY);
	if (fd < 0) {
		perror("sdunplug: /sys/class/safedetach/detach");
		return 1;
	}
	for (i = 0; i < others; i++) {
		opids[i] = fork();
		if (opids[i] == 0)
			other_client(argv[6 + i], i);
	}
	for (i = 0; i < clients; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			target_client(dev);
	}
	deadline = now_ns() + 30000000000LL;
	while (sh->started < clients + others && !sh->failed) {
		if (now_ns() > deadline) {
			fprintf(stderr, "sdunplug: timed out waiting for the clients to start\n");
			sh->failed = 1;
			break;
		}
		usleep(1000);
	}
	sample(others);
	t0 = st[0] + before_ms * 1000000LL;
	while (!sh->failed && now_ns() < t0)
		tick(others);
	sample(others);

	t0 = now_ns();
	if (write(fd, cmd, strlen(cmd)) < 0) {
		fprintf(stderr, "sdunplug: detach %s: %s\n", argv[3], strerror(errno));
		sh->failed = 1;
	}
	t1 = now_ns();
	sample(others);

	/* Reap the clients of the detached unit as they exit. */
	alive = clients;
	tclosed = t1;
	deadline = t1 + 10000000000LL;
	while (alive > 0) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid > 0) {
			for (i = 0; i < clients; i++)
				if (pids[i] == pid)
					break;
			if (i == clients) {	/* a client of another unit died */
				failed = 1;
				continue;
			}
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				failed = 1;
			alive--;
			tclosed = now_ns();
			continue;
		}
		if (now_ns() > deadline) {
			fprintf(stderr, "sdunplug: %d clients of %s still running 10 s after the detach\n",
				alive, dev);
			for (i = 0; i < clients; i++)
				kill(pids[i], SIGKILL);
			failed = 1;
			break;
		}
		tick(others);
	}
	during_end = tclosed > t0 + 50000000LL ? tclosed : t0 + 50000000LL;
	tend = during_end + after_ms * 1000000LL;
	while (now_ns() < during_end)
		tick(others);
	while (now_ns() < tend)
		tick(others);
	sh->stop = 1;
	for (i = 0; i < others; i++)
		if (waitpid(opids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	while (waitpid(-1, NULL, 0) > 0)
		;
	if (sh->failed || failed) {
		fprintf(stderr, "sdunplug: FAILED\n");
		return 1;
	}
	printf("sdunplug: clients=%d others=%d detach_us=%lld closed_us=%lld before=%.0f during=%.0f after=%.0f during_ms=%.1f\n",
	       clients, others, (t1 - t0) / 1000, (tclosed - t0) / 1000,
	       rate(t0 - before_ms * 1000000LL, t0), rate(t0, during_end),
	       rate(during_end, tend), (during_end - t0) / 1e6);
	return 0;
}
