#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build safedetach.ko in a directory of its own, optionally as one of the
# variants of rust/variant.rs, so that several builds can live side by side.
#
# Usage: scripts/build-module.sh [VARIANT] OUTDIR
#   VARIANT: a name of rust/variant.rs (no_drain, no_wake, no_tail,
#   no_unit_tail, entrances_first, no_gate, ...)
#   The module is OUTDIR/safedetach.ko; KDIR as for `make`.
set -euo pipefail
. "$(dirname -- "$0")/env.sh"

variant=
[ $# -eq 2 ] && { variant=$1; shift; }
[ $# -eq 1 ] || die "usage: $0 [VARIANT] OUTDIR"
out=$(mkdir -p -- "$1" && cd -- "$1" && pwd)
kdir=${KDIR:-$(kernel_dir)}

step "module: building ${variant:-the normal} safedetach.ko in $out"
mkdir -p "$out/include"
cp -- "$SAFEDETACH_TOP/Kbuild" "$out/"
rm -rf -- "$out/rust" "$out/include/uapi"
cp -r -- "$SAFEDETACH_TOP/rust" "$out/rust"
cp -r -- "$SAFEDETACH_TOP/include/uapi" "$out/include/uapi"
kmake -s -C "$kdir" M="$out" SAFEDETACH_VARIANT="$variant" modules 2>&1 |
	{ grep -Ev '^make\[|^$' || true; }
[ -f "$out/safedetach.ko" ] || die "no $out/safedetach.ko"
