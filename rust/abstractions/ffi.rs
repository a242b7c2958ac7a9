// SPDX-License-Identifier: GPL-2.0

//! Declarations of the C wrappers in `helpers.c`.
//!
//! These wrap kernel APIs that are macros or static inlines (or live in
//! headers that 6.12's `bindings` crate does not include, such as `cdev.h`).
//! Only the abstraction modules of this crate call them.

// Pointers to kernel structs are only passed through, never dereferenced
// here; bindgen marks some of those structs as not FFI-safe (as the
// `bindings` crate itself allows).
#![allow(improper_ctypes)]

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_uint, c_void};

/// `struct cdev`, opaque to Rust.
#[repr(C)]
pub(crate) struct Cdev {
    _opaque: [u8; 0],
}

/// The start of `struct static_key_false`: the rest is opaque to Rust.
///
/// Its first member is `struct static_key`, whose first member is
/// `atomic_t enabled`, with or without `CONFIG_JUMP_LABEL`
/// (include/linux/jump_label.h). The key is only ever used through a
/// pointer, never copied.
#[repr(C)]
pub(crate) struct StaticKeyFalse {
    /// `key.enabled`: how many times the key has been enabled.
    pub(crate) enabled: core::sync::atomic::AtomicI32,
    _rest: [u8; 0],
}

extern "C" {
    /// The gates' static key, `DEFINE_STATIC_KEY_FALSE()` in helpers.c.
    pub(crate) static safedetach_closing_key: StaticKeyFalse;

    pub(crate) fn safedetach_param_units() -> c_uint;
    pub(crate) fn safedetach_param_capacity() -> c_uint;

    pub(crate) fn safedetach_alloc_percpu_u64() -> *mut u64;
    pub(crate) fn safedetach_per_cpu_ptr(p: *mut u64, cpu: c_uint) -> *mut u64;
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    pub(crate) fn safedetach_this_cpu_inc(p: *mut u64);
    pub(crate) fn safedetach_static_branch_inc(key: *const StaticKeyFalse);
    pub(crate) fn safedetach_static_branch_dec(key: *const StaticKeyFalse);
    pub(crate) fn safedetach_cpumask_next_possible(cpu: c_int) -> c_uint;
    #[cfg_attr(not(safedetach_variant = "online_only"), allow(dead_code))]
    pub(crate) fn safedetach_cpumask_next_online(cpu: c_int) -> c_uint;
    pub(crate) fn safedetach_nr_cpu_ids() -> c_uint;
    pub(crate) fn safedetach_on_each_cpu(
        func: Option<unsafe extern "C" fn(info: *mut c_void)>,
        info: *mut c_void,
    );

    pub(crate) fn safedetach_init_completion(x: *mut bindings::completion);
    pub(crate) fn safedetach_reinit_completion(x: *mut bindings::completion);

    pub(crate) fn safedetach_cdev_alloc() -> *mut Cdev;
    pub(crate) fn safedetach_cdev_set_ops(cdev: *mut Cdev, fops: *const bindings::file_operations);
    pub(crate) fn safedetach_cdev_set_parent(cdev: *mut Cdev, parent: *mut bindings::kobject);
    pub(crate) fn safedetach_cdev_add(cdev: *mut Cdev, dev: bindings::dev_t) -> c_int;
    pub(crate) fn safedetach_cdev_del(cdev: *mut Cdev);
    pub(crate) fn safedetach_cdev_put(cdev: *mut Cdev);
    pub(crate) fn safedetach_cdev_clear_parent(cdev: *mut Cdev);
    pub(crate) fn safedetach_inode_cdev_parent(
        inode: *mut bindings::inode,
    ) -> *mut bindings::kobject;
    pub(crate) fn safedetach_device_create_with_groups(
        cls: *const bindings::class,
        devt: bindings::dev_t,
        drvdata: *mut c_void,
        groups: *mut *const bindings::attribute_group,
        name: *const c_char,
    ) -> *mut bindings::device;

    pub(crate) fn safedetach_warn_drain_ended_open(name: *const c_char, files: usize);
    pub(crate) fn safedetach_init_pid_ns() -> *mut bindings::pid_namespace;

    pub(crate) fn safedetach_poll_wait(
        filp: *mut bindings::file,
        wq: *mut bindings::wait_queue_head,
        p: *mut bindings::poll_table_struct,
    );

    pub(crate) fn safedetach_root_device_register(name: *const c_char) -> *mut bindings::device;
    pub(crate) fn safedetach_debugfs_create_dir(name: *const c_char) -> *mut bindings::dentry;
    pub(crate) fn safedetach_debugfs_create_devm_seqfile(
        dev: *mut bindings::device,
        name: *const c_char,
        parent: *mut bindings::dentry,
        read_fn: Option<
            unsafe extern "C" fn(s: *mut bindings::seq_file, data: *mut c_void) -> c_int,
        >,
    );
    pub(crate) fn safedetach_debugfs_remove(dentry: *mut bindings::dentry);
}
