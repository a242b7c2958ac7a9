// SPDX-License-Identifier: GPL-2.0
/*
 * sdrw: read/write throughput of small transfers on safedetach units.
 *
 * Usage: sdrw SECONDS SIZE DEV...
 *
 * Starts one process per DEV, pinned to CPU i % ncpus. Each opens its DEV
 * with O_RDWR | O_NONBLOCK and, for SECONDS, writes SIZE bytes and reads
 * them back (one pair = one write(2) + one read(2), so two file operations
 * and two passes through the gate). The processes start together.
 * Prints one line:
 *
 *   sdrw: size=SIZE procs=N pairs=TOTAL ns=NS_PER_PAIR kpairs_per_s=RATE
 *
 * NS_PER_PAIR is the mean over processes of (elapsed / pairs), RATE the sum
 * over processes of pairs per second, in thousands. Exit status 1 if a call
 * failed or transferred a short count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct result {
	unsigned long pairs;
	unsigned long ns;
	int failed;
};

static volatile sig_atomic_t stop;

static void on_alarm(int sig)
{
	(void)sig;
	stop = 1;
}

static unsigned long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000UL + ts.tv_nsec;
}

static void child(const char *dev, int cpu, double secs, size_t size, int start_fd,
		  struct result *r)
{
	struct itimerval it = { 0 };
	struct sigaction sa = { 0 };
	unsigned long pairs = 0, t0;
	char buf[4096], go;
	cpu_set_t set;
	int fd;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "sdrw: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
	fd = open(dev, O_RDWR | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "sdrw: open %s: %s\n", dev, strerror(errno));
		r->failed = 1;
		_exit(1);
	}
	memset(buf, 'b', sizeof(buf));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (time_t)secs) * 1e6);

	/* Wait until every process is ready. */
	if (read(start_fd, &go, 1) != 1)
		_exit(1);
	t0 = now_ns();
	setitimer(ITIMER_REAL, &it, NULL);
	while (!stop) {
		ssize_t w = write(fd, buf, size);
		ssize_t rd;

		if (w != (ssize_t)size) {
			if (w < 0 && errno == EINTR)
				break;
			fprintf(stderr, "sdrw: write %s: %zd (%s)\n", dev, w, strerror(errno));
			r->failed = 1;
			break;
		}
		rd = read(fd, buf, size);
		if (rd != (ssize_t)size) {
			if (rd < 0 && errno == EINTR)
				break;
			fprintf(stderr, "sdrw: read %s: %zd (%s)\n", dev, rd, strerror(errno));
			r->failed = 1;
			break;
		}
		pairs++;
	}
	r->ns = now_ns() - t0;
	r->pairs = pairs;
	_exit(r->failed);
}

int main(int argc, char **argv)
{
	int nproc = argc - 3, ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN), i, failed = 0;
	int pipefd[2];
	struct result *res;
	unsigned long total = 0;
	double ns_sum = 0, rate = 0, secs;
	size_t size;
	char *end;

	if (argc < 4) {
		fprintf(stderr, "usage: sdrw SECONDS SIZE DEV...\n");
		return 2;
	}
	secs = strtod(argv[1], &end);
	if (*end || secs <= 0) {
		fprintf(stderr, "sdrw: bad SECONDS '%s'\n", argv[1]);
		return 2;
	}
	size = strtoul(argv[2], &end, 10);
	if (*end || size < 1 || size > 4096) {
		fprintf(stderr, "sdrw: SIZE must be 1..4096\n");
		return 2;
	}
	res = mmap(NULL, nproc * sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED || pipe(pipefd)) {
		perror("sdrw");
		return 1;
	}
	memset(res, 0, nproc * sizeof(*res));
	for (i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("sdrw: fork");
			return 1;
		}
		if (pid == 0) {
			close(pipefd[1]);
			child(argv[3 + i], i % ncpus, secs, size, pipefd[0], &res[i]);
		}
	}
	close(pipefd[0]);
	/* Let the children open and pin themselves, then start them all. */
	usleep(200000);
	for (i = 0; i < nproc; i++)
		if (write(pipefd[1], "g", 1) != 1)
			perror("sdrw: start");
	for (i = 0; i < nproc; i++) {
		int status;

		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	}
	for (i = 0; i < nproc; i++) {
		if (res[i].failed || !res[i].pairs) {
			failed = 1;
			continue;
		}
		total += res[i].pairs;
		ns_sum += (double)res[i].ns / res[i].pairs;
		rate += res[i].pairs / (res[i].ns / 1e9);
	}
	printf("sdrw: size=%zu procs=%d pairs=%lu ns=%.1f kpairs_per_s=%.2f%s\n",
	       size, nproc, total, ns_sum / nproc, rate / 1000, failed ? " FAILED" : "");
	return failed;
}
