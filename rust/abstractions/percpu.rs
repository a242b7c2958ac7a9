// SPDX-License-Identifier: GPL-2.0

//! Per-CPU `u64` event counters.
//!
//! A [`PerCpuCounter`] is one `u64` per possible CPU, allocated with
//! `alloc_percpu()`. [`PerCpuCounter::inc`] adds one to the current CPU's
//! copy with a single instruction that needs no lock and no atomic
//! read-modify-write, so it is cheap on every CPU at once; the price is that
//! the total is only known by summing every CPU's copy
//! ([`PerCpuCounter::sum`]), which the slow path does.

use super::ffi;
use super::static_key;
use kernel::{
    bindings,
    ffi::{c_int, c_uint},
    prelude::*,
};

/// A counter with one `u64` per possible CPU.
///
/// # Invariants
///
/// `ptr` is a per-CPU cookie returned by `alloc_percpu(u64)` that has not
/// been freed; it is freed exactly once, on drop.
pub(crate) struct PerCpuCounter {
    ptr: *mut u64,
}

// SAFETY: The counter is only updated with per-CPU increments, which are
// safe from any task on any CPU, and read with plain loads of aligned `u64`s.
unsafe impl Send for PerCpuCounter {}
// SAFETY: See above: `inc` and `sum` take `&self` and are safe concurrently.
unsafe impl Sync for PerCpuCounter {}

