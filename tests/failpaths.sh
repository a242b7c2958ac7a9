#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Failure paths: every allocation the module makes (or makes the kernel make
# on its behalf) while it loads, and while it opens a file, is made to fail
# in turn, with /proc/thread-self/fail-nth (Documentation/fault-injection/).
# Each failure must give the caller an errno and leave nothing behind: no
# device node, class, device numbers or module, no report in the kernel
# log; and the next attempt must work.
#
# Only allocations with the module's code on the stack are counted and
# failed (the fault-injection stack filter, require-start/-end set to the
# module area above the kernel image): the module loader's own allocations
# are not the module's failure paths, and some of them, such as the
# vmalloc() of the file's image, print a stack on failure by design.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

FI=/sys/kernel/debug

# fi_setup: fail-nth drives failslab and fail_page_alloc, for allocations
# from module code only; one notice line per injected failure, no stack.
fi_setup() {
	local attr start rstart rend
	[ -e /proc/thread-self/fail-nth ] || fail "no /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION_DEBUG_FS)"
	start=$(awk '$3 == "_end" { print $1 }' /proc/kallsyms)
	[ -n "$start" ] || fail "no _end in /proc/kallsyms"
	# kmemleak's own bookkeeping allocations (made inside every allocation
	# it tracks) are not the module's, and a failure there is absorbed by
	# kmemleak's emergency pool: reject them (mm/kmemleak.c's entry points).
	# (The kernel's own symbols come first in /proc/kallsyms, by address.)
	read -r rstart rend < <(awk '
		{ addr[NR] = $1 }
		$3 ~ /^kmemleak_(alloc|alloc_percpu|vmalloc|free|free_percpu|free_part|update_trace|not_leak|ignore|scan_area|no_scan)$/ {
			if (!lo) lo = NR
			hi = NR
		}
		END { if (lo) print addr[lo], addr[hi + 1] }' /proc/kallsyms)
	[ -n "$rstart" ] || fail "no kmemleak symbols in /proc/kallsyms"
	for attr in failslab fail_page_alloc; do
		echo 0 >$FI/$attr/probability
		echo 1 >$FI/$attr/verbose
		echo N >$FI/$attr/ignore-gfp-wait
		echo 32 >$FI/$attr/stacktrace-depth
		echo "0x$start" >$FI/$attr/require-start
		echo 0xffffffffff000000 >$FI/$attr/require-end
		echo "0x$rstart" >$FI/$attr/reject-start
		echo "0x$rend" >$FI/$attr/reject-end
	done
	echo 0 >$FI/fail_page_alloc/min-order
}

# nothing_left: no trace of the module is left.
nothing_left() {
	local what=
	is_unloaded || what+=" /sys/module/$MODNAME"
	compgen -G "${DEV}*" >/dev/null && what+=" $(echo ${DEV}*)"
	[ -e /sys/class/$MODNAME ] && what+=" /sys/class/$MODNAME"
	grep -qw $MODNAME /proc/devices && what+=" its device numbers (/proc/devices)"
	[ -z "$what" ] || fail "left behind:$what"
}

test_load_failures() {
	local n=0 res failed=0 absorbed=0 errnos
	fi_setup
	while :; do
		n=$((n + 1))
		res=$("$SDTOOL" failnth finit "$SAFEDETACH_KO" $n "units=1")
		case $res in
		*": OK, not reached")
			break ;;
		*": OK, injected")
			# The failure was absorbed (a fallback): the module works.
			absorbed=$((absorbed + 1))
			wait_until 10 "${DEV}0" test -c ${DEV}0
			unload 60 ;;
		*", injected")
			failed=$((failed + 1))
			res=${res#*: }
			errnos+=" ${res%%,*}"
			nothing_left ;;
		*)
			fail "failing point $n: $res" ;;
		esac
		[ $n -lt 2000 ] || fail "more than 2000 failing points: fail-nth never stopped firing"
	done
	wait_until 10 "${DEV}0" test -c ${DEV}0
	printf 'after' >${DEV}0
	[ "$(dd if=${DEV}0 bs=5 count=1 status=none)" = after ] || fail "the module loaded after the failures does not work"
	unload
	nothing_left
	errnos=$(tr ' ' '\n' <<<"$errnos" | awk 'NF { n[$1]++ } END { for (e in n) { printf "%s%s x%d", s, e, n[e]; s = ", " } }')
	log "$((n - 1)) failing points in module init: $failed failed the load ($errnos), $absorbed absorbed; the next load works"
	[ $failed -gt 0 ] || fail "no allocation of the module's init could be made to fail"
}

test_open_failures() {
	local n=0 res failed=0
	fi_setup
	load
	while :; do
		n=$((n + 1))
		res=$("$SDTOOL" failnth open ${DEV}1 $n)
		case $res in
		*": OK, not reached") break ;;
		*": ENOMEM, injected") failed=$((failed + 1)) ;;
		*) fail "failing point $n of open: $res" ;;
		esac
		[ $n -lt 200 ] || fail "more than 200 failing points in open"
	done
	# Nothing leaked: only the stats tool's own file is open, no call is
	# in flight, and rmmod does not wait.
	"$SDTOOL" stats ${DEV}1 >"$WORK/st.out"
	expect_out st ' open_files=1 in_flight=1 '
	log "$((n - 1)) failing points in open(2), all ENOMEM; nothing leaked"
	[ $failed -gt 0 ] || fail "no allocation of open could be made to fail"
	unload 30
	nothing_left
}

require_module
ktap_print_header
ktap_set_plan 2
run_case "every failing allocation in module init: an errno, nothing left" test_load_failures
run_case "every failing allocation in open(2): ENOMEM, nothing leaked" test_open_failures
ktap_finished
