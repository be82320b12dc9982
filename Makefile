# Thin wrapper around CMake/CTest. `make help` lists the targets.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_DEB   ?= build-deb
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all setup test check asan memcheck fault soak fuzz demo bench bench-peers install deb format clean help

all:
	cmake -S . -B $(BUILD) -DDLOCK_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

setup:
	./scripts/setup.sh

# The whole suite against real redis-server processes that CTest starts and stops.
test: all
	cd $(BUILD) && ctest --output-on-failure -j 2

# Everything CI runs: the suite, the suite under ASan+UBSan, and under valgrind.
check: test asan memcheck

asan:
	cmake -S . -B $(BUILD_ASAN) -DDLOCK_WERROR=ON -DDLOCK_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ctest --output-on-failure -j 2

memcheck: all
	./scripts/memcheck.sh $(BUILD)

# Fault injection with the mutual-exclusion checker (one redis-server, a Redis Cluster with
# failovers, a Redlock over five servers), libFuzzer runs and the load test (a few minutes). The
# ASan build from `make asan` adds an ASan load run when present.
fault: all
	FAULT_ASAN_BUILD=$(wildcard $(BUILD_ASAN)) ./tests/fault/run.sh $(BUILD)

# The fault checker for at least 1,000,000 checked holds with hand-offs and every fault kind,
# bounded to 30 minutes (about 20 on 2 cores); prints holds, faults by kind, overlaps, errors and
# the dead-waiter idle figure. Not for CI (CI keeps `make fault`). SOAK_HOLDS, SOAK_MINUTES,
# SOAK_ROUND_SECS and SOAK_CELLS override the sizes.
soak: all
	./tests/fault/run.sh --soak $(BUILD)

fuzz:
	./fuzz/run.sh build-fuzz

demo: setup all
	./demo/demo.sh $(BUILD)

bench: all
	./bench/run.sh $(BUILD)

bench-peers: all
	./bench/peers.sh $(BUILD)

install: all
	cmake --install $(BUILD)

# Debian packages (libdlock0, libdlock-dev, dlock) into $(BUILD_DEB)/, built with debhelper from
# a copy of the tree so that nothing is written next to it. Install: apt-get install ./$(BUILD_DEB)/*.deb
deb:
	@v=$$(sed -n 's/^#define DLOCK_VERSION_STRING "\(.*\)"/\1/p' include/dlock.h); \
	d=$$(dpkg-parsechangelog -S Version); \
	[ "$$v" = "$$d" ] || { echo "deb: debian/changelog says $$d, dlock.h says $$v"; exit 1; }
	rm -rf $(BUILD_DEB) && mkdir -p $(BUILD_DEB)/src
	tar -c --exclude='./build*' --exclude=./.git --exclude=./node_modules . | tar -x -C $(BUILD_DEB)/src
	cd $(BUILD_DEB)/src && DEB_BUILD_OPTIONS="noautodbgsym parallel=$(JOBS)" \
	    dpkg-buildpackage -b -us -uc
	rm -rf $(BUILD_DEB)/src
	@ls $(BUILD_DEB)/*.deb

format:
	clang-format -i include/*.h src/*.c src/*.h tools/*.c tools/*.h tests/*.c tests/*.h \
	    tests/*/*.c tests/*/*.h examples/*.c bench/*.c fuzz/*.c 2>/dev/null || true

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_DEB) build-fuzz

help:
	@echo "make demo      set up (Debian packages), build, and run the demo"
	@echo "make test      build and run the test suite"
	@echo "make check     test + ASan/UBSan + valgrind"
	@echo "make fault     fault injection, mutual-exclusion checker, fuzzing, load"
	@echo "make soak      the fault checker for 1M checked holds or 30 minutes"
	@echo "make bench     benchmarks (bounded, < 5 minutes)"
	@echo "make install   install library, header, pkg-config file, CMake package, CLI, man page"
	@echo "make deb       Debian packages libdlock0, libdlock-dev, dlock in $(BUILD_DEB)/"
