# SPDX-License-Identifier: GPL-2.0
#
# What fails a test run in the kernel log, and which taint flags are
# expected. Sourced by tests/lib.sh (every case, and the end-of-run checks
# in the guest) and by scripts/check.sh (the guest's whole console log).

# Kernel log lines that fail a test case, whatever the case checked. Also
# used on the whole log of a run (scripts/check.sh, tests/run_tests.sh).
KLOG_BAD='BUG:|WARNING:|KASAN|Oops|general protection fault|Kernel panic|'
KLOG_BAD+='kernel BUG|INFO: task .* blocked for more than|soft lockup|hard LOCKUP|'
KLOG_BAD+='detected stall|possible circular locking|possible recursive locking|'
KLOG_BAD+='inconsistent lock state|lock held when returning|UBSAN|refcount_t:|'
KLOG_BAD+='list_add corruption|list_del corruption|Unable to handle|segfault at|'
# x86_64 prints a stack dump under "Call Trace:", arm64 under "Call trace:".
KLOG_BAD+='Call Trace:|Call trace:|page allocation failure|cannot create duplicate filename|'
KLOG_BAD+='ODEBUG:|printk messages dropped|'
KLOG_BAD+='lockdep is turned off|DEBUG_LOCKS_WARN_ON|RCU used illegally'

# Taint flags, by bit (kernel/panic.c). O (an out-of-tree module, bit 12)
# is expected once safedetach.ko has been loaded; any other new flag fails.
TAINT_LETTERS=PFSRMBUDAWCIOELKXTN
TAINT_EXPECTED=$((1 << 12))
