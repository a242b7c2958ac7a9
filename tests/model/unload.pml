/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Promela model of the safedetach unload protocol, checked with spin.
 * tests/model/run.sh runs it; README.rst says what it abstracts and why.
 *
 *  - NR_READERS tasks each use the module NR_OPS times. Every statement of
 *    a reader may be followed by preemption, and before each per-CPU
 *    increment a reader picks its CPU afresh: it may have migrated between
 *    any two steps.
 *  - this_cpu_inc() is one instruction (incq %gs:(ptr)): one atomic step on
 *    that CPU's counter, but its store goes through the CPU's store buffer
 *    (x86-TSO), so the drainer may see it late, after the reader's next
 *    load. Store buffers drain in order, on their own or at a barrier.
 *    With -DWEAK they drain in any order (see below).
 *  - After each increment the reader executes the static branch: the code
 *    it runs is a NOP while the key is disabled, a jump to the load of
 *    closing once it is enabled. A reader reads "code", not closing: only
 *    the jump loads closing. Enabling the key writes the code, and a CPU
 *    may go on running the old NOP until text_poke_sync() has run on it.
 *  - The drainer loads the CPUs' counters one at a time: a sum is not a
 *    snapshot.
 *  - module_exit(): close (closing = true, enable the static key, then a
 *    full barrier on every CPU), unpublish, drain (sum exits, smp_mb(), sum entrances, compare,
 *    wait on the completion with a timeout), [wait for the cdev's
 *    release], the tail wait (synchronize_rcu_tasks()), free.
 *
 * Two memory models:
 *
 *  - default: x86-TSO, as above. x86_64 is the only architecture the
 *    module is built and tested on.
 *  - WEAK: weakly ordered, as arm64. A reader's stores become visible in
 *    any order, its accesses to the unit's state may be performed after
 *    its later stores (a load late, a store visible late), and only a
 *    full barrier (smp_mb(), the close's IPI, a context switch, the
 *    fence before complete()) orders them. The gate then has a full
 *    barrier before the exit's increment and before the back-out's, and
 *    the check after an increment is a load of the key's count, not a
 *    patched branch (the static branch is built for x86_64 only). Loads
 *    that may be performed early add nothing here (README.rst says why),
 *    except the drainer's loads of one sum, which may go in any order.
 *
 * CHECK_DRAIN (implied by WEAK) models the pass's access to the unit's
 * state as one that may still be pending, and asserts the drain's own
 * guarantee: when the sums balance, no access of a pass is pending. With
 * CHECK_DRAIN alone (x86-TSO) the access is a store in the in-order
 * buffer, and the gate passes without an exit fence, as on x86_64.
 *
 * Two configurations:
 *
 *  - default: the gate alone. A reader reaches the module while it is
 *    published, and nothing but the gate and the tail wait protects it.
 *  - WITH_CDEV: the whole of module_exit(). Each reader use is the life of
 *    a file: chrdev_open() takes a cdev reference (also after cdev_del(),
 *    through an inode that caches i_cdev, while any is left), __fput()
 *    drops it after release() and then reads the module's file_operations
 *    (fops_put()); module_exit() waits for the cdev's release after the
 *    drain.
 *
 * Safety: nothing executes module code or touches gate memory once it has
 * been freed: assert(!freed) in every reader step from the call into the
 * module to the voluntary context switch that ends the call, and when a
 * pending access is performed. With CHECK_DRAIN, the drain's guarantee.
 *
 * Liveness (-DLIVENESS): unloading finishes, under weak fairness, with the
 * completion's timeout left out: no wake-up of the drainer is lost.
 *
 * Mutants, one -D each:
 *   MUTANT_ENTRANCES_FIRST	sum entrances, then exits
 *   MUTANT_NO_CLOSE_BARRIER	no barrier on every CPU after closing
 *   MUTANT_NO_TAIL_WAIT	no synchronize_rcu_tasks()
 *   MUTANT_NO_BACKOUT_EXIT	a refused entrant does not count its exit
 *   MUTANT_NO_REINIT_BARRIER	no smp_mb() after reinit_completion()
 *   MUTANT_NO_CDEV_WAIT	(WITH_CDEV) no wait for the cdev's release
 *   MUTANT_NO_PATCH_SYNC	the key's NOPs are patched without the
 *				synchronisation of every CPU
 *   MUTANT_NO_EXIT_FENCE	(WEAK) no full barrier before the exit's
 *				increment
 *   MUTANT_NO_BACKOUT_FENCE	(WEAK) no full barrier before the back-out's
 *				increment
 */

