// SPDX-License-Identifier: GPL-2.0
/*
 * sdnative: a userspace analog of the gate's fast path, run natively on the
 * host, to check what QEMU TCG does to the micro-benchmark's ratios.
 *
 * Usage: sdnative RUNS DURATION_MS
 *
 * In the kernel the gate's counters are per-CPU (`incq %gs:(reg)`). Here
 * they are per-thread (`incq %fs:var@tpoff`): the same kind of instruction,
 * a non-atomic read-modify-write of memory addressed through a segment
 * base, on a cache line no other CPU writes. Each thread is pinned to its
 * own CPU. Three loops, with the same structure as bench/sdbench.c:
 *
 *   floor   two per-thread increments
 *   gate    increment, load of a shared `closing` flag, branch; twice
 *   atomic  `lock incq` and `lock decq` on one shared counter
 *
 * measured with 1 thread and with one thread per online CPU, RUNS times
 * each, interleaved. One line per thread and run:
 *
 *   native prim=NAME threads=N run=R cpu=C pairs=P ns=T
 *
 * This is not the kernel: no preemption, per-thread instead of per-CPU.
 * It only shows how a real CPU (the host's) prices these instructions.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UNROLL 8
#define CHUNK_PAIRS 4096

static __thread unsigned long entered, exited;
static volatile int closing;
static unsigned long wakeups;
static long shared_counter __attribute__((aligned(64)));

#define barrier() __asm__ __volatile__("" ::: "memory")

static __attribute__((noinline, cold)) void slow_path(void)
{
	__atomic_fetch_add(&wakeups, 1, __ATOMIC_SEQ_CST);
}

static inline __attribute__((always_inline)) void tls_inc(unsigned long *v)
{
	__asm__ __volatile__("incq %0" : "+m"(*v) :: "memory");
}

static inline __attribute__((always_inline)) int gate_enter(void)
{
	tls_inc(&entered);
	if (__builtin_expect(closing, 0)) {
		tls_inc(&exited);
		slow_path();
		return -1;
	}
	return 0;
}

static inline __attribute__((always_inline)) void gate_exit(void)
{
	tls_inc(&exited);
	if (__builtin_expect(closing, 0))
		slow_path();
}

#define DEFINE_LOOP(name, body)						\
static __attribute__((noinline)) void loop_##name(void)		\
{									\
	unsigned long n = CHUNK_PAIRS / UNROLL;				\
									\
	while (n--) {							\
		body; body; body; body; body; body; body; body;		\
	}								\
}

DEFINE_LOOP(floor, ({ tls_inc(&entered); tls_inc(&exited); }))
DEFINE_LOOP(gate, ({ if (!gate_enter()) gate_exit(); }))
DEFINE_LOOP(atomic, ({
	__asm__ __volatile__("lock incq %0" : "+m"(shared_counter) :: "memory");
	__asm__ __volatile__("lock decq %0" : "+m"(shared_counter) :: "memory");
}))

static const struct prim {
	const char *name;
	void (*loop)(void);
} prims[] = {
	{ "floor", loop_floor },
	{ "gate", loop_gate },
	{ "atomic", loop_atomic },
};

struct measurement {
	const struct prim *prim;
	int nthreads;
	long duration_ns;
	atomic_int ready;
	atomic_int go;
	atomic_int stop;
};

struct worker {
	struct measurement *m;
	int cpu;
	int leader;
	unsigned long pairs;
	long ns;
	pthread_t thread;
};

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct measurement *m = w->m;
	unsigned long chunks = 0;
	cpu_set_t set;
	long start, end;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (atomic_fetch_add(&m->ready, 1) + 1 == m->nthreads)
		atomic_store(&m->go, 1);
	else
		while (!atomic_load_explicit(&m->go, memory_order_relaxed))
			;
	start = now_ns();
	if (w->leader) {
		do {
			m->prim->loop();
			chunks++;
		} while (now_ns() - start < m->duration_ns);
		atomic_store(&m->stop, 1);
	} else {
		do {
			m->prim->loop();
			chunks++;
		} while (!atomic_load_explicit(&m->stop, memory_order_relaxed));
	}
	end = now_ns();
	w->pairs = chunks * CHUNK_PAIRS;
	w->ns = end - start;
	return NULL;
}

int main(int argc, char **argv)
{
	int runs, ms, ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN), cpus[1024], n = 0;
	cpu_set_t online;

	if (argc != 3 || (runs = atoi(argv[1])) < 1 || (ms = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: sdnative RUNS DURATION_MS\n");
		return 2;
	}
	sched_getaffinity(0, sizeof(online), &online);
	for (int c = 0; c < 1024 && n < ncpus; c++)
		if (CPU_ISSET(c, &online))
			cpus[n++] = c;
	for (int run = 1; run <= runs; run++) {
		for (size_t p = 0; p < sizeof(prims) / sizeof(prims[0]); p++) {
			for (int mode = 0; mode < 2; mode++) {
				int nthreads = mode ? n : 1;
				struct measurement m = {
					.prim = &prims[p],
					.nthreads = nthreads,
					.duration_ns = ms * 1000000L,
				};
				struct worker *w = calloc(nthreads, sizeof(*w));

				for (int i = 0; i < nthreads; i++) {
					w[i] = (struct worker){ .m = &m, .cpu = cpus[i], .leader = i == 0 };
					pthread_create(&w[i].thread, NULL, worker_fn, &w[i]);
				}
				for (int i = 0; i < nthreads; i++)
					pthread_join(w[i].thread, NULL);
				for (int i = 0; i < nthreads; i++)
					printf("native prim=%s threads=%d run=%d cpu=%d pairs=%lu ns=%ld\n",
					       prims[p].name, nthreads, run, w[i].cpu, w[i].pairs, w[i].ns);
				free(w);
			}
		}
	}
	if (wakeups || shared_counter)
		fprintf(stderr, "sdnative: inconsistent: wakeups=%lu counter=%ld\n",
			wakeups, shared_counter);
	return wakeups || shared_counter;
}
