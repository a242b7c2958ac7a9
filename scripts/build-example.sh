#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the minimal driver of Documentation/driver-guide.rst ("A minimal
# complete driver", gatedemo.ko) the way the guide tells a driver author
# to: its Kbuild and its crate root are taken from the guide's literal
# blocks, next to copies of the files of "What to copy", with the edit the
# guide asks for in helpers.c (no include/uapi/safedetach.h and no
# static_assert on it). The module parameters of helpers.c are left in:
# removing them is a clean-up, not needed to build. Warnings fail the
# build, as "Items the new driver does not use produce dead_code warnings;
# delete them" would otherwise go unchecked: the copied files' unused items
# are allowed with a crate-level `allow(dead_code)` that this script adds.
#
# Usage: scripts/build-example.sh OUTDIR    (KDIR as for `make`)
set -euo pipefail
. "$(dirname -- "$0")/env.sh"

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
out=$(mkdir -p -- "$1" && cd -- "$1" && pwd)
kdir=${KDIR:-$(kernel_dir)}
guide=$SAFEDETACH_TOP/Documentation/driver-guide.rst

# block TEXT: the literal block that follows the first line that ends in
# TEXT (which ends in "::"), without its 4-space indentation.
block() {
	TEXT=$1 awk '
		!start && substr($0, length($0) - length(ENVIRON["TEXT"]) + 1) == ENVIRON["TEXT"] { start = 1; next }
		start == 1 && /^$/ { next }
		start == 1 { start = 2 }
		start == 2 && /^[^ \t]/ { exit }
		start == 2 { sub(/^    /, ""); print }
	' "$guide" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
}

step "example: building the driver guide's gatedemo.ko in $out"
rm -rf -- "$out/rust"
mkdir -p "$out/rust/abstractions"
block 'the ``cfg`` that ``variant.rs`` tests::' >"$out/Kbuild"
block "\"the driver guide's example\")::" >"$out/rust/gatedemo_main.rs"
[ -s "$out/Kbuild" ] || die "no Kbuild block found in $guide"
[ -s "$out/rust/gatedemo_main.rs" ] || die "no gatedemo block found in $guide"
cp -- "$SAFEDETACH_TOP"/rust/{gate,variant}.rs "$out/rust/"
for f in barrier chrdev completion diag ffi percpu static_key wait; do
	cp -- "$SAFEDETACH_TOP/rust/abstractions/$f.rs" "$out/rust/abstractions/"
done
cp -- "$SAFEDETACH_TOP"/rust/abstractions/helpers.h "$out/rust/abstractions/"
sed -e '/#include "..\/..\/include\/uapi\/safedetach.h"/d' -e '/^static_assert(/d' \
	"$SAFEDETACH_TOP/rust/abstractions/helpers.c" >"$out/rust/abstractions/helpers.c"
# The copied files' items that gatedemo does not use.
sed -i '0,/^use /s//#![allow(dead_code)]\n\nuse /' "$out/rust/gatedemo_main.rs"
kmake -C "$kdir" M="$out" modules >"$out/build.log" 2>&1 || { cat "$out/build.log"; die "gatedemo.ko did not build"; }
if grep -E '^(warning|error)' "$out/build.log"; then
	cat "$out/build.log"
	die "gatedemo.ko built with warnings"
fi
[ -f "$out/gatedemo.ko" ] || die "no $out/gatedemo.ko"
echo "$out/gatedemo.ko"