#ifndef NR_READERS
#define NR_READERS	2
#endif
#ifndef NR_CPUS
#define NR_CPUS		2
#endif
#ifndef NR_OPS
#define NR_OPS		2
#endif

/* The weakly ordered model checks the drain's guarantee too. */
#ifdef WEAK
#define CHECK_DRAIN
#endif

/* The counter a this_cpu_inc() increments. */
#define SB_ENTERED	1
#define SB_EXITED	2

#define BIT(r)		(1 << (r))

/*
 * The code at the static branch's sites (rust/abstractions/static_key.rs), as the CPUs
 * execute it.
 */
#define CODE_NOP	0	/* key disabled: every CPU runs the NOP */
#define CODE_WRITTEN	1	/* patched, not yet synchronised everywhere:
				 * a CPU may run the old NOP or the jump */
#define CODE_JMP	2	/* key enabled: every CPU jumps */

/*
 * Memory as the other CPUs see it. The counters are the gate's per-CPU
 * entered/exited; only stores that have left a store buffer are here.
 */
byte entered[NR_CPUS];
byte exited[NR_CPUS];
bool closing;
byte code = CODE_NOP;		/* the static branch, see above */
bool done;			/* completion->done (saturates at 1) */
bool published = true;		/* reachable: cdev_del() not yet called */
bool freed;			/* module code and gate memory are gone */
#ifdef WITH_CDEV
byte cdev_refs;			/* cdev references held by files */
#endif

/*
 * Readers' store buffers. A reader has at most one pending increment of
 * each counter: every use of the module ends in a full barrier (the
 * voluntary context switch), and within a use the entrance is made before
 * the exit. So a buffer is two slots, in program order, each 0 (empty) or
 * the CPU the increment was made on, plus one. A task's stores stay in its
 * buffer when it migrates: real context switches flush them, so this only
 * allows more behaviours.
 */
byte sb_entered[NR_READERS];
byte sb_exited[NR_READERS];
#ifdef CHECK_DRAIN
/*
 * Between the two, an access to the unit's state that is not complete:
 * under TSO a store in the buffer; under WEAK also a load not performed
 * yet (nothing the reader does later depends on its value).
 */
bool sb_unit[NR_READERS];
#endif

/* The drainer's store buffer: a pending "done = 0" of reinit_completion(). */
bool sb_reinit;

/*
 * RCU Tasks. Bit r of in_text: reader r is in module code and has not
 * switched voluntarily since it got there (it runs or was preempted).
 * Bit r of holdout: the grace period in progress waits for reader r.
 */
byte in_text;
byte holdout;

/*
 * A reader executes module code or touches gate memory: after the free,
 * the use-after-free this protocol exists to prevent.
 */
inline module_code()
{
	assert(!freed)
}

/* Reader r's pending entrance (exit) reaches memory. */
inline sb_commit_entered(r)
{
	entered[sb_entered[r] - 1]++;
	sb_entered[r] = 0
}

inline sb_commit_exited(r)
{
	exited[sb_exited[r] - 1]++;
	sb_exited[r] = 0
}

#ifdef CHECK_DRAIN
/* Reader r's pending access to the unit's state is performed. */
inline sb_commit_unit(r)
{
	module_code();
	sb_unit[r] = false
}
#endif

/*
 * Which of reader r's pending stores may reach memory now. x86-TSO drains
 * a store buffer in order, oldest first. A weakly ordered CPU makes its
 * stores visible, and performs a load that nothing waits for, in any order
 * until a barrier orders them (the buffer then holds at most one store to
 * each location: no two of them need to stay in order for coherence).
 */
#if defined(WEAK)
#define SB_UNIT_MAY_COMMIT(r)	true
#define SB_EXITED_MAY_COMMIT(r)	true
#elif defined(CHECK_DRAIN)
#define SB_UNIT_MAY_COMMIT(r)	(sb_entered[r] == 0)
#define SB_EXITED_MAY_COMMIT(r)	(sb_entered[r] == 0 && !sb_unit[r])
#else
#define SB_EXITED_MAY_COMMIT(r)	(sb_entered[r] == 0)
#endif

