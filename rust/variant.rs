// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken builds, for proving that the tests have teeth.
//!
//! A normal build has none of these. `make check-teeth` builds the module
//! with `SAFEDETACH_VARIANT=<name>` (Kbuild turns it into
//! `--cfg safedetach_variant="<name>"`) and runs the tests that must catch
//! it. Some steps of the unload protocol overlap (waiting for the cdev to be
//! released also waits for every open file), so a variant removes every step
//! that would hide its bug, and widens the window it opens:
//!
//! - `no_drain`: no drain and no wait for the cdev: `rmmod` frees the units
//!   while calls and files are still inside.
//! - `no_wake`: sleepers are not woken: `rmmod` waits for ever for a
//!   blocked reader.
//! - `no_tail`: no RCU Tasks wait and no wait for the cdev, and `release`
//!   keeps running module text for 20 ms after its exit was counted.
//! - `entrances_first`: the drain sums entrances before exits, with a pause
//!   between the two sums, and does not wait for the cdev.
//! - `no_gate`: the gate counts nothing (benchmarks only: the baseline
//!   that shows what the gate costs; it is not safe to unload).

/// The name of the variant this module was built as, if any.
pub(crate) const NAME: Option<&str> = if cfg!(safedetach_variant = "no_drain") {
    Some("no_drain")
} else if cfg!(safedetach_variant = "no_wake") {
    Some("no_wake")
} else if cfg!(safedetach_variant = "no_tail") {
    Some("no_tail")
} else if cfg!(safedetach_variant = "entrances_first") {
    Some("entrances_first")
} else if cfg!(safedetach_variant = "no_gate") {
    Some("no_gate")
} else {
    None
};

/// Skip the drain of the gates.
pub(crate) const SKIP_DRAIN: bool = cfg!(safedetach_variant = "no_drain");
/// Skip waking sleepers.
pub(crate) const SKIP_WAKE: bool = cfg!(safedetach_variant = "no_wake");
/// Skip the RCU Tasks grace period, and spin in `release` after the exit.
pub(crate) const SKIP_TAIL: bool = cfg!(safedetach_variant = "no_tail");
/// Sum entrances before exits in the drain.
pub(crate) const ENTRANCES_FIRST: bool = cfg!(safedetach_variant = "entrances_first");
/// Skip waiting for the cdev to be released.
pub(crate) const SKIP_CDEV_WAIT: bool = SKIP_DRAIN || SKIP_TAIL || ENTRANCES_FIRST;
/// Count nothing at all.
pub(crate) const NO_GATE: bool = cfg!(safedetach_variant = "no_gate");
