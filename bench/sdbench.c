// SPDX-License-Identifier: GPL-2.0
/*
 * sdbench: micro-benchmark of the safedetach gate against the kernel's own
 * ways of keeping an object alive while a CPU is inside it.
 *
 * This module is a benchmark only. safedetach.ko never loads it, and it
 * never touches safedetach.ko: it re-implements the gate's fast path (see
 * "The gate" below) so that the gate can be timed in a tight loop next to
 * the other primitives, which are called through their ordinary inline
 * APIs.
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

/*
 * The gate
 * ========
 *
 * The same fields and the same instruction sequence as struct Gate in
 * rust/gate.rs, minus its slow path:
 *
 * - PerCpuCounter::inc() (rust/abstractions/percpu.rs) is `incq %gs:(reg)` in an asm!
 *   block without `nomem`, i.e. one per-CPU increment that is also a
 *   compiler barrier: here this_cpu_inc() followed by barrier();
 * - `closing.load(Ordering::Relaxed)` is READ_ONCE(closing);
 * - the slow paths (back_out(), wake_drainer()) are #[cold]
 *   #[inline(never)]: here noinline __cold functions.
 *
 * Gate::enter() is: inc(entered); if closing { back_out(); Err }.
 * Gate::exit() is: inc(exited); if closing { wake_drainer() }.
 * scripts/bench.sh checks that both compile to the same number of
 * instructions as in safedetach.ko (objdump of both modules).
 */
struct bench_gate {
	u64 __percpu *entered;
	u64 __percpu *exited;
	bool closing;
	atomic_long_t wakeups;
};

static noinline __cold void bench_gate_wake(struct bench_gate *g)
{
	/* Gate::wake_drainer(): a fence, then complete(). Never reached here. */
	smp_mb();
	atomic_long_inc(&g->wakeups);
}

static noinline __cold void bench_gate_back_out(struct bench_gate *g)
{
	this_cpu_inc(*g->exited);
	bench_gate_wake(g);
}

static __always_inline int bench_gate_enter(struct bench_gate *g)
{
	this_cpu_inc(*g->entered);
	barrier();
	if (unlikely(READ_ONCE(g->closing))) {
		bench_gate_back_out(g);
		return -ENODEV;
	}
	return 0;
}

static __always_inline void bench_gate_exit(struct bench_gate *g)
{
	this_cpu_inc(*g->exited);
	barrier();
	if (unlikely(READ_ONCE(g->closing)))
		bench_gate_wake(g);
}

/* Everything the primitives work on, each shared object on its own line. */
static struct bench_state {
	struct bench_gate gate ____cacheline_aligned_in_smp;
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

/* The floor: the two per-CPU increments of the gate, nothing else. */
DEFINE_LOOP(floor, ({
	this_cpu_inc(*st.gate.entered);
	barrier();
	this_cpu_inc(*st.gate.exited);
	barrier();
}))

/* The gate, as safedetach's file operations use it. */
static noinline void loop_gate(unsigned long chunks)
{
	struct bench_gate *g = &st.gate;
	unsigned long n = chunks * (CHUNK_PAIRS / UNROLL);

	/* Keep the gate's address in a register, as `&self` is in Rust. */
	OPTIMIZER_HIDE_VAR(g);
	while (n--) {
#define GATE_PAIR() do { if (!bench_gate_enter(g)) bench_gate_exit(g); } while (0)
		GATE_PAIR(); GATE_PAIR(); GATE_PAIR(); GATE_PAIR();
		GATE_PAIR(); GATE_PAIR(); GATE_PAIR(); GATE_PAIR();
#undef GATE_PAIR
	}
}

/*
 * The gate without its branches: the same increments and loads of
 * `closing`, whose values are kept but not tested. Not a usable gate; it
 * shows how much of the gate's cost is its two branches, which a real CPU
 * predicts and QEMU TCG does not (every branch ends a translation block).
 */
DEFINE_LOOP(loads, ({
	bool c;

	this_cpu_inc(*st.gate.entered);
	barrier();
	c = READ_ONCE(st.gate.closing);
	OPTIMIZER_HIDE_VAR(c);
	this_cpu_inc(*st.gate.exited);
	barrier();
	c = READ_ONCE(st.gate.closing);
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

static int __init sdbench_init(void)
{
	int run, p, mode, i, cpu, err = 0;

	if (runs < 1 || runs > 50 || duration_ms < 1 || duration_ms > 10000) {
		pr_err("runs must be 1..50 and duration_ms 1..10000\n");
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

	st.gate.entered = alloc_percpu(u64);
	st.gate.exited = alloc_percpu(u64);
	if (!st.gate.entered || !st.gate.exited) {
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
	for (run = 0; run < runs && !err; run++) {
		for (p = 0; p < ARRAY_SIZE(prims) && !err; p++)
			for (mode = 0; mode < 2 && !err; mode++)
				err = measure(run, p, mode);
		pr_info("run %d of %u measured\n", run + 1, runs);
	}

	if (!err) {
		for (run = 0; run < runs; run++)
			for (p = 0; p < ARRAY_SIZE(prims); p++)
				for (mode = 0; mode < 2; mode++)
					for (i = 0; i < (mode ? nr_threads_all : 1); i++)
						pr_info("result prim=%s threads=%d run=%d cpu=%d pairs=%llu ns=%llu\n",
							prims[p].name,
							mode ? nr_threads_all : 1,
							run + 1, cpu_of[i],
							slot(run, p, mode, i)->pairs,
							slot(run, p, mode, i)->ns);
		/* Sanity: the gate never saw `closing`, the counts balance. */
		pr_info("check gate_wakeups=%ld atomic=%ld refcount=%u\n",
			atomic_long_read(&st.gate.wakeups), atomic_long_read(&st.atomic),
			refcount_read(&st.refcount));
		pr_info("done\n");
	}

	cleanup_srcu_struct(&st.srcu);
free_pcref:
	percpu_ref_kill(&st.pcref);
	wait_for_completion(&pcref_released);
	percpu_ref_exit(&st.pcref);
free_gate:
	free_percpu(st.gate.exited);
	free_percpu(st.gate.entered);
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