/* A full barrier on reader r's CPU: its whole store buffer drains. */
inline sb_flush(r)
{
	if
	:: sb_entered[r] != 0 ->
		sb_commit_entered(r)
	:: else
	fi;
#ifdef CHECK_DRAIN
	if
	:: sb_unit[r] ->
		sb_commit_unit(r)
	:: else
	fi;
#endif
	if
	:: sb_exited[r] != 0 ->
		sb_commit_exited(r)
	:: else
	fi
}

/* Queue a counter increment behind the reader's earlier stores. */
inline sb_store(r, ctr, c)
{
	if
	:: ctr == SB_ENTERED ->
		assert(sb_entered[r] == 0);
		sb_entered[r] = c + 1
	:: else ->
		assert(sb_exited[r] == 0);
		sb_exited[r] = c + 1
	fi
}

/*
 * An access to the unit's state (the FIFO) by a reader inside the gate.
 * With CHECK_DRAIN it need not be complete at once: it is a store in the
 * store buffer, or under WEAK also a load performed late, and it is checked
 * again when it is performed.
 */
inline unit_access()
{
	atomic {
		module_code();
#ifdef CHECK_DRAIN
		assert(!sb_unit[me]);
		sb_unit[me] = true
#endif
	}
}

/* smp_mb() on the reader's CPU: every earlier access is complete. */
inline smp_mb()
{
	atomic {
		module_code();
		sb_flush(me)
	}
}

/*
 * this_cpu_inc(gate->ctr): the task is on some CPU, whichever it has been
 * migrated to, and increments that CPU's counter in one instruction.
 * Preemption cannot split it, but the store is buffered.
 */
inline this_cpu_inc(ctr)
{
	atomic {
		module_code();
		select (cpu : 0 .. NR_CPUS - 1);
		sb_store(me, ctr, cpu);
		cpu = 0
	}
}

/*
 * The check after an increment: the static branch. A NOP goes on without
 * loading closing; the jump (to the slow path) loads it. While the patch
 * is written but not synchronised on every CPU, either may run. Two
 * steps: the code, then the load.
 */
inline static_branch()
{
	atomic {
		module_code();
		if
		:: code != CODE_NOP ->
			jumped = true
		:: code != CODE_JMP ->
			jumped = false
		fi
	}
	if
	:: jumped ->
		jumped = false;
		atomic {
			module_code();
			seen = closing
		}
	:: else ->
		seen = false
	fi
}

/*
 * complete(&gate->done): spin_lock_irqsave() is a locked instruction, a
 * full barrier on x86, so the exit counted just before is visible no later
 * than done is. Elsewhere Gate::wake_drainer has a full fence before it.
 */
inline gate_complete()
{
	atomic {
		module_code();
		sb_flush(me);
		done = true
	}
}

/*
 * A voluntary context switch (a sleep, or the return to user space):
 * __schedule() takes the runqueue lock, a full barrier on x86, and has
 * smp_mb__after_spinlock() for the others; and the task is quiescent for
 * RCU Tasks, which stops waiting for it.
 */
inline voluntary_switch()
{
	d_step {
		sb_flush(me);
		in_text = in_text & ~BIT(me);
		holdout = holdout & ~BIT(me)
	}
}

/*
 * A reader: NR_OPS times, a call into the module that enters the gate.
 * With WITH_CDEV, each is the life of one file, from chrdev_open() to the
 * end of __fput(), or an open() refused with -ENODEV; calls made on an open
 * file are nested inside its pass and add nothing.
 */
