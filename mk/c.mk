# The C ABI (ffi/): libingest.so and libingest.a, the generated header
# include/ingest.h, the C example and the C tests.
#
#   make header   regenerate include/ingest.h with the pinned cbindgen
#   make test-c   header gate, C11 and C++17 checks, the example linked
#                 both ways, the C tests under valgrind; part of `make test`

TESTS += test-c

# Pinned: another cbindgen may print another header, and the gate below
# would fail for no change of ours.
CBINDGEN_VERSION := 0.29.4
CBINDGEN    := $(TOOLS_DIR)/bin/cbindgen

C_TARGET := $(or $(CARGO_TARGET_DIR),target)
C_LIBDIR := $(abspath $(C_TARGET)/debug)
C_OUT    := $(C_TARGET)/c
C_PCDIR  := $(C_OUT)/pkgconfig

C_STD    := -std=c11 -Wall -Wextra -Werror -pedantic -g
CXX_STD  := -std=c++17 -Wall -Wextra -Werror -pedantic -g
# pkg-config, pointed at this checkout's header and library.
C_PKG    := PKG_CONFIG_PATH=$(abspath $(C_PCDIR)) pkg-config
C_RPATH  := -Wl,-rpath,$(C_LIBDIR)
VALGRIND := valgrind --leak-check=full --error-exitcode=1 --suppressions=tests/c/valgrind.supp

C_TEST_SOURCES := tests/c/test_ingest.c tests/c/test_threads.c tests/c/test_postgres.c
# The PostgreSQL tests' server; their schema (c_<pid>) is dropped after the run.
INGEST_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test
export INGEST_TEST_POSTGRES

# The package version, and its major number (the SONAME's).
INGEST_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
INGEST_MAJOR   := $(firstword $(subst ., ,$(INGEST_VERSION)))

.PHONY: c-cbindgen header test-c c-lib c-header-check c-compile-check c-example c-readme c-tests

# Installed into the build tree, only when that exact version is missing.
c-cbindgen:
	@if ! $(CBINDGEN) --version 2>/dev/null | grep -qx 'cbindgen $(CBINDGEN_VERSION)'; then \
		cargo install cbindgen --locked --version $(CBINDGEN_VERSION) --root $(TOOLS_DIR); \
	fi

header: c-cbindgen
	$(CBINDGEN) --quiet --config ffi/cbindgen.toml --crate ingest-ffi --output include/ingest.h ffi

# The committed header must be exactly what the sources generate.
c-header-check: c-cbindgen
	@mkdir -p $(C_OUT)
	$(CBINDGEN) --quiet --config ffi/cbindgen.toml --crate ingest-ffi --output $(C_OUT)/ingest.h ffi
	@diff -u include/ingest.h $(C_OUT)/ingest.h || \
		{ echo "include/ingest.h differs from ffi/src: run 'make header' and commit it"; exit 1; }
	@echo "include/ingest.h is up to date"

# One dev build gives both libingest.so and libingest.a. The library's
# SONAME is libingest.so.MAJOR (ffi/build.rs): the link beside it is what
# programs linked here load.
c-lib:
	cargo build -p ingest-ffi
	@mkdir -p $(C_PCDIR)
	ln -sf libingest.so $(C_LIBDIR)/libingest.so.$(INGEST_MAJOR)
	@sed -e 's|@PREFIX@|$(abspath .)|' -e 's|@INCLUDEDIR@|$(abspath include)|' -e 's|@LIBDIR@|$(C_LIBDIR)|' \
		-e 's|@VERSION@|$(INGEST_VERSION)|' ffi/ingest.pc.in > $(C_PCDIR)/ingest.pc

c-compile-check: c-lib
	$(CC) $(C_STD) -Iinclude -c tests/c/header_c11.c -o $(C_OUT)/header_c11.o
	$(CXX) $(CXX_STD) $$($(C_PKG) --cflags ingest) tests/c/smoke.cpp -o $(C_OUT)/smoke-cpp \
		$$($(C_PKG) --libs ingest) $(C_RPATH)
	$(C_OUT)/smoke-cpp

# The example, once against each library, each run on a fresh file store.
c-example: c-lib
	$(CC) $(C_STD) $$($(C_PKG) --cflags ingest) examples/c/seed.c -o $(C_OUT)/seed-shared \
		$$($(C_PKG) --libs ingest) $(C_RPATH)
	$(CC) $(C_STD) -Iinclude examples/c/seed.c -o $(C_OUT)/seed-static \
		$(C_LIBDIR)/libingest.a $$($(C_PKG) --static --libs-only-l ingest | sed 's/-lingest//')
	@if ldd $(C_OUT)/seed-static | grep -q libingest; then echo "seed-static links libingest.so"; exit 1; fi
	rm -f $(C_OUT)/seed-shared.db*  $(C_OUT)/seed-static.db*
	$(VALGRIND) --quiet $(C_OUT)/seed-shared $(C_OUT)/seed-shared.db
	$(C_OUT)/seed-static $(C_OUT)/seed-static.db

# The C example of README.md's "C and C++" section, so that it cannot drift.
c-readme: c-lib
	@mkdir -p $(C_OUT)
	awk '/^## C and C[+][+]/ {s = 1} s && /^```c$$/ {p = 1; next} p && /^```$$/ {exit} p' README.md > $(C_OUT)/readme.c
	@test -s $(C_OUT)/readme.c || { echo "README.md: no C example in the 'C and C++' section"; exit 1; }
	$(CC) $(C_STD) $$($(C_PKG) --cflags ingest) $(C_OUT)/readme.c -o $(C_OUT)/readme \
		$$($(C_PKG) --libs ingest) $(C_RPATH)
	$(VALGRIND) --quiet $(C_OUT)/readme

c-tests: c-lib
	$(CC) $(C_STD) -pthread $$($(C_PKG) --cflags ingest) $(C_TEST_SOURCES) -o $(C_OUT)/c-tests \
		$$($(C_PKG) --libs ingest) $(C_RPATH) -lm
	$(VALGRIND) $(C_OUT)/c-tests; status=$$?; \
	  psql -q "$(INGEST_TEST_POSTGRES)" -c "DO \$$\$$ DECLARE s text; BEGIN \
	    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname ~ '^c_[0-9]+$$' LOOP \
	    EXECUTE 'DROP SCHEMA ' || s || ' CASCADE'; END LOOP; END \$$\$$" >/dev/null 2>&1 || true; \
	  exit $$status

test-c: c-header-check c-compile-check c-example c-readme c-tests
