// SPDX-License-Identifier: GPL-2.0
/*
 * The C wrappers that safedetach's Rust code calls (rust/abstractions/ffi.rs), compiled
 * into sdbench.ko as they are compiled into safedetach.ko, so that
 * sdbench_gate.rs builds the driver's gate unchanged. (This also gives
 * sdbench.ko safedetach's `units` and `capacity` parameters, unused.)
 */
#include "../rust/abstractions/helpers.c"