active [NR_READERS] proctype reader()
{
	byte me = _pid;		/* readers are the first processes */
	byte cpu;
	byte ops;
	bool seen;
	bool jumped;

	assert(me < NR_READERS);
	do
	:: ops < NR_OPS ->
		ops++;

#ifndef WITH_CDEV
		/*
		 * The call into the module: possible while it is published.
		 * From here on the reader runs module code, a holdout for
		 * RCU Tasks, and nothing else keeps the module alive for it:
		 * preempted before its entrance, only the tail wait covers
		 * it.
		 */
		if
		:: atomic {
			published ->
			in_text = in_text | BIT(me)
		   }
		:: atomic {
			!published ->
			goto gone
		   }
		fi;
#else
		/*
		 * chrdev_open(): a cdev reference, then the call into the
		 * module's open(). While the cdev is mapped, kobj_lookup()
		 * gets one; after cdev_del(), an inode that still caches
		 * i_cdev (open("/proc/self/fd/N")) gets one from cdev_get()
		 * for as long as any is left.
		 */
		if
		:: atomic {
			(published || cdev_refs > 0) ->
			cdev_refs++;
			in_text = in_text | BIT(me)
		   }
		:: atomic {
			!(published || cdev_refs > 0) ->
			goto gone
		   }
		fi;
#endif

		/* gate_enter(): this_cpu_inc(entered) ... */
		this_cpu_inc(SB_ENTERED);

		/*
		 * ... then the static branch, and if it jumps, load closing,
		 * with no barrier: the entrance may still be in this CPU's
		 * store buffer.
		 */
		static_branch();
		if
		:: seen ->
			/*
			 * Closing: back out. Count the exit so that the sums
			 * balance, signal the drainer, return -ENODEV. From
			 * here on this is the tail.
			 */
			seen = false;
#if defined(WEAK) && !defined(MUTANT_NO_BACKOUT_FENCE)
			/*
			 * Gate::back_out's full barrier (not on x86_64):
			 * the entrance is visible before the exit is.
			 * Nothing else orders the two stores: the control
			 * dependency from the load of closing orders that
			 * load before the exit, not the entrance.
			 */
			smp_mb();
#endif
#ifndef MUTANT_NO_BACKOUT_EXIT
			this_cpu_inc(SB_EXITED);
#endif
			gate_complete();
			goto tail
		:: else
		fi;

		/* Inside the gate: use the device state. */
		unit_access();

		/*
		 * A blocking read sleeps inside the gate (or an open file
		 * waits while its task is elsewhere): a voluntary context
		 * switch, so RCU Tasks stops waiting for this reader; the
		 * counters must. Woken by data or by module_exit(), it runs
		 * module code and touches the device state again.
		 */
		if
		:: voluntary_switch();
			atomic {
				in_text = in_text | BIT(me);
				unit_access()
			}
		:: skip
		fi;

		/* gate_exit() (the end of the call, or release()) ... */
#if defined(WEAK) && !defined(MUTANT_NO_EXIT_FENCE)
		/*
		 * Gate::exit's full barrier (not on x86_64): the pass's
		 * accesses to the unit are complete before its exit is
		 * visible. x86-TSO needs none: its store buffer is in order
		 * and its loads are never performed after a later store.
		 */
		smp_mb();
#endif
		this_cpu_inc(SB_EXITED);

		/* ... then, if the branch jumps and closing is set, wake the
		 * drainer. */
		static_branch();
		if
		:: seen ->
			seen = false;
			gate_complete()
		:: else
		fi;

tail:
		/*
		 * The tail. Counted out, the task still returns through
		 * module code, and does not sleep on the way.
		 */
		module_code();
#ifdef WITH_CDEV
		/*
		 * Core code: cdev_put() drops the file's cdev reference; the
		 * last one releases the cdev, and its parent kobject's
		 * release, module code, completes module_exit()'s wait.
		 */
		atomic {
			module_code();
			cdev_refs--
		}

		/*
		 * Then fops_put(file->f_op) (in __fput(), or in
		 * do_dentry_open() after a failed open) reads ->owner from
		 * the module's file_operations: after the last cdev reference
		 * is gone, before any sleep. Only RCU Tasks covers this.
		 */
		module_code();
#endif

		/* Back to user space, or any sleep: the tail is over. */
		voluntary_switch()
	:: else ->
		break
	od;
gone:
	skip
}

/* The choices of the store_buffers process for reader r. */
#ifdef CHECK_DRAIN
#define SB_COMMIT_UNIT(r)						\
	:: d_step {							\
		sb_unit[r] && SB_UNIT_MAY_COMMIT(r) ->			\
		sb_commit_unit(r)					\
	   }
#else
#define SB_COMMIT_UNIT(r)
#endif
#define SB_COMMIT(r)							\
	:: d_step {							\
		sb_entered[r] != 0 ->					\
		sb_commit_entered(r)					\
	   }								\
	SB_COMMIT_UNIT(r)						\
	:: d_step {							\
		sb_exited[r] != 0 && SB_EXITED_MAY_COMMIT(r) ->		\
		sb_commit_exited(r)					\
	   }

/*
 * The store buffers drain on their own at any time, in order (TSO) or in
 * any order (WEAK). The drainer's holds at most the "done = 0" of
 * reinit_completion() (only in MUTANT_NO_REINIT_BARRIER, see below).
 */
active proctype store_buffers()
{
end:
	do
	SB_COMMIT(0)
#if NR_READERS > 1
	SB_COMMIT(1)
#endif
#if NR_READERS > 2
	SB_COMMIT(2)
#endif
#if NR_READERS > 3
#error "add store buffer entries for more readers"
#endif
	:: d_step {
		sb_reinit ->
		done = false;
		sb_reinit = false
	   }
	od
}

