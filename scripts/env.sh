# SPDX-License-Identifier: GPL-2.0
#
# Shared settings for the scripts in this directory. Source it; do not run it.
#
# Everything that is built or downloaded lives in $SAFEDETACH_CACHE, outside
# the checkout, so that a fresh clone reuses a kernel built earlier.

SAFEDETACH_TOP=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SAFEDETACH_CACHE=${SAFEDETACH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/safedetach}

# Pinned tool versions. Changing one changes the kernel cache key.
BINDGEN_VERSION=0.69.5
VNG_VERSION=1.42
KERNEL_SOURCE_PKG=linux-source-6.12

# The kernel is built with clang (RUST with KASAN needs it) and Debian's
# rustc, which ships the `core` source the kernel's Rust build needs.
# The kernel's Makefile assigns RUSTC itself, so it must be passed on the
# command line: use kmake, never a bare make, for anything under the kernel.
LLVM=${LLVM:--19}
RUSTC=${RUSTC:-/usr/bin/rustc}

# Which architecture the kernel, the module and the guest are: x86_64 (the
# host's, the default) or arm64 (cross-built by the same clang and rustc,
# run in a qemu-system-aarch64 guest under TCG). `make ARCH=arm64 ...` sets
# it for every target; the scripts read SAFEDETACH_ARCH, or else ARCH.
SAFEDETACH_ARCH=${SAFEDETACH_ARCH:-${ARCH:-x86_64}}
case $SAFEDETACH_ARCH in
x86_64|x86) SAFEDETACH_ARCH=x86_64 ;;
arm64|aarch64) SAFEDETACH_ARCH=arm64 ;;
*) echo "SAFEDETACH_ARCH (or ARCH) must be x86_64 or arm64, not '$SAFEDETACH_ARCH'" >&2; exit 2 ;;
esac
export SAFEDETACH_ARCH
# The kernel's ARCH= for kmake: none for x86_64, whose kernel is built
# natively (the kernel's Makefile takes ARCH from `uname -m`), so that the
# x86_64 builds are what they were before arm64 existed.
case $SAFEDETACH_ARCH in
x86_64) KERNEL_ARCH_ARGS=() ;;
arm64) KERNEL_ARCH_ARGS=(ARCH=arm64) ;;
esac
kmake() { make "${KERNEL_ARCH_ARGS[@]}" LLVM="$LLVM" RUSTC="$RUSTC" "$@"; }
export PATH="$SAFEDETACH_CACHE/tools/bin:$SAFEDETACH_CACHE/venv/bin:$PATH"

# Every long step says what it is doing.
step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Which kernel: "debug" (KASAN, lockdep, ...: tests and the demo), "up"
# (the debug kernel without SMP: the uniprocessor build of the module),
# "bench" (the debug kernel without the debugging options: benchmarks) or
# "jump" (the debug kernel with CONFIG_JUMP_LABEL: the static-branch gate).
SAFEDETACH_KERNEL=${SAFEDETACH_KERNEL:-debug}
case $SAFEDETACH_KERNEL in
debug) KERNEL_FRAGMENTS=("$SAFEDETACH_TOP/scripts/kernel.config") ;;
up) KERNEL_FRAGMENTS=("$SAFEDETACH_TOP/scripts/kernel.config"
		      "$SAFEDETACH_TOP/scripts/kernel-up.config") ;;
bench) KERNEL_FRAGMENTS=("$SAFEDETACH_TOP/scripts/kernel.config"
			 "$SAFEDETACH_TOP/scripts/kernel-bench.config") ;;
jump) KERNEL_FRAGMENTS=("$SAFEDETACH_TOP/scripts/kernel.config"
			"$SAFEDETACH_TOP/scripts/kernel-jump.config") ;;
*) echo "SAFEDETACH_KERNEL must be debug, up, bench or jump, not '$SAFEDETACH_KERNEL'" >&2; exit 2 ;;
esac
# On arm64, scripts/kernel-arm64.config comes right after kernel.config: it
# turns off what kernel.config has for x86_64 only (ACPI, the 8250 UART,
# ...) and adds what the arm64 `virt` machine needs; the flavour's fragment
# still comes last.
if [ "$SAFEDETACH_ARCH" = arm64 ]; then
	KERNEL_FRAGMENTS=("${KERNEL_FRAGMENTS[0]}" "$SAFEDETACH_TOP/scripts/kernel-arm64.config"
			  "${KERNEL_FRAGMENTS[@]:1}")
fi

# kernel_key: a hash of everything that affects the built kernel.
kernel_key() {
	{
		dpkg-query -W -f='${Version}\n' "$KERNEL_SOURCE_PKG" 2>/dev/null || echo none
		cat "${KERNEL_FRAGMENTS[@]}"
		sed -n '/^# BEGIN kernel recipe/,/^# END kernel recipe/p' \
			"$SAFEDETACH_TOP/scripts/setup.sh"
		"clang$LLVM" --version 2>/dev/null | head -n1 || echo none
		"$RUSTC" --version 2>/dev/null || echo none
		echo "bindgen $BINDGEN_VERSION"
		# Only other architectures add a line, so that the x86_64 keys
		# (and kernels already in the cache) stay what they were.
		[ "$SAFEDETACH_ARCH" = x86_64 ] || echo "arch $SAFEDETACH_ARCH"
	} | sha256sum | cut -c1-16
}

# kernel_dir: where the kernel for the current inputs is (or will be) built.
kernel_dir() { echo "$SAFEDETACH_CACHE/kernel-$(kernel_key)/linux"; }

# rootfs_dir: the root file system of the guest for architectures other than
# the host's (x86_64 guests use the host's own), made by setup.sh.
rootfs_dir() {
	local key
	key=$(sed -n '/^# BEGIN rootfs recipe/,/^# END rootfs recipe/p' \
		"$SAFEDETACH_TOP/scripts/setup.sh" | sha256sum | cut -c1-16)
	echo "$SAFEDETACH_CACHE/rootfs-$SAFEDETACH_ARCH-$key"
}

# kernel_image: the image QEMU boots, in the kernel directory.
kernel_image() {
	case $SAFEDETACH_ARCH in
	x86_64) echo "$(kernel_dir)/arch/x86/boot/bzImage" ;;
	arm64) echo "$(kernel_dir)/arch/arm64/boot/Image" ;;
	esac
}

# build_for_vm: set everything up, then build safedetach.ko and tests/sdtool
# (what `make demo` and `make check` need before they boot the VM).
build_for_vm() {
	"$SAFEDETACH_TOP/scripts/setup.sh"
	step "module: building safedetach.ko"
	make -s -C "$SAFEDETACH_TOP" modules 2>&1 | { grep -Ev '^make\[|^$' || true; }
	step "tests: building tests/sdtool"
	make -s -C "$SAFEDETACH_TOP/tests"
}
