#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: measure what the gate costs (Documentation/benchmarks.rst).
#
#   1. SAFEDETACH_KERNEL=bench scripts/setup.sh: the benchmark kernel (the
#      test kernel without KASAN and lockdep), cached after the first build;
#   2. build, under build/bench/: the micro-benchmark module sdbench.ko
#      (bench/: a C harness and the driver's own rust/gate.rs and
#      rust/abstractions/percpu.rs, compiled in by bench/sdbench_gate.rs)
#      twice (as shipped, and with SAFEDETACH_VARIANT=load_test: the gate
#      that loads and tests `closing` at every pass), safedetach.ko
#      twice (as shipped, and with SAFEDETACH_VARIANT=no_gate), the
#      programs of bench/ and tests/sdtool;
#   3. on the host: count the instructions of the gate's fast path in both
#      safedetach.ko and sdbench.ko (objdump: the same source must compile
#      to the same window in both), run tests/fastpath.sh, and run
#      bench/sdnative.c, a userspace analog of the micro-benchmark that the
#      host CPU runs natively (to see what TCG does to the ratios);
#   4. in a QEMU guest (TCG) running the benchmark kernel, for each vCPU
#      count of BENCH_CPUS (default "1 2 4 8"): scripts/bench-guest.sh,
#      all of it (micro-benchmark, read/write, rmmod under load, rmmod of
#      64 idle units, detach under load) at 2 vCPUs, the micro-benchmark
#      alone at the other counts (the sweep);
#   5. scripts/bench-report.py: tables on stdout, and an SVG plot.
#
# Everything goes to out/bench-<time>/ (out/bench-latest links to it):
# results.txt (the raw numbers), summary.txt (the printed tables),
# benchmarks.svg, kernel-<N>cpu.log per guest (kernel.log links to the
# 2-vCPU one). With --update-docs, results.txt,
# summary.txt and benchmarks.svg are also copied to Documentation/bench/,
# and the tables in Documentation/benchmarks.rst are replaced with the ones
# printed (the prose around them is not: reread it).
#
# Usage: scripts/bench.sh [--update-docs] [--quick]
#   --quick   fewer and shorter runs, vCPU sweep 1 and 2 only (a smoke test
#             of the whole pipeline; its numbers are not worth documenting)
#   BENCH_CPUS="1 2 4 8"  (environment or make variable) the vCPU counts of
#             the micro-benchmark's sweep; must include 2. A guest with
#             more vCPUs than the host has CPUs is oversubscribed (its
#             vCPUs take turns on the host's CPUs), and the report says so.
#   BENCH_PHASES="micro rw unload units unplug"  the parts run at 2 vCPUs
#             (scripts/bench-guest.sh); with BENCH_CPUS=2, for example
#             BENCH_PHASES=unplug measures the detach under load alone.
#
# The guest's other settings can be changed through the BENCH_* variables
# that scripts/bench-guest.sh documents. Under TCG every instruction is
# emulated: absolute times are not those of real hardware, only ratios and
# instruction counts carry over.
set -euo pipefail
export SAFEDETACH_KERNEL=bench
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

update_docs=0
quick=0
for arg; do
	case $arg in
	--update-docs) update_docs=1 ;;
	--quick) quick=1 ;;
	-h|--help) sed -n '/^# Usage:/,/^# The guest/{/^# The guest/d; s/^# \{0,1\}//; p}' "$0"; exit 0 ;;
	*) die "unknown argument '$arg' (see --help)" ;;
	esac
done
if [ $quick = 1 ]; then
	export BENCH_MICRO_RUNS=${BENCH_MICRO_RUNS:-3} BENCH_MICRO_MS=${BENCH_MICRO_MS:-20}
	export BENCH_RW_RUNS=${BENCH_RW_RUNS:-2} BENCH_RW_SECS=${BENCH_RW_SECS:-0.3}
	export BENCH_UNLOAD_RUNS=${BENCH_UNLOAD_RUNS:-1} BENCH_UNLOAD_CLIENTS=${BENCH_UNLOAD_CLIENTS:-0 8}
	export BENCH_UNLOAD_WARMUP=${BENCH_UNLOAD_WARMUP:-1}
	export BENCH_UNITS_RUNS=${BENCH_UNITS_RUNS:-1} BENCH_UNPLUG_RUNS=${BENCH_UNPLUG_RUNS:-1}
	BENCH_CPUS=${BENCH_CPUS:-1 2}