/* A full barrier on the drainer's CPU. */
inline drainer_mb()
{
	d_step {
		if
		:: sb_reinit ->
			done = false;
			sb_reinit = false
		:: else
		fi
	}
}

/*
 * Sum exited[cpu] (entered[cpu]) over every possible CPU: one load of a
 * CPU's counter per step, and the readers run in between. A weakly
 * ordered CPU may perform the loads of one sum, which no barrier
 * separates, in any order.
 */
#ifndef WEAK
#define SUM_COUNTERS(ctr, sum)						\
	i = 0;								\
	do								\
	:: i < NR_CPUS ->						\
		sum = sum + ctr[i];					\
		i++							\
	:: else ->							\
		break							\
	od;								\
	i = 0
#else
#define ALL_CPUS	(BIT(NR_CPUS) - 1)
#define SUM_COUNTERS(ctr, sum)						\
	do								\
	:: atomic {							\
		cpus_read != ALL_CPUS ->				\
		i = 0;							\
		do							\
		:: !(cpus_read & BIT(i)) ->				\
			break						\
		:: (cpus_read >> (i + 1)) != (ALL_CPUS >> (i + 1)) ->	\
			i++						\
		od;							\
		sum = sum + ctr[i];					\
		cpus_read = cpus_read | BIT(i);				\
		i = 0							\
	   }								\
	:: else ->							\
		break							\
	od;								\
	cpus_read = 0
#endif

inline sum_exits()
{
	SUM_COUNTERS(exited, sum_exited)
}

inline sum_entrances()
{
	SUM_COUNTERS(entered, sum_entered)
}

