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
#        scripts/setup.sh --rootfs  print the arm64 guest's root and exit
#
# SAFEDETACH_KERNEL=bench selects the benchmark kernel (kernel.config plus
# kernel-bench.config: no KASAN, no lockdep); the default is the debug one.
# SAFEDETACH_ARCH=arm64 (`make ARCH=arm64`) builds the arm64 kernel
# (kernel-arm64.config after kernel.config) and makes the arm64 guest's root
# file system, once, in $SAFEDETACH_CACHE/rootfs-arm64-<key>/.
set -euo pipefail
. "$(dirname -- "$0")/env.sh"

APT_PACKAGES=(
	"$KERNEL_SOURCE_PKG" rustc-web rust-web-src
	clang-19 lld-19 llvm-19 libclang-19-dev
	make flex bison bc libelf-dev libssl-dev cpio kmod xz-utils
	qemu-system-x86 busybox-static python3-venv
	stress-ng spin gcc libc6-dev binutils liburing-dev gdb
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

# BEGIN rootfs recipe (part of the arm64 root's cache key)
# What the arm64 guest runs: the tests' and virtme-ng's guest init's
# programs (bash, dash as /bin/sh, coreutils, mount, util-linux, procps,
# kmod, python3, stress-ng, ...), and the headers and libraries that
# tests/sdtool is cross-compiled against (libc6-dev, liburing-dev), so
# that sdtool links against exactly the libraries it runs with.
ROOTFS_SUITE=bookworm
ROOTFS_MIRROR=http://deb.debian.org/debian
ROOTFS_PACKAGES=(
	base-files base-passwd bash dash coreutils findutils diffutils grep sed
	mawk bc hostname mount util-linux procps kmod busybox libc-bin
	python3 stress-ng liburing2 libc6-dev liburing-dev
)

# make_rootfs DIR: Debian's arm64 packages (and what they depend on),
# unpacked into DIR. `--variant=extract` only unpacks them: installing them
# would run their arm64 maintainer scripts, which needs qemu-user and
# binfmt_misc on the host. What those scripts would have set up and the
# tests need is done here instead: the users and groups of base-passwd, and
# the `awk` that update-alternatives would have linked to mawk. virtme-ng's
# guest init brings up `lo` with `ip` and ends the run with `poweroff -f`
# (without it, init exits and the kernel panics): busybox's applets.
make_rootfs() {
	local dir=$1
	mmdebstrap --quiet --variant=extract --architectures=arm64 \
		--include="$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")" \
		"$ROOTFS_SUITE" "$dir" "$ROOTFS_MIRROR"
	cp "$dir/usr/share/base-passwd/passwd.master" "$dir/etc/passwd"
	cp "$dir/usr/share/base-passwd/group.master" "$dir/etc/group"
	ln -sfn mawk "$dir/usr/bin/awk"
	ln -sfn /bin/busybox "$dir/sbin/poweroff"
	ln -sfn /bin/busybox "$dir/sbin/ip"
}
# END rootfs recipe

setup_rootfs() {
	local dir
	[ "$SAFEDETACH_ARCH" != x86_64 ] || return 0
	dir=$(rootfs_dir)
	if [ -f "$dir/.built" ]; then
		step "rootfs: cached in $dir"
		return
	fi
	[ "$(id -u)" -eq 0 ] || die "making the $SAFEDETACH_ARCH guest's root (mmdebstrap) needs root"
	step "rootfs: unpacking Debian $ROOTFS_SUITE $SAFEDETACH_ARCH packages into $dir (mmdebstrap)"
	rm -rf "$dir"
	make_rootfs "$dir"
	touch "$dir/.built"
}

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
	if [ "${1:-}" = --rootfs ]; then
		rootfs_dir
		return
	fi
	mkdir -p "$SAFEDETACH_CACHE"
	install_packages
	install_bindgen
	install_vng
	setup_rootfs
	setup_kernel
}

main "$@"
