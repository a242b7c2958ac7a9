#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: set up what is missing, build the module, boot the debug
# kernel in QEMU and show safedetach working and unloading under load
# (scripts/demo-guest.sh), then print a short summary.
set -euo pipefail
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

build_for_vm

mkdir -p out
log=out/demo-kernel.log
step "vm: running the demo"
rc=0
scripts/vm-run.sh --timeout 600 --log "$log" -- scripts/demo-guest.sh || rc=$?
echo
if [ $rc -eq 0 ]; then
	echo "demo: rmmod under load returned 0, the clients stopped with ENODEV, the holder was named, the kernel log is clean."
else
	echo "demo: FAILED (status $rc)"
fi
echo "demo: full kernel log in $log"
exit $rc