active proctype unloader()
{
	byte i;
	byte sum_exited;
	byte sum_entered;
#ifdef WEAK
	byte cpus_read;
#endif

	/*
	 * 0. Another gate of the module may have closed before this one, at
	 * any time: its close enabled the key (the code jumps), and this
	 * close will only count. The readers then test closing at every
	 * pass, as the gate did before the static key (the load_test build).
	 * The other close's barriers are left out: that allows more.
	 * (Under WEAK the key is a count that the readers load, and an
	 * earlier enable makes no difference that matters: see below.)
	 */
#ifndef WEAK
	if
	:: code = CODE_JMP
	:: skip
	fi;
#endif

	/*
	 * 1. Close. The store of closing is visible at once: the barriers
	 * below include this CPU, and without them the locks that cdev_del()
	 * takes flush it (and seeing closing early only helps readers).
	 */
	closing = true;

	/*
	 * static_branch_inc(). If the key was disabled, text_poke_bp()
	 * patches the NOPs into jumps: it writes an int3 (a CPU that hits
	 * it is sent on as by the jump), then the rest, then the first byte,
	 * each followed by text_poke_sync(), an IPI that runs sync_core() on
	 * every CPU and waits for all (arch/x86/kernel/alternative.c). The
	 * interrupt is a full barrier and sync_core() serialises the
	 * instruction stream: after it, no CPU runs the old NOP, and every
	 * increment made before it is visible. The model makes the write one
	 * step and the syncs one more. If the key was enabled already, this
	 * only counts.
	 *
	 * Under WEAK: the gate's static branch is built by hand for x86_64
	 * only. Elsewhere the check after an increment loads the key's
	 * count (rust/abstractions/static_key.rs), and static_branch_inc() is
	 * a store to it: nothing is patched and no CPU is interrupted, so
	 * only the barrier below orders the readers' increments against it.
	 * A reader that loads the key before the store, or closing before
	 * closing's store, goes on as one that found the key disabled; the
	 * model's readers load the key, then closing, but a weakly ordered
	 * CPU may perform the two loads the other way round, and that too
	 * only lets a reader go on whose loads came before the barrier.
	 */
#ifdef WEAK
	code = CODE_JMP;
#else
	if
	:: code == CODE_NOP ->
		code = CODE_WRITTEN;
#ifndef MUTANT_NO_PATCH_SYNC
		d_step {
			i = 0;
			do
			:: i < NR_READERS ->
				sb_flush(i);
				i++
			:: else ->
				break
			od;
			i = 0;
			code = CODE_JMP
		}
#endif
	:: else ->
		skip
	fi;
#endif
#ifndef MUTANT_NO_CLOSE_BARRIER
	/*
	 * on_each_cpu(smp_mb, NULL, 1): an IPI runs a full barrier on every
	 * CPU, between two instructions of whatever runs there, and the call
	 * returns when all have run. Every pending entrance reaches memory
	 * (every pending access is complete): a reader that loaded
	 * closing == false is counted from now on, and one that loads
	 * closing after this sees it set. (When this close
	 * patched the code, the syncs did the same; when the key was enabled
	 * already, nothing else does. In the model this barrier does not
	 * synchronise instruction streams, so it cannot stand in for the
	 * syncs in MUTANT_NO_PATCH_SYNC.)
	 */
	d_step {
		i = 0;
		do
		:: i < NR_READERS ->
			sb_flush(i);
			i++
		:: else ->
			break
		od;
		i = 0
	}
#endif

	/*
	 * 2. Unpublish: device_destroy(), cdev_del(). No new lookups.
	 *
	 * 3. Wake every sleeper: readers wake up nondeterministically (and
	 * fairly, in the liveness check), which covers this.
	 */
	published = false;

	/* 4. Drain. */
	do
	:: /*
	    * reinit_completion() is a plain store, done = 0, and loads may
	    * pass it. Without a full barrier after it, a complete() that
	    * lands before it leaves the store buffer is overwritten.
	    */
#ifdef MUTANT_NO_REINIT_BARRIER
		sb_reinit = true;
#else
		done = false;	/* reinit_completion(); smp_mb(); */
#endif

#ifndef MUTANT_ENTRANCES_FIRST
		/*
		 * Exits first: an exit is visible only after its entrance
		 * (store buffers drain in order; under WEAK, the barrier
		 * before the exit's or the back-out's increment orders
		 * them), so every exit counted here has its entrance counted
		 * below.
		 */
		sum_exits();
		drainer_mb();
		sum_entrances();
#else
		/*
		 * Entrances first: an entrant missed here can back out and
		 * have its exit counted below, standing in for a reader that
		 * is still inside.
		 */
		sum_entrances();
		drainer_mb();
		sum_exits();
#endif
		if
		:: sum_exited == sum_entered ->
			break
		:: else ->
			sum_exited = 0;
			sum_entered = 0
		fi;

		/*
		 * wait_for_completion_timeout(): takes the completion's lock
		 * (a full barrier), returns when done, consuming it, or when
		 * the timeout fires. In the safety check the timeout may fire
		 * at any time; the liveness check leaves it out, to show that
		 * no complete() is lost.
		 */
		drainer_mb();
		if
		:: atomic {
			done ->
			done = false
		   }
#ifndef LIVENESS
		:: true		/* timed out: log who is inside, retry */
#endif
		fi
	od;
	sum_exited = 0;
	sum_entered = 0;

#ifdef CHECK_DRAIN
	/*
	 * The drain's own guarantee (design.rst, "Exit: nothing leaks past
	 * the increment"): once the sums balance, every pass has ended, and
	 * so has every access a pass made to the unit's state; the state is
	 * the owner's. In this model the tail wait below would also let a
	 * straggling access complete before the free (the task is a holdout
	 * until it switches, and a switch is a full barrier), so the
	 * use-after-free assertions alone cannot see one: this checks the
	 * drain's promise itself.
	 */
	d_step {
		i = 0;
		do
		:: i < NR_READERS ->
			assert(!sb_unit[i]);
			i++
		:: else ->
			break
		od;
		i = 0
	}
#endif

#if defined(WITH_CDEV) && !defined(MUTANT_NO_CDEV_WAIT)
	/*
	 * 4, continued: wait for the cdev's release. Until the last file
	 * drops its reference, cdev_get() through a cached i_cdev can bring
	 * a new caller into open(), one the drain has not counted. Once none
	 * is left, none can be taken (kobject_get_unless_zero()).
	 */
	cdev_refs == 0;
#endif

#ifndef MUTANT_NO_TAIL_WAIT
	/*
	 * 5. The tail: synchronize_rcu_tasks(). The grace period waits for
	 * every task that is in module code and has not switched voluntarily
	 * since: running, or preempted. A task asleep, even inside the gate,
	 * is not waited for, nor after it wakes up.
	 */
	holdout = in_text;
	holdout == 0;
#endif

	/* 6. Free the per-CPU counters, the gate, the module. */
	freed = true
}

#ifdef LIVENESS
ltl unload_finishes { <> freed }
#endif
