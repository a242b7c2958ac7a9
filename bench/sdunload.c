// SPDX-License-Identifier: GPL-2.0
/*
 * sdunload: unload a module the way rmmod(8) does, and time it.
 *
 * Usage: sdunload NAME
 *
 * Calls delete_module(NAME, O_NONBLOCK), as kmod's rmmod does, and prints
 *
 *   sdunload: NAME us=MICROSECONDS
 *
 * the time from the call to its return on CLOCK_MONOTONIC. Unlike timing
 * the rmmod command, this leaves out starting a program, which under QEMU
 * TCG and a busy guest costs far more than the unload itself. Exit status 1
 * if delete_module failed.
 *
 * It also writes "sdunload: calling delete_module" and "sdunload:
 * delete_module returned" to /dev/kmsg (if it can), so that the kernel log
 * shows how the time splits between the module's exit function, which logs
 * its own start and end, and the rest of delete_module().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void kmsg(int fd, const char *msg)
{
	if (fd >= 0 && write(fd, msg, strlen(msg)) < 0)
		return;
}

int main(int argc, char **argv)
{
	long long t0, t1;
	long ret;
	int fd = open("/dev/kmsg", O_WRONLY);

	if (argc != 2) {
		fprintf(stderr, "usage: sdunload NAME\n");
		return 2;
	}
	kmsg(fd, "sdunload: calling delete_module\n");
	t0 = now_us();
	ret = syscall(SYS_delete_module, argv[1], O_NONBLOCK);
	t1 = now_us();
	kmsg(fd, "sdunload: delete_module returned\n");
	if (ret) {
		fprintf(stderr, "sdunload: delete_module %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("sdunload: %s us=%lld\n", argv[1], t1 - t0);
	return 0;
}