impl PerCpuCounter {
    /// Allocates a counter whose every per-CPU copy is zero.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: FFI call without preconditions; `alloc_percpu` zeroes
        // the memory of every possible CPU.
        let ptr = unsafe { ffi::safedetach_alloc_percpu_u64() };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: `ptr` was just returned by `alloc_percpu`.
        Ok(Self { ptr })
    }

    /// Adds one to the current CPU's copy.
    ///
    /// On x86_64 SMP kernels this is a single `incq %gs:(reg)`, exactly
    /// what the kernel's `this_cpu_inc()` emits
    /// (arch/x86/include/asm/percpu.h): one instruction cannot be split by
    /// preemption or an interrupt, and it has no `lock` prefix. It is a
    /// compiler barrier (the `asm!` may touch memory), but not a CPU fence.
    /// On x86_64 uniprocessor kernels (`CONFIG_SMP=n`) the per-CPU area is
    /// ordinary memory and the cookie is its address, so it is `incq (reg)`,
    /// again what `this_cpu_inc()` emits there. Elsewhere it calls
    /// `this_cpu_inc()`.
    #[inline(always)]
    pub(crate) fn inc(&self) {
        #[cfg(all(target_arch = "x86_64", CONFIG_SMP))]
        // SAFETY: By the type invariant `self.ptr` is a live per-CPU
        // cookie: `%gs` holds the current CPU's per-CPU base, so
        // `%gs:(ptr)` is this CPU's copy of the counter. `inc` writes the
        // flags, so `preserves_flags` is not claimed.
        unsafe {
            core::arch::asm!(
                "incq %gs:({0})",
                in(reg) self.ptr,
                options(att_syntax, nostack)
            );
        }
        #[cfg(all(target_arch = "x86_64", not(CONFIG_SMP)))]
        // SAFETY: By the type invariant `self.ptr` is a live per-CPU
        // cookie, which without `CONFIG_SMP` is the address of the only
        // copy (`per_cpu_ptr()` is the identity, include/asm-generic/percpu.h).
        // One instruction cannot be split by preemption or an interrupt on
        // the only CPU.
        unsafe {
            core::arch::asm!(
                "incq ({0})",
                in(reg) self.ptr,
                options(att_syntax, nostack)
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: By the type invariant `self.ptr` is a live per-CPU cookie.
        unsafe {
            ffi::safedetach_this_cpu_inc(self.ptr)
        };
    }

    /// Adds one to the current CPU's copy, then checks the gates' static
    /// key: returns whether it is enabled (rust/abstractions/static_key.rs).
    ///
    /// With jump labels on x86_64 this is one `asm!`: the increment of
    /// [`inc`](Self::inc), then at once the static branch's 5-byte NOP, so
    /// that the compiler cannot schedule anything between the two. While
    /// the key is disabled the pass executes those two instructions.
    #[cfg(all(target_arch = "x86_64", CONFIG_JUMP_LABEL, CONFIG_SMP))]
    #[inline(always)]
    pub(crate) fn inc_then_key(&self) -> bool {
        // SAFETY: The increment is that of `inc` (same argument: `self.ptr`
        // is a live per-CPU cookie by the type invariant). The static
        // branch is `static_branch_nop!`, whose NOP touches nothing and
        // whose `__jump_table` entry names the module's key.
        unsafe {
            core::arch::asm!(
                "incq %gs:({ptr})",
                static_key::static_branch_nop!(),
                ptr = in(reg) self.ptr,
                key = sym ffi::safedetach_closing_key,
                yes = label {
                    return true;
                },
                options(att_syntax, nostack),
            );
        }
        false
    }

    /// Adds one to the current CPU's copy, then checks the gates' static
    /// key: returns whether it is enabled (rust/abstractions/static_key.rs).
    ///
    /// As [`inc_then_key`](Self::inc_then_key) on SMP, with the
    /// uniprocessor increment (see [`inc`](Self::inc)).
    #[cfg(all(target_arch = "x86_64", CONFIG_JUMP_LABEL, not(CONFIG_SMP)))]
    #[inline(always)]
    pub(crate) fn inc_then_key(&self) -> bool {
        // SAFETY: As in the SMP version, with the increment of `inc`
        // without `CONFIG_SMP`.
        unsafe {
            core::arch::asm!(
                "incq ({ptr})",
                static_key::static_branch_nop!(),
                ptr = in(reg) self.ptr,
                key = sym ffi::safedetach_closing_key,
                yes = label {
                    return true;
                },
                options(att_syntax, nostack),
            );
        }
        false
    }

    /// Adds one to the current CPU's copy, then checks the gates' static
    /// key: returns whether it is enabled (rust/abstractions/static_key.rs).
    ///
    /// Without jump labels: [`inc`](Self::inc), then a load of the key's
    /// count and a test.
    #[cfg(not(all(target_arch = "x86_64", CONFIG_JUMP_LABEL)))]
    #[inline(always)]
    pub(crate) fn inc_then_key(&self) -> bool {
        self.inc();
        static_key::enabled()
    }

    /// Returns the sum of every possible CPU's copy.
    ///
    /// The CPUs are read one after the other while others may still
    /// increment: the result is not a snapshot, and the caller supplies the
    /// ordering it needs (see `gate.rs`).
    pub(crate) fn sum(&self) -> u64 {
        self.sum_over(ffi::safedetach_cpumask_next_possible)
    }

    /// Returns the sum of the online CPUs' copies only.
    ///
    /// Wrong for a drain (a CPU that went offline keeps its counts): only
    /// the `online_only` test variant uses it.
    #[cfg_attr(not(safedetach_variant = "online_only"), allow(dead_code))]
    pub(crate) fn sum_online(&self) -> u64 {
        self.sum_over(ffi::safedetach_cpumask_next_online)
    }

    /// Sums the copies of the CPUs that `next` (`cpumask_next()` on some
    /// CPU mask) iterates over.
    fn sum_over(&self, next: unsafe extern "C" fn(c_int) -> c_uint) -> u64 {
        let mut total: u64 = 0;
        // SAFETY: FFI call without preconditions.
        let nr = unsafe { ffi::safedetach_nr_cpu_ids() };
        // SAFETY: `next` is one of the `cpumask_next()` wrappers, which
        // have no preconditions (`for_each_cpu`).
        let mut cpu = unsafe { next(-1) };
        while cpu < nr {
            // SAFETY: `self.ptr` is a live per-CPU cookie (type invariant)
            // and `cpu` is a possible CPU, so this is its copy, which
            // lives as long as `self`. Other CPUs write it concurrently with
            // single instructions: an aligned 64-bit load sees either the
            // old or the new value, and `read_volatile` makes the compiler
            // load it exactly once.
            total = total.wrapping_add(unsafe {
                core::ptr::read_volatile(ffi::safedetach_per_cpu_ptr(self.ptr, cpu))
            });
            // SAFETY: See above.
            cpu = unsafe { next(cpu as c_int) };
        }
        total
    }
}

impl Drop for PerCpuCounter {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `self.ptr` came from `alloc_percpu`
        // and is freed only here.
        unsafe { bindings::free_percpu(self.ptr.cast()) };
    }
}
