// SPDX-License-Identifier: GPL-2.0
/*
 * sdbench: micro-benchmark of the safedetach gate against the kernel's own
 * ways of keeping an object alive while a CPU is inside it.
 *
 * This module is a benchmark only. safedetach.ko never loads it, and it
 * never touches safedetach.ko. The gate it times is the driver's own
 * rust/gate.rs, compiled into this module by sdbench_gate.rs (see "The
 * gate" below), in a tight loop next to the other primitives, which are
 * called through their ordinary inline APIs.
 *
 * Loading the module runs the whole benchmark inside module_init and then
 * prints the results to the kernel log, one line per thread and run:
 *
 *   sdbench: result prim=gate threads=2 run=3 cpu=1 pairs=N ns=T
 *
 * (T nanoseconds for N enter+exit pairs on that CPU), followed by
 * "sdbench: done". scripts/bench-guest.sh collects these lines and
 * scripts/bench-report.py turns them into tables. Unload it afterwards.
 *
 * Module parameters:
 *   runs=N         how many times each measurement is repeated (default 7)
 *   duration_ms=N  how long each measurement runs (default 100)
 *
 * Each primitive is measured with one kthread (pinned to CPU 0), then with
 * one kthread pinned to every online CPU, all running at once. Threads run
 * for a fixed time, not a fixed count: the first thread watches the clock
 * and tells the others to stop, so every CPU is busy for the whole
 * measurement. The runs are interleaved (run 1 of every primitive, then
 * run 2, ...), so a slow phase of the host spreads over all of them.
 * Preemption stays enabled, as in a file operation.
 */
#define pr_fmt(fmt) "sdbench: " fmt

#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/percpu-refcount.h>
#include <linux/percpu.h>
#include <linux/refcount.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/srcu.h>
#include <linux/timekeeping.h>

static unsigned int runs = 7;
module_param(runs, uint, 0444);
MODULE_PARM_DESC(runs, "repetitions of each measurement (1..50, default 7)");

static unsigned int duration_ms = 100;
module_param(duration_ms, uint, 0444);
MODULE_PARM_DESC(duration_ms, "length of each measurement in ms (1..10000, default 100)");

static char *only;
module_param(only, charp, 0444);
MODULE_PARM_DESC(only, "measure this primitive only (default: all of them)");

/*
 * The gate
 * ========
 *
 * The gate is safedetach's own: sdbench_gate.rs compiles rust/gate.rs and
 * rust/abstractions/percpu.rs from the driver's sources into this module and exports the
 * measured loops. Each takes an opaque pointer and runs `iterations` times
 * 8 pairs (see DEFINE_LOOP below).
 */
const char *sdbench_gate_check(void);
const void *sdbench_gate_new(void);
void sdbench_gate_free(const void *gate);
void sdbench_gate_loop(const void *gate, unsigned long iterations);
void *sdbench_floor_new(void);
void sdbench_floor_free(void *floor);
void sdbench_floor_loop(const void *floor, unsigned long iterations);

/* The C floor's two counters and a flag that stays false, as `closing`. */
struct bench_counters {
	u64 __percpu *entered;
	u64 __percpu *exited;
	bool closing;
};

/* Everything the primitives work on, each shared object on its own line. */
static struct bench_state {
	struct bench_counters counters ____cacheline_aligned_in_smp;
	const void *gate;		/* a Gate<()> of rust/gate.rs */
	void *rust_floor;		/* two PerCpuCounters of rust/abstractions/percpu.rs */
	atomic_long_t atomic ____cacheline_aligned_in_smp;
	refcount_t refcount ____cacheline_aligned_in_smp;
	struct percpu_ref pcref ____cacheline_aligned_in_smp;
	struct srcu_struct srcu ____cacheline_aligned_in_smp;
	struct rw_semaphore rwsem ____cacheline_aligned_in_smp;
} st;

static DECLARE_COMPLETION(pcref_released);

static void pcref_release(struct percpu_ref *ref)
{
	complete(&pcref_released);
}

/*
 * The measured loops. Each runs `chunks` times UNROLL enter+exit pairs with
 * an empty critical section; the loop itself (one counter decrement and a
 * branch per UNROLL pairs) is part of every figure, the floor's included.
 * They are noinline so that scripts/bench.sh can find them in objdump.
 */
#define UNROLL 8
#define CHUNK_PAIRS 4096	/* pairs between two looks at the stop flag */

#define DEFINE_LOOP(name, body)						\
static noinline void loop_##name(unsigned long chunks)		\
{									\
	unsigned long n = chunks * (CHUNK_PAIRS / UNROLL);		\
									\
	while (n--) {							\
		body; body; body; body; body; body; body; body;		\
	}								\
}

/*
 * The floor: the two per-CPU increments of the gate, nothing else.
 * PerCpuCounter::inc() is an asm! block without `nomem`, so it is also a
 * compiler barrier: here this_cpu_inc() and barrier().
 */
DEFINE_LOOP(floor, ({
	this_cpu_inc(*st.counters.entered);
	barrier();
	this_cpu_inc(*st.counters.exited);
	barrier();
}))