fi
# The full benchmark runs at CPUS vCPUs, the micro-benchmark at every count
# of the sweep.
CPUS=2
SWEEP=${BENCH_CPUS:-1 2 4 8}
case " $SWEEP " in
*" $CPUS "*) ;;
*) die "BENCH_CPUS='$SWEEP' must include $CPUS (the full benchmark runs at $CPUS vCPUs)" ;;
esac
for n in $SWEEP; do
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 64 ] || die "BENCH_CPUS: '$n' is not a vCPU count (1..64)"
done

started=$SECONDS
"$SAFEDETACH_TOP/scripts/setup.sh"
kdir=$(kernel_dir)
kconfig=$kdir/.config
grep -q '^CONFIG_KASAN=y' "$kconfig" && die "$kdir is a KASAN kernel, not the benchmark kernel"

B=build/bench
mkdir -p $B

# build_module DIR [MAKE-ARGS...]: build the module whose sources are in DIR.
build_module() {
	local dir=$1
	shift
	if ! kmake -C "$kdir" M="$SAFEDETACH_TOP/$dir" "$@" modules 2>&1 |
		{ grep -Ev '^make\[|^make: (Entering|Leaving)|^$' || true; } | sed 's/^/    /'; then
		die "building $dir failed"
	fi
}

# copy_safedetach DIR: the sources of safedetach.ko, without build products.
copy_safedetach() {
	rm -rf "$1"
	mkdir -p "$1/rust/abstractions"
	cp Kbuild "$1/"
	cp rust/*.rs "$1/rust/"
	cp rust/abstractions/*.rs rust/abstractions/*.c rust/abstractions/*.h "$1/rust/abstractions/"
	cp -r include "$1/"
}

# bench/sdbench_gate.rs compiles ../rust/gate.rs: copy bench/ next to the
# driver's sources, as in the repository.
step "bench: building sdbench.ko (bench/ with the driver's rust/gate.rs) against $kdir"
rm -rf $B/micro
copy_safedetach $B/micro
mkdir -p $B/micro/bench
cp bench/Kbuild bench/sdbench_main.c bench/sdbench_gate.rs bench/sdbench_helpers.c $B/micro/bench/
build_module $B/micro/bench
step "bench: building sdbench.ko again with SAFEDETACH_VARIANT=load_test ($B/micro-lt: the gate that loads and tests closing)"
rm -rf $B/micro-lt
copy_safedetach $B/micro-lt
mkdir -p $B/micro-lt/bench
cp bench/Kbuild bench/sdbench_main.c bench/sdbench_gate.rs bench/sdbench_helpers.c $B/micro-lt/bench/
build_module $B/micro-lt/bench SAFEDETACH_VARIANT=load_test
step "bench: building safedetach.ko as shipped ($B/gate)"
copy_safedetach $B/gate
build_module $B/gate
step "bench: building safedetach.ko with SAFEDETACH_VARIANT=no_gate ($B/nogate)"
copy_safedetach $B/nogate
build_module $B/nogate SAFEDETACH_VARIANT=no_gate
step "bench: building bench/sdrw.c, sdunload.c, sdunplug.c, sdnative.c and tests/sdtool"
gcc -O2 -Wall -Wextra -Werror -o $B/sdrw bench/sdrw.c
gcc -O2 -Wall -Wextra -Werror -o $B/sdunload bench/sdunload.c
gcc -O2 -Wall -Wextra -Werror -o $B/sdunplug bench/sdunplug.c
gcc -O2 -Wall -Wextra -Werror -pthread -o $B/sdnative bench/sdnative.c
make -s -C tests

out=out/bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
ln -sfn "$(basename "$out")" out/bench-latest
results=$out/results.txt

# --- static: the gate's fast path in both modules ----------------------------
objdump=$(command -v llvm-objdump-19 || command -v objdump)
# fast_path KO NAME FUNCTION-REGEX: one "static" line per per-CPU increment
# in the matching functions, with the instructions from it to the next
# conditional branch (the test of `closing`), or to the static branch's NOP
# right after it (with jump labels): the window tests/fastpath.sh
# checks, except that an unconditional `jmp` is followed to its target (the
# compiler sometimes merges the test of two paths into one block). load=1
# if the instruction before the increment loads its per-CPU pointer.
fast_path() {
	"$objdump" -d --no-show-raw-insn "$1" | awk -v ko="$2" -v want="$3" '
		function flush(   i, a, n, win, t, reg, load) {
			for (i = 1; i <= nsites; i++) {
				a = site[i]; n = 0; win = ""
				# Is the per-CPU pointer loaded right before? (It is
				# in both modules: the asm!/barrier() forces a reload.)
				reg = insn[a]; sub(/^incq %gs:\(/, "", reg); sub(/\)$/, "", reg)
				load = (prev_of[a] in insn) && index(insn[prev_of[a]], "mov") == 1 &&
					substr(insn[prev_of[a]], length(insn[prev_of[a]]) - length(reg) + 1) == reg
				while (a != "" && n < 24) {
					win = win (n ? "; " : "") insn[a]; n++
					if (insn[a] ~ /^j[a-z]+ / && insn[a] !~ /^jmp /) break
					if (insn[a] ~ /^ret/) break
					# The static branch: the NOP that a closing gate
					# patches into a jump (rust/abstractions/static_key.rs).
					if (n == 2 && insn[a] ~ /^nop/) break
					if (insn[a] ~ /^jmp /) {
						t = insn[a]; sub(/^jmp (0x)?/, "", t); sub(/ .*/, "", t)
						a = (t in insn) ? t : ""
					} else
						a = next_of[a]
				}
				printf "static ko=%s fn=%s insns=%d load=%d window=%s\n", ko, fn, n, load, win
			}
			nsites = 0; prev = ""
			split("", insn); split("", next_of); split("", prev_of)
		}
		/^[0-9a-f]+ <.*>:$/ { flush(); fn = $2; gsub(/[<>:]/, "", fn); next }
		/^ *[0-9a-f]+:/ {
			addr = $1; sub(/:$/, "", addr)
			line = $0
			sub(/^ *[0-9a-f]+:[ \t]*/, "", line)
			sub(/[ \t]*#.*$/, "", line)
			gsub(/[ \t]+/, " ", line)
			if (line == "") next
			insn[addr] = line
			if (prev != "") { next_of[prev] = addr; prev_of[addr] = prev }
			prev = addr
			if (fn ~ want && line ~ /^incq %gs:\(%[a-z0-9]+\)$/) site[++nsites] = addr
		}
		END { flush() }'
}
step "bench: counting the gate's instructions in safedetach.ko and sdbench.ko (objdump)"
{
	printf '# bench: scripts/bench.sh, %s\n' "$(date -Is)"
	printf '# source: %s\n' "$(git describe --always --dirty 2>/dev/null || echo unknown)"
	printf '# host: %s, %s CPUs, %s\n' \
		"$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | sort -u | head -n1)" \
		"$(nproc)" "$(uname -sr)"
	printf '# vm: %s, TCG (-accel tcg,thread=multi), %s vCPUs (micro-benchmark also at %s), 2G, virtme-ng %s\n' \
		"$(qemu-system-x86_64 --version | head -n1)" "$CPUS" "$(echo $SWEEP | tr ' ' ',')" "$VNG_VERSION"
	printf '# sweep: host_cpus=%s vcpus=%s\n' "$(nproc)" "$(echo $SWEEP | tr ' ' ',')"
	printf '# kernel: %s (%s), %s, rustc %s\n' \
		"$(make -s -C "$kdir" kernelversion 2>/dev/null)" "SAFEDETACH_KERNEL=bench" \
		"$(grep -Eo '^CONFIG_PREEMPT(_RCU|_VOLUNTARY|_NONE)?=y' "$kconfig" | tr '\n' ' ' | sed 's/ $//')" \
		"$("$RUSTC" --version | cut -d' ' -f2)"
	printf '# load: loadavg %s before the run; other QEMU processes running: %s\n' \
		"$(cut -d' ' -f1-3 /proc/loadavg)" "$(pgrep -c qemu-system || true)"
	printf '# settings: micro %s runs x %s ms; rw %s runs x %s s; unload %s runs, clients %s; units %s runs; unplug %s runs, %s clients\n' \
		"${BENCH_MICRO_RUNS:-7}" "${BENCH_MICRO_MS:-100}" "${BENCH_RW_RUNS:-7}" \
		"${BENCH_RW_SECS:-1}" "${BENCH_UNLOAD_RUNS:-5}" "${BENCH_UNLOAD_CLIENTS:-0 1 8 64}" \
		"${BENCH_UNITS_RUNS:-5}" "${BENCH_UNPLUG_RUNS:-5}" "${BENCH_UNPLUG_CLIENTS:-64}"
	# safedetach's gate is inlined into its file operations (rust/fops.rs).
	fast_path $B/gate/safedetach.ko safedetach 4fops
	# sdbench's gate is the same source, inlined into its Rust loop.
	fast_path $B/micro/bench/sdbench.ko sdbench '^sdbench_gate_loop$'
	fast_path $B/micro-lt/bench/sdbench.ko sdbench_load_test '^sdbench_gate_loop$'
} >"$results"
grep -q '^static ko=safedetach ' "$results" || die "no gate increment found in $B/gate/safedetach.ko"
grep -q '^static ko=sdbench ' "$results" || die "no gate increment found in $B/micro/bench/sdbench.ko"

