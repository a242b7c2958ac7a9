// SPDX-License-Identifier: GPL-2.0

//! The static key that sends the gates' passes to their slow path.
//!
//! While no gate of the module is closing, a pass through a gate does not
//! look at the gate's `closing` flag at all: after its per-CPU increment it
//! executes a 5-byte NOP. [`inc`] (when a gate closes) enables the key, and
//! the kernel patches every such NOP of the module into a jump to the code
//! that loads `closing`; [`dec`] (when a closed gate is freed) disables it
//! again once no gate holds it. This is `static_branch_unlikely()`
//! (include/linux/jump_label.h), built by hand because 6.12's `kernel`
//! crate has no binding for it.
//!
//! Three builds, chosen at compile time:
//!
//! - x86_64 with `CONFIG_JUMP_LABEL`: the check is
//!   `arch_static_branch()` of arch/x86/include/asm/jump_label.h, a NOP
//!   with a `__jump_table` entry that names the key
//!   ([`static_branch_nop`]), emitted right after the counter's increment
//!   in the same `asm!` (`PerCpuCounter::inc_then_key`). The module loader
//!   hands the entries to the jump-label code (`jump_label_add_module()`
//!   in kernel/jump_label.c, on `MODULE_STATE_COMING`), which patches them
//!   with `text_poke_bp()` whenever the key's count goes from 0 to 1 or
//!   back.
//! - Without `CONFIG_JUMP_LABEL` (or on another architecture) a static key
//!   is an `atomic_t` (the `!CONFIG_JUMP_LABEL` half of jump_label.h:
//!   `static_key_count()` is `atomic_read()`, and enabling it is an
//!   `atomic_inc()`): the check, `enabled()`, is one load of it and a
//!   test, as `static_branch_unlikely()` is there.
//! - On another architecture with `CONFIG_JUMP_LABEL` (arm64's debug
//!   kernel) the module has no sites to patch and `enabled()` reads the
//!   same count, `static_key_enabled()` (`static_key_count() > 0`). While
//!   the first enable patches the kernel's own sites the count is -1
//!   (`static_key_slow_inc_cpuslocked()` in kernel/jump_label.c), which
//!   reads as disabled; it is 1, stored with release semantics, before
//!   `static_branch_inc()` returns, so before `Gate::close` runs its
//!   barrier on every CPU, which is what the gate's ordering rests on.
//! - The `load_test` variant (rust/variant.rs) never looks at the key: the
//!   gate loads its own `closing` at every pass, as before the key existed,
//!   for the benchmarks.
//!
//! Why a pass that ran the NOP is counted by the drain, and a pass that
//! runs after the patch sees `closing`, is in gate.rs ("Static branch").

use super::ffi;
#[cfg(not(all(target_arch = "x86_64", CONFIG_JUMP_LABEL)))]
use core::sync::atomic::Ordering;

/// Returns the key, for the C wrappers.
fn key() -> *const ffi::StaticKeyFalse {
    core::ptr::addr_of!(ffi::safedetach_closing_key)
}

/// The assembler of a static branch on the module's key: a 5-byte NOP and
/// its `__jump_table` entry, for an `asm!` with a `label` operand `yes`
/// (where the enabled key jumps) and a `sym` operand `key`
/// ([`safedetach_closing_key`](ffi::safedetach_closing_key)).
///
/// This is `arch_static_branch(&key, false)` of
/// arch/x86/include/asm/jump_label.h: `nopl 0x0(%rax,%rax,1)`, which
/// touches no register, flag or memory, and an entry of three fields, each
/// relative to itself: the NOP, the label, and the key (whose low bit is
/// the branch, 0 for "unlikely"). The kernel patches the NOP into a `jmp`
/// to the label while the key is enabled, and back. The entry is
/// registered before the module's init runs and stays registered until
/// after its exit returns (kernel/module/main.c, kernel/jump_label.c).
#[cfg(all(target_arch = "x86_64", CONFIG_JUMP_LABEL))]
macro_rules! static_branch_nop {
    () => {
        concat!(
            "1: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n",
            ".pushsection __jump_table, \"aw\"\n",
            ".balign 8\n",
            ".long 1b - .\n",
            ".long {yes} - .\n",
            ".quad {key} - .\n",
            ".popsection\n",
        )
    };
}
#[cfg(all(target_arch = "x86_64", CONFIG_JUMP_LABEL))]
pub(crate) use static_branch_nop;

/// Returns whether the key is enabled: whether some gate of the module is
/// closing (or was closed and not yet freed).
///
/// Without jump labels this is `static_key_count() > 0`: one load and a
/// test. (With them, the check is built into the counter's increment,
/// `PerCpuCounter::inc_then_key`, so that nothing comes between the two.)
#[cfg(not(all(target_arch = "x86_64", CONFIG_JUMP_LABEL)))]
#[inline(always)]
pub(crate) fn enabled() -> bool {
    // SAFETY: The key is a static of this module, live while its code is.
    let key = unsafe { &*key() };
    // Relaxed, as `atomic_read()`: the gate's ordering comes from the
    // barrier of `Gate::close` (see gate.rs).
    key.enabled.load(Ordering::Relaxed) > 0
}

/// Enables the key once more (`static_branch_inc()`).
///
/// The first enable patches every site of the module and returns after
/// every CPU has synchronised its instruction stream; later ones only
/// count. May sleep: takes `cpus_read_lock()` and `jump_label_mutex`.
pub(crate) fn inc() {
    // SAFETY: FFI call on the module's key; callers are in process context.
    unsafe { ffi::safedetach_static_branch_inc(key()) };
}

/// Drops one enable of the key (`static_branch_dec()`); the last patches
/// the sites back into NOPs.
///
/// Must balance an earlier [`inc`]. May sleep.
pub(crate) fn dec() {
    // SAFETY: FFI call on the module's key; callers are in process context
    // and balance an earlier `inc`.
    unsafe { ffi::safedetach_static_branch_dec(key()) };
}