#define ITERATIONS(chunks) ((chunks) * (CHUNK_PAIRS / UNROLL))

/* The same floor in Rust: two PerCpuCounter::inc() of rust/abstractions/percpu.rs. */
static noinline void loop_rust_floor(unsigned long chunks)
{
	sdbench_floor_loop(st.rust_floor, ITERATIONS(chunks));
}

/* The gate of rust/gate.rs, as safedetach's file operations use it. */
static noinline void loop_gate(unsigned long chunks)
{
	sdbench_gate_loop(st.gate, ITERATIONS(chunks));
}

/*
 * The floor plus the gate's loads of `closing` after each increment, with
 * the loaded values kept but not tested. Not a usable gate; it shows how
 * much of the gate's cost is its two branches, which a real CPU predicts
 * and QEMU TCG does not (every branch ends a translation block).
 */
DEFINE_LOOP(loads, ({
	bool c;

	this_cpu_inc(*st.counters.entered);
	barrier();
	c = READ_ONCE(st.counters.closing);
	OPTIMIZER_HIDE_VAR(c);
	this_cpu_inc(*st.counters.exited);
	barrier();
	c = READ_ONCE(st.counters.closing);
	OPTIMIZER_HIDE_VAR(c);
}))

/* One shared counter: what kernfs active refs and debugfs use. */
DEFINE_LOOP(atomic, ({
	atomic_long_inc(&st.atomic);
	atomic_long_dec(&st.atomic);
}))

DEFINE_LOOP(refcount, ({
	refcount_inc(&st.refcount);
	refcount_dec(&st.refcount);
}))

DEFINE_LOOP(percpu_ref, ({
	if (percpu_ref_tryget_live(&st.pcref))
		percpu_ref_put(&st.pcref);
}))

DEFINE_LOOP(srcu, ({
	int idx = srcu_read_lock(&st.srcu);

	srcu_read_unlock(&st.srcu, idx);
}))

/* The module refcount: what `.owner = THIS_MODULE` costs per open. */
DEFINE_LOOP(module_get, ({
	if (try_module_get(THIS_MODULE))
		module_put(THIS_MODULE);
}))

DEFINE_LOOP(rwsem, ({
	down_read(&st.rwsem);
	up_read(&st.rwsem);
}))

static const struct prim {
	const char *name;
	void (*loop)(unsigned long chunks);
} prims[] = {
	{ "floor", loop_floor },
	{ "rust_floor", loop_rust_floor },
	{ "gate", loop_gate },
	{ "loads", loop_loads },
	{ "atomic", loop_atomic },
	{ "refcount", loop_refcount },
	{ "percpu_ref", loop_percpu_ref },
	{ "srcu", loop_srcu },
	{ "module_get", loop_module_get },
	{ "rwsem", loop_rwsem },
};

/* One measurement: one primitive on `nthreads` CPUs at once. */
struct measurement {
	const struct prim *prim;
	int nthreads;
	u64 deadline_ns;		/* the leader stops everyone then */
	atomic_t ready;
	int go;
	int stop;
	atomic_t running;
	struct completion done;
};

struct sample {
	u64 pairs;
	u64 ns;
};

struct worker {
	struct measurement *m;
	int leader;
	struct sample result;
};

static int worker_fn(void *arg)
{
	struct worker *w = arg;
	struct measurement *m = w->m;
	u64 start, end, chunks = 0;

	/* Start together: the last thread to arrive opens the gate. */
	if (atomic_inc_return(&m->ready) == m->nthreads)
		WRITE_ONCE(m->go, 1);
	else
		while (!READ_ONCE(m->go))
			cpu_relax();

	start = ktime_get_ns();
	if (w->leader) {
		u64 deadline = start + m->deadline_ns;

		do {
			m->prim->loop(1);
			chunks++;
		} while (ktime_get_ns() < deadline);
		WRITE_ONCE(m->stop, 1);
	} else {
		do {
			m->prim->loop(1);
			chunks++;
		} while (!READ_ONCE(m->stop));
	}
	end = ktime_get_ns();

	w->result.pairs = chunks * CHUNK_PAIRS;
	w->result.ns = end - start;
	if (atomic_dec_and_test(&m->running))
		complete(&m->done);
	return 0;
}

/* Results: [run][prim][mode][thread] */
static struct sample *results;
static int nr_threads_all;
static int cpu_of[NR_CPUS];

static struct sample *slot(int run, int prim, int mode, int thread)
{
	return &results[((run * ARRAY_SIZE(prims) + prim) * 2 + mode) * nr_threads_all + thread];
}

