#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the safedetach selftests (TEST_PROGS of the Makefile, or the scripts
# named on the command line), one KTAP document each, with a timeout per
# script taken from `settings`. Meant to run inside the test VM as root.
set -uo pipefail
cd -- "$(dirname -- "$0")"

timeout=$(sed -n 's/^timeout=//p' settings)
progs=("$@")
if [ ${#progs[@]} -eq 0 ]; then
	read -ra progs <<<"$(sed -n 's/^TEST_PROGS := //p' Makefile)"
fi

echo "# safedetach selftests on $(uname -r), $(nproc) CPUs: ${progs[*]}"
rc=0
for prog in "${progs[@]}"; do
	echo "# selftests: safedetach: $prog"
	timeout --kill-after=10 "$timeout" "./$prog"
	st=$?
	case $st in
	0) ;;
	4) echo "# $prog: skipped" ;;
	124 | 137) echo "# $prog: timed out after $timeout s"; rc=1 ;;
	*) rc=1 ;;
	esac
done
exit $rc
