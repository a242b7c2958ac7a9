// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken builds, for proving that the tests have teeth.
//!
//! A normal build has none of these. `make check-teeth` builds the module
//! with `SAFEDETACH_VARIANT=<name>` (Kbuild turns it into
//! `--cfg safedetach_variant="<name>"`) and runs the case that must catch
//! it (scripts/teeth.sh names it). Each variant breaks one step of the
//! protocol. Where another step would hide the bug, the variant says which
//! one it also removes, and the teeth run a *control* build that removes
//! only that other step through the same case, which must pass: then what
//! the case catches is the bug the variant is named after.
//!
//! - `no_drain`: no drain and no wait for the cdev (nothing waits for open
//!   files): `rmmod` frees the units while files are open. Control:
//!   `no_cdev_wait`.
//! - `no_wake`: sleepers are not woken: `rmmod` waits for ever for a
//!   blocked reader.
//! - `wake_locked`: the unloader takes each FIFO's lock to wake its
//!   sleepers (as a `CondVar` needs): a reader whose user copy is stuck in
//!   a page fault under that lock holds up the wake-up of every later unit.
//! - `no_cdev_wait`: the drain is kept, but nothing waits for the cdev: the
//!   cdev's release (delayed by `CONFIG_DEBUG_KOBJECT_RELEASE`) puts an
//!   anchor that was freed.
//! - `entrances_first`: the drain sums entrances before exits, with a pause
//!   between the two sums. The cdev wait is kept, so the module is not
//!   freed early; the drain's own check (a `WARN` when it ends with a file
//!   still open) reports the early end.
//! - `online_only`: the drain sums online CPUs only, missing counts left on
//!   a CPU that went offline. The cdev wait is kept; the same `WARN` and the
//!   drain's report show it.
//! - `no_tail`: no RCU Tasks wait, and the anchor's release keeps running
//!   module text for 200 ms after it signalled the unloader (the tail
//!   window, widened). Control: `wide_tail`.
//! - `wide_tail`: the same widened window with the RCU Tasks wait kept: a
//!   correct build (the control of `no_tail` and `no_unit_tail`),
//!   test-only.
//! - `no_unit_tail`: a retired unit is freed without its own RCU Tasks
//!   wait (the module's tail at unload is kept), and the anchor's release
//!   is widened as in `no_tail`: a detached unit is freed while its
//!   anchor's release still reads it. Control: `wide_tail`.
//! - `no_key`: closing a gate does not enable the static key
//!   (rust/abstractions/static_key.rs), so passes never take the slow path that loads
//!   `closing`: calls on a closed gate are let in (those that would sleep
//!   still fail, as they test the flag itself before sleeping), and a
//!   detached unit's file can be opened again through `/proc/PID/fd/N`.
//! - `no_gate`: the gate counts nothing (benchmarks only: the baseline
//!   that shows what the gate costs; it is not safe to unload).
//! - `load_test`: the gate as it was before the static key, loading and
//!   testing `closing` at every pass (benchmarks: the cost of that load
//!   and branch); a correct build.

/// The name of the variant this module was built as, if any.
pub(crate) const NAME: Option<&str> = if cfg!(safedetach_variant = "no_drain") {
    Some("no_drain")
} else if cfg!(safedetach_variant = "no_wake") {
    Some("no_wake")
} else if cfg!(safedetach_variant = "wake_locked") {
    Some("wake_locked")
} else if cfg!(safedetach_variant = "no_cdev_wait") {
    Some("no_cdev_wait")
} else if cfg!(safedetach_variant = "entrances_first") {
    Some("entrances_first")
} else if cfg!(safedetach_variant = "online_only") {
    Some("online_only")
} else if cfg!(safedetach_variant = "no_tail") {
    Some("no_tail")
} else if cfg!(safedetach_variant = "no_unit_tail") {
    Some("no_unit_tail")
} else if cfg!(safedetach_variant = "wide_tail") {
    Some("wide_tail")
} else if cfg!(safedetach_variant = "no_key") {
    Some("no_key")
} else if cfg!(safedetach_variant = "no_gate") {
    Some("no_gate")
} else if cfg!(safedetach_variant = "load_test") {
    Some("load_test")
} else {
    None
};

/// Skip the drain of the gates.
pub(crate) const SKIP_DRAIN: bool = cfg!(safedetach_variant = "no_drain");
/// Skip waking sleepers.
pub(crate) const SKIP_WAKE: bool = cfg!(safedetach_variant = "no_wake");
/// Take the FIFO's lock to wake its sleepers.
pub(crate) const WAKE_LOCKED: bool = cfg!(safedetach_variant = "wake_locked");
/// Skip waiting for the cdev to be released.
pub(crate) const SKIP_CDEV_WAIT: bool = SKIP_DRAIN || cfg!(safedetach_variant = "no_cdev_wait");
/// Sum entrances before exits in the drain.
pub(crate) const ENTRANCES_FIRST: bool = cfg!(safedetach_variant = "entrances_first");
/// Sum the counters of online CPUs only.
pub(crate) const ONLINE_ONLY: bool = cfg!(safedetach_variant = "online_only");
/// Skip the RCU Tasks grace period.
pub(crate) const SKIP_TAIL: bool = cfg!(safedetach_variant = "no_tail");
/// Skip the RCU Tasks grace period of a retired unit (not the module's).
pub(crate) const SKIP_UNIT_TAIL: bool = cfg!(safedetach_variant = "no_unit_tail");
/// Keep executing module text for a while after the anchor's release.
pub(crate) const WIDE_TAIL: bool =
    SKIP_TAIL || SKIP_UNIT_TAIL || cfg!(safedetach_variant = "wide_tail");
/// Count nothing at all.
pub(crate) const NO_GATE: bool = cfg!(safedetach_variant = "no_gate");
/// Never enable the static key when a gate closes.
pub(crate) const NO_KEY: bool = cfg!(safedetach_variant = "no_key");
/// Load and test `closing` at every pass, without the static key.
pub(crate) const LOAD_TEST: bool = cfg!(safedetach_variant = "load_test");
