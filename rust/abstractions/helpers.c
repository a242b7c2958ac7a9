// SPDX-License-Identifier: GPL-2.0
/*
 * Thin C wrappers for the kernel APIs that safedetach uses but that are
 * macros or static inlines, which bindgen cannot bind (compare the kernel's
 * rust/helpers/ directory). One wrapper per API, no logic: everything else is in
 * Rust. Also the module parameters, since 6.12's `module!` macro has no
 * parameter support.
 */

#include <linux/cdev.h>
#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/jump_label.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/smp.h>

#include "../../include/uapi/safedetach.h"
#include "helpers.h"

static_assert(sizeof(struct safedetach_stats) == 64);
static_assert(SAFEDETACH_IOC_STATS == 0x8040d701);

static unsigned int units = 4;
module_param(units, uint, 0444);
MODULE_PARM_DESC(units, "number of /dev/safedetachN units (1..64, default 4)");

static unsigned int capacity = 4096;
module_param(capacity, uint, 0444);
MODULE_PARM_DESC(capacity, "FIFO capacity of each unit in bytes (1..1048576, default 4096)");

/*
 * The static key of the gates (rust/abstractions/static_key.rs): enabled while any gate
 * of the module is closing. The module loader registers the jump-table
 * entries of this module's sites against it (kernel/jump_label.c,
 * jump_label_add_module()).
 */
DEFINE_STATIC_KEY_FALSE(safedetach_closing_key);

unsigned int safedetach_param_units(void)
{
	return READ_ONCE(units);
}

unsigned int safedetach_param_capacity(void)
{
	return READ_ONCE(capacity);
}

u64 __percpu *safedetach_alloc_percpu_u64(void)
{
	return alloc_percpu(u64);
}

u64 *safedetach_per_cpu_ptr(u64 __percpu *p, unsigned int cpu)
{
	return per_cpu_ptr(p, cpu);
}

void safedetach_this_cpu_inc(u64 __percpu *p)
{
	this_cpu_inc(*p);
}

void safedetach_static_branch_inc(struct static_key_false *key)
{
	static_branch_inc(key);
}

void safedetach_static_branch_dec(struct static_key_false *key)
{
	static_branch_dec(key);
}

unsigned int safedetach_cpumask_next_possible(int cpu)
{
	return cpumask_next(cpu, cpu_possible_mask);
}

unsigned int safedetach_cpumask_next_online(int cpu)
{
	return cpumask_next(cpu, cpu_online_mask);
}

unsigned int safedetach_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

void safedetach_on_each_cpu(smp_call_func_t func, void *info)
{
	on_each_cpu(func, info, 1);
}

void safedetach_init_completion(struct completion *x)
{
	init_completion(x);
}

void safedetach_reinit_completion(struct completion *x)
{
	reinit_completion(x);
}

struct cdev *safedetach_cdev_alloc(void)
{
	return cdev_alloc();
}

void safedetach_cdev_set_ops(struct cdev *cdev, const struct file_operations *fops)
{
	cdev->ops = fops;
}

void safedetach_cdev_set_parent(struct cdev *cdev, struct kobject *parent)
{
	cdev_set_parent(cdev, parent);
}

int safedetach_cdev_add(struct cdev *cdev, dev_t dev)
{
	return cdev_add(cdev, dev, 1);
}

void safedetach_cdev_del(struct cdev *cdev)
{
	cdev_del(cdev);
}

void safedetach_cdev_put(struct cdev *cdev)
{
	kobject_put(&cdev->kobj);
}

void safedetach_cdev_clear_parent(struct cdev *cdev)
{
	cdev->kobj.parent = NULL;
}

struct kobject *safedetach_inode_cdev_parent(struct inode *inode)
{
	return inode->i_cdev->kobj.parent;
}

struct device *
safedetach_device_create_with_groups(const struct class *cls, dev_t devt,
				     void *drvdata,
				     const struct attribute_group **groups,
				     const char *name)
{
	return device_create_with_groups(cls, NULL, devt, drvdata, groups, "%s", name);
}

void safedetach_warn_drain_ended_open(const char *name, size_t files)
{
	WARN(1, "safedetach: %s: drain ended with %zu file(s) still open\n", name, files);
}

struct pid_namespace *safedetach_init_pid_ns(void)
{
	return &init_pid_ns;
}

void safedetach_poll_wait(struct file *filp, wait_queue_head_t *wq,
			  struct poll_table_struct *p)
{
	poll_wait(filp, wq, p);
}

struct device *safedetach_root_device_register(const char *name)
{
	return root_device_register(name);
}

struct dentry *safedetach_debugfs_create_dir(const char *name)
{
	return debugfs_create_dir(name, NULL);
}

void safedetach_debugfs_create_devm_seqfile(struct device *dev, const char *name,
					    struct dentry *parent,
					    int (*read_fn)(struct seq_file *s, void *data))
{
	debugfs_create_devm_seqfile(dev, name, parent, read_fn);
}

void safedetach_debugfs_remove(struct dentry *dentry)
{
	debugfs_remove(dentry);
}
