// SPDX-License-Identifier: GPL-2.0
/*
 * keyprobe: does this emulator run the kernel's static-key patching safely?
 *
 * No Rust and nothing of safedetach: a static key of the module's own
 * (DEFINE_STATIC_KEY_FALSE), a kthread bound to each online CPU that runs 16
 * static_branch_unlikely() sites of it in a loop, and the loading task that
 * enables and disables the key (static_branch_inc()/static_branch_dec(), as
 * the gate's close and the end of a drain do) for `seconds`. With jump
 * labels, each toggle rewrites the 16 sites with text_poke_bp()
 * (arch/x86/kernel/alternative.c) while the other CPUs run them: an int3
 * first, then the tail, then the first byte, with a round of sync_core() IPIs
 * after each step. poke_int3_handler() sends on a CPU that traps on the
 * int3 while the patch in progress lists the site; any other trap on it is
 * an "Oops: int3".
 *
 * scripts/jump-probe.sh builds it against the bench kernel and runs it under
 * both TCG threading modes (Documentation/testing.rst, "Kernel flavours").
 */
#include <linux/jiffies.h>
#include <linux/jump_label.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched.h>

static DEFINE_STATIC_KEY_FALSE(probe_key);

static int seconds = 10;
module_param(seconds, int, 0444);
MODULE_PARM_DESC(seconds, "how long to toggle the key (default 10)");

static atomic_long_t passes, taken;
static bool stop;

#define SITE()                                          \
	do {                                            \
		if (static_branch_unlikely(&probe_key)) \
			n++;                            \
	} while (0)

static int spinner(void *unused)
{
	long n = 0, p = 0;

	while (!READ_ONCE(stop)) {
		SITE(); SITE(); SITE(); SITE(); SITE(); SITE(); SITE(); SITE();
		SITE(); SITE(); SITE(); SITE(); SITE(); SITE(); SITE(); SITE();
		p += 16;
		if (!(p & 0xffff))
			cond_resched();
	}
	atomic_long_add(n, &taken);
	atomic_long_add(p, &passes);
	while (!kthread_should_stop())
		schedule_timeout_interruptible(1);
	return 0;
}

static int __init keyprobe_init(void)
{
	struct task_struct *threads[64];
	unsigned long end;
	long toggles = 0;
	int cpu, n = 0;

	for_each_online_cpu(cpu) {
		struct task_struct *t;

		if (n == ARRAY_SIZE(threads))
			break;
		t = kthread_create(spinner, NULL, "keyprobe/%d", cpu);
		if (IS_ERR(t))
			break;
		kthread_bind(t, cpu);
		wake_up_process(t);
		threads[n++] = t;
	}
	end = jiffies + seconds * HZ;
	while (time_before(jiffies, end)) {
		static_branch_inc(&probe_key);
		static_branch_dec(&probe_key);
		toggles++;
		cond_resched();
	}
	WRITE_ONCE(stop, true);
	while (n--)
		kthread_stop(threads[n]);
	pr_info("keyprobe: %ld toggles (enable, disable) in %d s on %u CPUs; %ld passes, %ld of them taken\n",
		toggles, seconds, num_online_cpus(), atomic_long_read(&passes),
		atomic_long_read(&taken));
	return 0;
}

static void __exit keyprobe_exit(void)
{
}

module_init(keyprobe_init);
module_exit(keyprobe_exit);
MODULE_DESCRIPTION("Toggles a static key while every CPU runs its sites");
MODULE_LICENSE("GPL");