step "bench: tests/fastpath.sh $B/gate/safedetach.ko"
KTAP_HELPERS=$kdir/tools/testing/selftests/kselftest/ktap_helpers.sh \
	tests/fastpath.sh $B/gate/safedetach.ko >"$out/fastpath.txt" 2>&1 || true
sed 's/^/    /' "$out/fastpath.txt"
grep -E '^(not )?ok [0-9]' "$out/fastpath.txt" | sed 's/^/# fastpath: /' >>"$results"

# --- native: the same loops on the host CPU, without TCG --------------------
native_runs=${BENCH_MICRO_RUNS:-7}
native_ms=${BENCH_MICRO_MS:-100}
step "bench: host-native analog of the gate (bench/sdnative.c, $native_runs runs x 6 x $native_ms ms)"
$B/sdnative "$native_runs" "$native_ms" >>"$results"

# --- the guests -----------------------------------------------------------
echo "NOTE: the guest is emulated by QEMU TCG: absolute times are not those of real"
echo "      hardware; only ratios between primitives and instruction counts carry over."
genv=()
for v in BENCH_MICRO_RUNS BENCH_MICRO_MS BENCH_RW_RUNS BENCH_RW_SECS \
	BENCH_UNLOAD_RUNS BENCH_UNLOAD_CLIENTS BENCH_UNLOAD_WARMUP \
	BENCH_UNITS_RUNS BENCH_UNPLUG_RUNS BENCH_UNPLUG_CLIENTS; do
	[ -z "${!v:-}" ] || genv+=("$v=${!v}")
