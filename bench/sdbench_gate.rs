// SPDX-License-Identifier: GPL-2.0

//! The shipped gate, compiled into sdbench.ko.
//!
//! This crate is the Rust half of the micro-benchmark module (the C half,
//! `sdbench_main.c`, runs the threads and times them). It compiles
//! safedetach's own `rust/gate.rs` and `rust/abstractions/percpu.rs`, with the modules
//! they use, from the driver's sources (`#[path]`), so what is timed is
//! `Gate::enter` and the drop of its `Pass` exactly as the driver's file
//! operations inline them, not a copy. The C half calls the `extern "C"`
//! functions below; `rust/abstractions/helpers.c` is linked in as it is
//! (`sdbench_helpers.c`).
//!
//! The functions are `#[no_mangle]` so that `scripts/bench.sh` finds the
//! measured loops in `objdump -d sdbench.ko` by name.

// Most of the driver's modules compiled here (open files, reports,
// variants) are not used by the benchmark.
#![allow(dead_code)]

// The abstractions the gate uses, from the driver's rust/abstractions/.
#[path = "../rust/abstractions"]
mod abstractions {
    pub(crate) mod barrier;
    pub(crate) mod completion;
    pub(crate) mod diag;
    pub(crate) mod ffi;
    pub(crate) mod percpu;
    pub(crate) mod static_key;
}
#[path = "../rust/gate.rs"]
mod gate;
#[path = "../rust/variant.rs"]
mod variant;

use abstractions::percpu::PerCpuCounter;
use gate::Gate;
use kernel::{
    c_str,
    ffi::{c_char, c_ulong, c_void},
    fmt,
    prelude::*,
    str::{CStr, CString},
};

/// The prefix of `pr_*!` messages, which `module!` defines in a module's
/// crate root: the C half owns the module.
const __LOG_PREFIX: &[u8] = b"sdbench\0";

/// Repeats a statement 8 times, as the C loops do (`DEFINE_LOOP`).
macro_rules! unroll8 {
    ($e:expr) => {
        $e;
        $e;
        $e;
        $e;
        $e;
        $e;
        $e;
        $e;
    };
}

/// What the benchmark enters: a gate around nothing.
type BenchGate = Gate<()>;

/// How the gate's passes check for a closing gate in this build, as a C
/// string for the benchmark's log: the static branch, the static key's
/// `atomic_t` (no jump labels), or the `load_test` build's load and test of
/// `closing`.
#[no_mangle]
pub extern "C" fn sdbench_gate_check() -> *const c_char {
    let check: &'static CStr = if variant::LOAD_TEST {
        c_str!("load-and-test")
    } else if cfg!(all(target_arch = "x86_64", CONFIG_JUMP_LABEL)) {
        c_str!("static-branch")
    } else {
        c_str!("atomic-key")
    };
    check.as_char_ptr()
}

/// Allocates an open gate, as a unit's; null if out of memory.
///
/// The C half sees the gate as an opaque pointer.
#[no_mangle]
pub extern "C" fn sdbench_gate_new() -> *const c_void {
    let Ok(name) = CString::try_from_fmt(fmt!("sdbench")) else {
        return core::ptr::null();
    };
    match KBox::pin_init(Gate::new(name, ()), GFP_KERNEL) {
        // SAFETY: The gate stays pinned: `sdbench_gate_free` rebuilds the
        // pinned box from this pointer.
        Ok(gate) => KBox::into_raw(unsafe { Pin::into_inner_unchecked(gate) })
            .cast_const()
            .cast(),
        Err(_) => core::ptr::null(),
    }
}

/// Frees a gate of [`sdbench_gate_new`]: closes, drains and waits out its
/// tail first, as the gate's drop does for every unit.
///
/// # Safety
///
/// `gate` comes from `sdbench_gate_new`, is not null, and no loop runs on
/// it; it is not used again.
#[no_mangle]
pub unsafe extern "C" fn sdbench_gate_free(gate: *const c_void) {
    // SAFETY: The caller's contract: `gate` came from `KBox::into_raw` of a
    // pinned box and is given back once.
    drop(unsafe { Pin::new_unchecked(KBox::from_raw(gate.cast_mut().cast::<BenchGate>())) });
}

/// Runs `iterations` times 8 enter+exit pairs through `gate`, each pass as
/// a file operation of safedetach takes it (`Gate::enter`, then the drop of
/// the `Pass`).
///
/// # Safety
///
/// `gate` comes from `sdbench_gate_new` and is not freed during the call.
#[no_mangle]
pub unsafe extern "C" fn sdbench_gate_loop(gate: *const c_void, iterations: c_ulong) {
    // SAFETY: The caller's contract.
    let gate = unsafe { &*gate.cast::<BenchGate>() };
    // An empty critical section: the pass ends at once.
    let pair = || {
        if let Ok(pass) = gate.enter() {
            drop(pass);
        }
    };
    for _ in 0..iterations {
        unroll8!(pair());
    }
}

/// Two per-CPU counters and nothing else: the floor of the gate, with
/// `PerCpuCounter::inc`, the instruction the gate uses.
struct BenchFloor {
    a: PerCpuCounter,
    b: PerCpuCounter,
}

/// Allocates the two counters of the Rust floor; null if out of memory.
#[no_mangle]
pub extern "C" fn sdbench_floor_new() -> *mut c_void {
    let (Ok(a), Ok(b)) = (PerCpuCounter::new(), PerCpuCounter::new()) else {
        return core::ptr::null_mut();
    };
    KBox::new(BenchFloor { a, b }, GFP_KERNEL)
        .map_or(core::ptr::null_mut(), |f| KBox::into_raw(f).cast())
}

/// Frees the counters of [`sdbench_floor_new`].
///
/// # Safety
///
/// `floor` comes from `sdbench_floor_new`, is not null, is not in use and
/// is not used again.
#[no_mangle]
pub unsafe extern "C" fn sdbench_floor_free(floor: *mut c_void) {
    // SAFETY: The caller's contract: given back once.
    drop(unsafe { KBox::from_raw(floor.cast::<BenchFloor>()) });
}

/// Runs `iterations` times 8 pairs of `PerCpuCounter::inc`.
///
/// # Safety
///
/// `floor` comes from `sdbench_floor_new` and is not freed during the call.
#[no_mangle]
pub unsafe extern "C" fn sdbench_floor_loop(floor: *const c_void, iterations: c_ulong) {
    // SAFETY: The caller's contract.
    let floor = unsafe { &*floor.cast::<BenchFloor>() };
    let pair = || {
        floor.a.inc();
        floor.b.inc();
    };
    for _ in 0..iterations {
        unroll8!(pair());
    }
}
