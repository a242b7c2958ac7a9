# SPDX-License-Identifier: GPL-2.0
#
# safedetach: build the module against a Rust-enabled kernel, and run the
# demo, the tests and the benchmarks in a QEMU guest.
#
#   make              build safedetach.ko against $(KDIR)
#   make demo         set everything up, then show the module working and
#                     unloading under load in a VM
#   make check        set everything up, then run the test suite in a VM
#                     (VM_CPUS=N: the guest's vCPUs, default 2; TESTS="a.sh
#                     b.sh": only those scripts of tests/, no host checks;
#                     GUESTS="2:a.sh,b.sh 8:c.sh": several guests at once;
#                     ARCH=arm64: the arm64 kernel and guest)
#   make check-teeth  prove the tests catch deliberately broken builds
#   make bench        benchmarks in a VM (a kernel without KASAN/lockdep);
#                     BENCH_CPUS="1 2 4 8": the vCPU counts of the sweep
#   make jump-probe   does this QEMU patch static keys safely under each TCG
#                     threading mode? (a C module, no safedetach code)
#   make rust-analyzer   write rust-project.json for editors
#   make rustfmt      format rust/ with the kernel's .rustfmt.toml
#   make rustfmtcheck    check that rust/ is formatted
#
# KDIR defaults to the debug kernel that scripts/setup.sh builds into
# ~/.cache/safedetach; point it at any other Rust-enabled 6.12 tree to build
# the module there (that tree must have been built with the same LLVM).
#
# ARCH=arm64 on any target (`make ARCH=arm64`, `make check ARCH=arm64`, ...)
# cross-builds the arm64 kernel, module and sdtool and runs the guest on
# qemu-system-aarch64; the default is the host's x86_64. The scripts read it
# as SAFEDETACH_ARCH (scripts/env.sh).

SAFEDETACH_ARCH ?= $(or $(ARCH),x86_64)
export SAFEDETACH_ARCH
KDIR ?= $(shell SAFEDETACH_ARCH=$(SAFEDETACH_ARCH) scripts/setup.sh --kdir)
LLVM ?= -19
RUSTC ?= /usr/bin/rustc
KMAKE = $(MAKE) -C $(KDIR) M=$$PWD $(if $(filter arm64 aarch64,$(SAFEDETACH_ARCH)),ARCH=arm64) \
	LLVM=$(LLVM) RUSTC=$(RUSTC)

# The pinned bindgen-cli that scripts/setup.sh installs (the kernel's
# rust-analyzer and Rust targets need it), and rustup's rustfmt.
SAFEDETACH_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/safedetach
export PATH := $(SAFEDETACH_CACHE)/tools/bin:$(HOME)/.cargo/bin:$(PATH)
RUSTFMT ?= rustfmt
RUSTFMT_FLAGS = --edition 2021 --config-path $(KDIR)/.rustfmt.toml

all: modules

# The kernel tree the module was last built against. Kbuild would reuse the
# objects of another tree with the same version (an M= build's commands name
# KDIR's headers by relative paths), and their struct module is then the
# wrong size for it: `make check SAFEDETACH_KERNEL=jump` after a debug build
# got "insmod: Invalid module format". So a change of tree cleans first.
.kdir: FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != "$(KDIR)" ]; then \
		$(KMAKE) clean >/dev/null; echo "$(KDIR)" >$@; fi

modules: .kdir
	$(KMAKE) modules

clean:
	$(KMAKE) clean
	rm -f rust-project.json .kdir

rust-analyzer:
	$(KMAKE) rust-analyzer

# Format the Rust sources with the kernel's .rustfmt.toml (rustfmt follows
# the crate roots' `mod` items: the driver's and the benchmark's), or only
# check that they are formatted.
rustfmt:
	$(RUSTFMT) $(RUSTFMT_FLAGS) rust/safedetach_main.rs bench/sdbench_gate.rs

rustfmtcheck:
	$(RUSTFMT) $(RUSTFMT_FLAGS) --check rust/safedetach_main.rs bench/sdbench_gate.rs

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

VM_CPUS ?= 2
TESTS ?=

check:
	VM_CPUS=$(VM_CPUS) scripts/check.sh $(TESTS)

check-teeth:
	scripts/teeth.sh $(VARIANTS)

BENCH_CPUS ?= 1 2 4 8

bench:
	BENCH_CPUS="$(BENCH_CPUS)" scripts/bench.sh

jump-probe:
	scripts/jump-probe.sh

FORCE:

.PHONY: all modules clean FORCE rust-analyzer rustfmt rustfmtcheck setup demo check check-teeth bench jump-probe