done
# Other VMs on the host take CPU time from the guest's vCPUs: sample how
# many QEMU processes run besides ours, every 2 s, to say so in the results.
(while sleep 2; do pgrep -c qemu-system || true; done) >"$out/qemu-count.txt" &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT
for n in $SWEEP; do
	if [ "$n" = "$CPUS" ]; then
		phases=${BENCH_PHASES:-micro rw unload units unplug}
		what="$phases"
	else
		phases=micro
		what="the micro-benchmark (about 1 minute)"
	fi
	over=""
	[ "$n" -le "$(nproc)" ] || over=" (oversubscribed: $n vCPUs on $(nproc) host CPUs)"
	step "bench: $what in a $n-vCPU TCG guest$over"
	rc=0
	scripts/vm-run.sh --timeout 1200 --cpus "$n" --memory 2G --rwdir "$out" \
		--log "$out/kernel-${n}cpu.log" -- \
		env "${genv[@]}" BENCH_PHASES="$phases" scripts/bench-guest.sh "$out" || rc=$?
	[ $rc -eq 0 ] || die "the benchmark failed in the $n-vCPU guest (status $rc): see $out/kernel-${n}cpu.log"
	cat "$out/raw-guest.txt" >>"$results"
	rm -f "$out/raw-guest.txt"
done
ln -sfn "kernel-${CPUS}cpu.log" "$out/kernel.log"
kill $sampler 2>/dev/null || true
printf '# load: loadavg %s after the run; other QEMU processes during it: %s\n' \
	"$(cut -d' ' -f1-3 /proc/loadavg)" \
	"$(awk '{ n = $1 - 1; if (n > 0) busy++; if (n > max) max = n }
		END { printf "at most %d, in %d of %d samples every 2 s", max, busy, NR }' "$out/qemu-count.txt")" \
	>>"$results"
rm -f "$out/qemu-count.txt"

# --- report ---------------------------------------------------------------
step "bench: tables and plot"
echo
echo "Numbers are TCG-emulated (QEMU without KVM, $CPUS vCPUs; the sweep $(echo $SWEEP | tr ' ' ',')): only ratios and"
echo "instruction counts are meaningful. Raw numbers: $results"
echo
python3 scripts/bench-report.py "$results" --svg "$out/benchmarks.svg" | tee "$out/summary.txt"
if [ $update_docs = 1 ]; then
	mkdir -p Documentation/bench
	cp "$out/results.txt" "$out/summary.txt" "$out/benchmarks.svg" Documentation/bench/
	python3 scripts/bench-report.py "$out/results.txt" --splice Documentation/benchmarks.rst >/dev/null
	step "bench: updated Documentation/bench/ (results.txt, summary.txt, benchmarks.svg)" \
		"and the tables in Documentation/benchmarks.rst"
fi
step "bench: done in $((SECONDS - started)) s; results in $out"
