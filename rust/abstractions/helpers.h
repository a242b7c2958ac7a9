/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of the wrappers in helpers.c; rust/abstractions/ffi.rs declares the same
 * functions for Rust.
 */
#ifndef SAFEDETACH_HELPERS_H
#define SAFEDETACH_HELPERS_H

#include <linux/fs.h>
#include <linux/smp.h>
#include <linux/types.h>

struct cdev;
struct attribute_group;
struct class;
struct completion;
struct dentry;
struct device;
struct kobject;
struct pid_namespace;
struct poll_table_struct;
struct seq_file;
struct static_key_false;

extern struct static_key_false safedetach_closing_key;

unsigned int safedetach_param_units(void);
unsigned int safedetach_param_capacity(void);
u64 __percpu *safedetach_alloc_percpu_u64(void);
u64 *safedetach_per_cpu_ptr(u64 __percpu *p, unsigned int cpu);
void safedetach_this_cpu_inc(u64 __percpu *p);
void safedetach_static_branch_inc(struct static_key_false *key);
void safedetach_static_branch_dec(struct static_key_false *key);
unsigned int safedetach_cpumask_next_possible(int cpu);
unsigned int safedetach_cpumask_next_online(int cpu);
unsigned int safedetach_nr_cpu_ids(void);
void safedetach_on_each_cpu(smp_call_func_t func, void *info);
void safedetach_init_completion(struct completion *x);
void safedetach_reinit_completion(struct completion *x);
struct cdev *safedetach_cdev_alloc(void);
void safedetach_cdev_set_ops(struct cdev *cdev, const struct file_operations *fops);
void safedetach_cdev_set_parent(struct cdev *cdev, struct kobject *parent);
int safedetach_cdev_add(struct cdev *cdev, dev_t dev);
void safedetach_cdev_del(struct cdev *cdev);
void safedetach_cdev_put(struct cdev *cdev);
void safedetach_cdev_clear_parent(struct cdev *cdev);
struct kobject *safedetach_inode_cdev_parent(struct inode *inode);
struct device *
safedetach_device_create_with_groups(const struct class *cls, dev_t devt,
				     void *drvdata,
				     const struct attribute_group **groups,
				     const char *name);
void safedetach_warn_drain_ended_open(const char *name, size_t files);
struct pid_namespace *safedetach_init_pid_ns(void);
void safedetach_poll_wait(struct file *filp, wait_queue_head_t *wq,
			  struct poll_table_struct *p);
struct device *safedetach_root_device_register(const char *name);
struct dentry *safedetach_debugfs_create_dir(const char *name);
void safedetach_debugfs_create_devm_seqfile(struct device *dev, const char *name,
					    struct dentry *parent,
					    int (*read_fn)(struct seq_file *s, void *data));
void safedetach_debugfs_remove(struct dentry *dentry);

#endif /* SAFEDETACH_HELPERS_H */