static int measure(int run, int p, int mode)
{
	int nthreads = mode ? nr_threads_all : 1;
	struct measurement m = {
		.prim = &prims[p],
		.nthreads = nthreads,
		.deadline_ns = (u64)duration_ms * NSEC_PER_MSEC,
	};
	struct worker *workers;
	struct task_struct **tasks;
	int i, err = 0;

	workers = kcalloc(nthreads, sizeof(*workers), GFP_KERNEL);
	tasks = kcalloc(nthreads, sizeof(*tasks), GFP_KERNEL);
	if (!workers || !tasks) {
		err = -ENOMEM;
		goto out;
	}
	atomic_set(&m.ready, 0);
	atomic_set(&m.running, nthreads);
	init_completion(&m.done);
	for (i = 0; i < nthreads; i++) {
		workers[i].m = &m;
		workers[i].leader = i == 0;
		tasks[i] = kthread_create_on_cpu(worker_fn, &workers[i], cpu_of[i], "sdbench/%u");
		if (IS_ERR(tasks[i])) {
			err = PTR_ERR(tasks[i]);
			/* Nothing was started yet: stop the ones created. */
			while (i--)
				kthread_stop(tasks[i]);
			goto out;
		}
	}
	for (i = 0; i < nthreads; i++)
		wake_up_process(tasks[i]);
	wait_for_completion(&m.done);
	for (i = 0; i < nthreads; i++)
		*slot(run, p, mode, i) = workers[i].result;
	/* The kthreads return on their own once they completed. */
	msleep(1);
out:
	kfree(tasks);
	kfree(workers);
	return err;
}

/* Is prims[p] measured in this run (the `only` parameter)? */
static bool selected(int p)
{
	return !only || !strcmp(only, prims[p].name);
}

static int __init sdbench_init(void)
{
	int run, p, mode, i, cpu, err = 0;

	if (runs < 1 || runs > 50 || duration_ms < 1 || duration_ms > 10000) {
		pr_err("runs must be 1..50 and duration_ms 1..10000\n");
		return -EINVAL;
	}
	for (p = 0; p < ARRAY_SIZE(prims) && !selected(p); p++)
		;
	if (p == ARRAY_SIZE(prims)) {
		pr_err("only=%s: no such primitive\n", only);
		return -EINVAL;
	}
	cpus_read_lock();
	nr_threads_all = 0;
	for_each_online_cpu(cpu)
		cpu_of[nr_threads_all++] = cpu;
	cpus_read_unlock();

	results = kcalloc(runs * ARRAY_SIZE(prims) * 2 * nr_threads_all,
			  sizeof(*results), GFP_KERNEL);
	if (!results)
		return -ENOMEM;

	st.counters.entered = alloc_percpu(u64);
	st.counters.exited = alloc_percpu(u64);
	st.gate = sdbench_gate_new();
	st.rust_floor = sdbench_floor_new();
	if (!st.counters.entered || !st.counters.exited || !st.gate || !st.rust_floor) {
		err = -ENOMEM;
		goto free_gate;
	}
	atomic_long_set(&st.atomic, 0);
	refcount_set(&st.refcount, 1);
	init_rwsem(&st.rwsem);
	err = percpu_ref_init(&st.pcref, pcref_release, 0, GFP_KERNEL);
	if (err)
		goto free_gate;
	err = init_srcu_struct(&st.srcu);
	if (err)
		goto free_pcref;

	pr_info("start: %zu primitives, %u runs of %u ms, 1 and %d threads, CPUs %*pbl\n",
		ARRAY_SIZE(prims), runs, duration_ms, nr_threads_all,
		cpumask_pr_args(cpu_online_mask));
	pr_info("gate check=%s\n", sdbench_gate_check());
	for (run = 0; run < runs && !err; run++) {
		for (p = 0; p < ARRAY_SIZE(prims) && !err; p++)
			for (mode = 0; mode < 2 && !err && selected(p); mode++)
				err = measure(run, p, mode);
		pr_info("run %d of %u measured\n", run + 1, runs);
	}

	if (!err) {
		for (run = 0; run < runs; run++)
			for (p = 0; p < ARRAY_SIZE(prims); p++)
				for (mode = 0; mode < 2 && selected(p); mode++)
					for (i = 0; i < (mode ? nr_threads_all : 1); i++)
						pr_info("result prim=%s threads=%d run=%d cpu=%d pairs=%llu ns=%llu\n",
							prims[p].name,
							mode ? nr_threads_all : 1,
							run + 1, cpu_of[i],
							slot(run, p, mode, i)->pairs,
							slot(run, p, mode, i)->ns);
		/* Sanity: the counts balance. */
		pr_info("check atomic=%ld refcount=%u\n",
			atomic_long_read(&st.atomic), refcount_read(&st.refcount));
		pr_info("done\n");
	}

	cleanup_srcu_struct(&st.srcu);
free_pcref:
	percpu_ref_kill(&st.pcref);
	wait_for_completion(&pcref_released);
	percpu_ref_exit(&st.pcref);
free_gate:
	/* The gate's drop closes, drains and waits out its tail first. */
	if (st.gate)
		sdbench_gate_free(st.gate);
	if (st.rust_floor)
		sdbench_floor_free(st.rust_floor);
	free_percpu(st.counters.exited);
	free_percpu(st.counters.entered);
	kfree(results);
	return err;
}

static void __exit sdbench_exit(void)
{
}

module_init(sdbench_init);
module_exit(sdbench_exit);
MODULE_DESCRIPTION("safedetach benchmark: the gate against percpu_ref, SRCU, atomics, rwsem");
MODULE_LICENSE("GPL");
