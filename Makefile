# SPDX-License-Identifier: GPL-2.0
#
# safedetach: build the module against a Rust-enabled kernel, and run the
# demo, the tests and the benchmarks in a QEMU guest.
#
#   make              build safedetach.ko against $(KDIR)
#   make demo         set everything up, then show the module working and
#                     unloading under load in a VM
#   make check        set everything up, then run the test suite in a VM
#   make check-teeth  prove the tests catch deliberately broken builds
#   make bench        benchmarks in a VM (a kernel without KASAN/lockdep)
#   make rust-analyzer   write rust-project.json for editors
#
# KDIR defaults to the debug kernel that scripts/setup.sh builds into
# ~/.cache/safedetach; point it at any other Rust-enabled 6.12 tree to build
# the module there (that tree must have been built with the same LLVM).

KDIR ?= $(shell scripts/setup.sh --kdir)
LLVM ?= -19
RUSTC ?= /usr/bin/rustc
KMAKE = $(MAKE) -C $(KDIR) M=$$PWD LLVM=$(LLVM) RUSTC=$(RUSTC)

all: modules

modules:
	$(KMAKE) modules

clean:
	$(KMAKE) clean
	rm -f rust-project.json

rust-analyzer:
	$(KMAKE) rust-analyzer

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

check:
	scripts/check.sh

check-teeth:
	scripts/teeth.sh

bench:
	scripts/bench.sh

.PHONY: all modules clean rust-analyzer setup demo check check-teeth bench
