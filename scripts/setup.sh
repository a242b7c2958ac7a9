#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything safedetach needs and build the debug kernel it runs on.
#
# Idempotent: each step checks whether its result is already there. The
# kernel is built once into $SAFEDETACH_CACHE/kernel-<key>/, where <key>
# hashes the source package version, scripts/kernel.config, the build recipe
# below and the compiler versions; a second run with the same inputs only
# prints "kernel: cached".
#
# Usage: scripts/setup.sh           set up and build
#        scripts/setup.sh --kdir    print the kernel directory and exit
#
# SAFEDETACH_KERNEL=bench selects the benchmark kernel (kernel.config plus
# kernel-bench.config: no KASAN, no lockdep); the default is the debug one.
set -euo pipefail
. "$(dirname -- "$0")/env.sh"

APT_PACKAGES=(
	"$KERNEL_SOURCE_PKG" rustc-web rust-web-src
	clang-19 lld-19 llvm-19 libclang-19-dev
	make flex bison bc libelf-dev libssl-dev cpio kmod xz-utils
	qemu-system-x86 busybox-static python3-venv
	stress-ng spin gcc libc6-dev binutils liburing-dev
)
# arm64: the guest's QEMU, the tool that unpacks the guest's Debian root,
# and the cross compiler for tests/sdtool.
if [ "$SAFEDETACH_ARCH" = arm64 ]; then
	APT_PACKAGES+=(qemu-system-arm mmdebstrap gcc-aarch64-linux-gnu)
fi

install_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		step "packages: all installed"
		return
	fi
	[ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}): run as root or install them"
	step "packages: installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

install_bindgen() {
	if [ "$(bindgen --version 2>/dev/null)" = "bindgen $BINDGEN_VERSION" ]; then
		step "bindgen: $BINDGEN_VERSION installed"
		return
	fi
	command -v cargo >/dev/null || die "cargo not found (it builds bindgen-cli): install Rust with rustup"
	step "bindgen: cargo install bindgen-cli $BINDGEN_VERSION (about 2 minutes)"
	cargo install --quiet --locked bindgen-cli --version "$BINDGEN_VERSION" \
		--root "$SAFEDETACH_CACHE/tools"
}

install_vng() {
	if [ "$(vng --version 2>/dev/null)" = "virtme-ng $VNG_VERSION" ]; then
		step "virtme-ng: $VNG_VERSION installed"
		return
	fi
	step "virtme-ng: pip install virtme-ng==$VNG_VERSION into $SAFEDETACH_CACHE/venv"
	python3 -m venv "$SAFEDETACH_CACHE/venv"
	"$SAFEDETACH_CACHE/venv/bin/pip" install -q "virtme-ng==$VNG_VERSION"
}

# BEGIN kernel recipe (part of the cache key)
configure_kernel() {
	local kdir=$1 frag line opt
	local -A want=()
	shift
	step "kernel: make tinyconfig + $(printf '%s ' "${@#"$SAFEDETACH_TOP/"}")"
	kmake -C "$kdir" -s tinyconfig
	"$kdir/scripts/kconfig/merge_config.sh" -m -O "$kdir" "$kdir/.config" "$@" >/dev/null
	kmake -C "$kdir" -s olddefconfig
	# Unmet dependencies are dropped silently: check that every option of
	# the fragments (the last one wins) survived.
	for frag in "$@"; do
		while IFS= read -r line; do
			case "$line" in
			CONFIG_*=*) opt=${line%%=*} ;;
			"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *} ;;
			*) continue ;;
			esac
			want[$opt]=$line
		done <"$frag"
	done
	for opt in "${!want[@]}"; do
		line=$(grep -E "^($opt=|# $opt is not set)" "$kdir/.config" || echo "# $opt is not set")
		[ "$line" = "${want[$opt]}" ] || die "kernel config: wanted '${want[$opt]}', got '$line'"
	done
}

build_kernel() {
	local kdir=$1
	step "kernel: building bzImage, Module.symvers and the Rust support (about 6 minutes on 2 cores)"
	kmake -C "$kdir" -j"$(nproc)" -s all
}
# END kernel recipe

setup_kernel() {
	local kdir top
	kdir=$(kernel_dir)
	top=$(dirname "$kdir")
	if [ -f "$top/.built" ]; then
		step "kernel: cached in $top"
		return
	fi
	rm -rf "$top"
	mkdir -p "$top"
	step "kernel: unpacking /usr/src/$KERNEL_SOURCE_PKG.tar.xz into $top"
	tar -C "$top" -xf "/usr/src/$KERNEL_SOURCE_PKG.tar.xz"
	mv "$top/$KERNEL_SOURCE_PKG" "$kdir"
	kmake -C "$kdir" -s rustavailable >/dev/null ||
		die "the Rust toolchain is not usable for the kernel (make rustavailable)"
	configure_kernel "$kdir" "${KERNEL_FRAGMENTS[@]}"
	build_kernel "$kdir"
	touch "$top/.built"
	step "kernel: built $(kernel_image)"
}

main() {
	if [ "${1:-}" = --kdir ]; then
		kernel_dir
		return
	fi
	mkdir -p "$SAFEDETACH_CACHE"
	install_packages
	install_bindgen
	install_vng
	setup_kernel
}

main "$@"
