#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make jump-probe`: does this machine's QEMU run the kernel's static-key
# patching safely, under each TCG threading mode? No safedetach code is
# involved: tools/jump-probe/keyprobe.c, a C module built against the bench
# kernel (the only cached flavour with CONFIG_JUMP_LABEL, built by setup.sh
# on first use), toggles a static key of its own with static_branch_inc()
# and static_branch_dec() for SECONDS while a kthread on every vCPU runs
# its sites. It is loaded in a 2-vCPU guest with QEMU's default
# multi-threaded TCG (a host thread per vCPU) and then with
# `-accel tcg,thread=single` (scripts/vm-run.sh, SAFEDETACH_TCG_THREAD).
# For each mode it prints the module's own count of toggles, or the oops
# that ended the guest. Documentation/testing.rst ("Kernel flavours") says
# what the result means for the static branch of rust/gate.rs.
#
# Usage: scripts/jump-probe.sh [SECONDS [RUNS]]   (default 20 s, 3 runs of
# each mode)
# Exit status: 0 if the probe ran in both modes (whatever it found), 1 if
# it could not run.
set -euo pipefail
export SAFEDETACH_KERNEL=bench
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

secs=${1:-20} runs=${2:-3}
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "SECONDS: '$secs' is not a whole number of seconds"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS: '$runs' is not a whole number"
[ "$SAFEDETACH_ARCH" = x86_64 ] || die "the probe is x86_64 only (text_poke_bp)"

"$SAFEDETACH_TOP/scripts/setup.sh"
kdir=$(kernel_dir)
grep -q '^CONFIG_JUMP_LABEL=y' "$kdir/.config" || die "$kdir has no CONFIG_JUMP_LABEL"

out=out/jump-probe
rm -rf "$out" && mkdir -p "$out/module"
cp tools/jump-probe/keyprobe.c tools/jump-probe/Kbuild "$out/module/"
step "jump-probe: building keyprobe.ko against $kdir"
kmake -s -C "$kdir" M="$SAFEDETACH_TOP/$out/module" modules >"$out/build.log" 2>&1 ||
	{ cat "$out/build.log" >&2; die "building keyprobe.ko failed"; }
# One struct jump_entry per site: with CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE,
# two s32 offsets and a long (16 bytes on x86_64).
size=$(llvm-objdump$LLVM -h "$out/module/keyprobe.ko" | awk '$2 == "__jump_table" { print $3 }')
echo "keyprobe.ko: $((0x${size:-0} / 16)) static-branch sites (__jump_table entries), patched at every toggle"

for mode in multi single; do
	for run in $(seq "$runs"); do
		step "jump-probe: thread=$mode, run $run of $runs: $secs s of toggles in a 2-vCPU guest"
		log=$out/kernel-$mode-$run.log
		rc=0
		SAFEDETACH_TCG_THREAD=$mode scripts/vm-run.sh --cpus 2 --timeout $((secs + 240)) \
			--log "$log" -- insmod "$SAFEDETACH_TOP/$out/module/keyprobe.ko" seconds="$secs" \
			>"$out/vm-$mode-$run.txt" 2>&1 || rc=$?
		result=$(grep -o 'keyprobe: [0-9]* toggles.*' "$log" | tail -n1 || true)
		oops=$(grep -m1 -oE '(Oops|BUG|general protection fault)[^[]*' "$log" || true)
		rip=$(grep -m1 -oE 'RIP: [0-9a-f]+:[^ ]+' "$log" || true)
		# When the oops came: after the module's first log line, or before it.
		when=$(awk '/keyprobe: loading/ && !t0 { t0 = substr($0, 2) + 0 }
			/(Oops|BUG)/ { if (t0) printf "%.2f s after the module was loaded", substr($0, 2) - t0
				else printf "at boot, %.1f s in, before the module was loaded", substr($0, 2); exit }' "$log")
		if [ -n "$oops" ]; then
			echo "thread=$mode run $run: the guest crashed: ${oops% } at ${rip#RIP: 0010:}, $when ($log)"
		elif [ $rc -eq 0 ] && [ -n "$result" ]; then
			echo "thread=$mode run $run: no oops; ${result#keyprobe: }"
		else
			echo "thread=$mode run $run: no result (vm-run status $rc): see $out/vm-$mode-$run.txt and $log"
			exit 1
		fi
	done
done
