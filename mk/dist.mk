# Distribution (issue 19): what each ecosystem installs the way it always does.
#
#   make install [PREFIX=/usr/local] [DESTDIR=]
#                  the C library: lib/libingest.so.X.Y.Z with its SONAME link
#                  libingest.so.X and the link libingest.so, lib/libingest.a,
#                  include/ingest.h, lib/pkgconfig/ingest.pc and the CMake
#                  package lib/cmake/ingest/ (target ingest::ingest);
#                  a release build unless INSTALL_PROFILE=debug
#   make uninstall [PREFIX=...] [DESTDIR=]
#                  removes exactly those files
#   make dist      dist/: the abi3 wheel (PostgreSQL inside) and the sdist,
#                  built by maturin
#   make crate     target/package/ingest-core-X.Y.Z.crate, verified by cargo
#   make crate-check
#                  the packaged crate's own tests, run from the unpacked
#                  .crate (a full build and test run: not part of make test)
#   make test-dist part of `make test`: install into a temporary prefix and
#                  build C, C++ and CMake programs against it; install the
#                  wheel into a new venv with no Rust on PATH and run the
#                  README's Python example; build the crate's docs with
#                  warnings as errors, package the crate and run the
#                  README's Rust example in a new project that depends on it

PREFIX          ?= /usr/local
DESTDIR         ?=
INSTALL_PROFILE ?= release
INSTALL_LIBDIR  := $(DESTDIR)$(PREFIX)/lib
INSTALL_INCDIR  := $(DESTDIR)$(PREFIX)/include
INSTALL_SO      := libingest.so.$(INGEST_VERSION)
INSTALL_BUILD   := $(or $(CARGO_TARGET_DIR),target)/$(INSTALL_PROFILE)
DIST            := dist
DIST_OUT        := $(or $(CARGO_TARGET_DIR),target)/dist-tests

TESTS += test-dist

.PHONY: install uninstall install-lib dist crate crate-check test-dist test-install test-wheel test-crate cmake

# The library of the build tree, with the SONAME link programs linked
# against it load.
install-lib:
	cargo build $(if $(filter release,$(INSTALL_PROFILE)),--release) -p ingest-ffi
	ln -sf libingest.so $(INSTALL_BUILD)/libingest.so.$(INGEST_MAJOR)

install: install-lib
	install -d $(INSTALL_LIBDIR)/pkgconfig $(INSTALL_LIBDIR)/cmake/ingest $(INSTALL_INCDIR)
	install -m 755 $(INSTALL_BUILD)/libingest.so $(INSTALL_LIBDIR)/$(INSTALL_SO)
	ln -sf $(INSTALL_SO) $(INSTALL_LIBDIR)/libingest.so.$(INGEST_MAJOR)
	ln -sf libingest.so.$(INGEST_MAJOR) $(INSTALL_LIBDIR)/libingest.so
	install -m 644 $(INSTALL_BUILD)/libingest.a $(INSTALL_LIBDIR)/libingest.a
	install -m 644 include/ingest.h $(INSTALL_INCDIR)/ingest.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$${prefix}/include|' -e 's|@LIBDIR@|$${prefix}/lib|' \
		-e 's|@VERSION@|$(INGEST_VERSION)|' ffi/ingest.pc.in > $(INSTALL_LIBDIR)/pkgconfig/ingest.pc
	for f in IngestConfig IngestConfigVersion; do \
		sed -e 's|@VERSION@|$(INGEST_VERSION)|g' -e 's|@MAJOR@|$(INGEST_MAJOR)|g' \
			ffi/cmake/$$f.cmake.in > $(INSTALL_LIBDIR)/cmake/ingest/$$f.cmake || exit 1; \
	done
	# find_package(ingest) looks for ingest-config.cmake (the package's
	# name as written), find_package(Ingest) for IngestConfig.cmake: both.
	echo 'include("$${CMAKE_CURRENT_LIST_DIR}/IngestConfig.cmake")' > $(INSTALL_LIBDIR)/cmake/ingest/ingest-config.cmake
	echo 'include("$${CMAKE_CURRENT_LIST_DIR}/IngestConfigVersion.cmake")' > $(INSTALL_LIBDIR)/cmake/ingest/ingest-config-version.cmake
	@echo "installed libingest $(INGEST_VERSION) under $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f $(INSTALL_LIBDIR)/$(INSTALL_SO) $(INSTALL_LIBDIR)/libingest.so.$(INGEST_MAJOR) \
		$(INSTALL_LIBDIR)/libingest.so $(INSTALL_LIBDIR)/libingest.a $(INSTALL_INCDIR)/ingest.h \
		$(INSTALL_LIBDIR)/pkgconfig/ingest.pc \
		$(INSTALL_LIBDIR)/cmake/ingest/IngestConfig.cmake $(INSTALL_LIBDIR)/cmake/ingest/IngestConfigVersion.cmake \
		$(INSTALL_LIBDIR)/cmake/ingest/ingest-config.cmake $(INSTALL_LIBDIR)/cmake/ingest/ingest-config-version.cmake
	-rmdir $(INSTALL_LIBDIR)/cmake/ingest 2>/dev/null

# maturin checks the wheel against the manylinux policies and tags it with
# the oldest one it meets (as auditwheel would).
dist: | $(VENV)/bin/maturin
	rm -rf $(DIST)
	$(VENV)/bin/maturin build --release --quiet --manifest-path python/Cargo.toml --out $(DIST)
	$(VENV)/bin/maturin sdist --manifest-path python/Cargo.toml --out $(DIST)
	@ls $(DIST)

# Not verified here: test-crate builds the unpacked package as a new
# project's dependency, in the shared target dir (a verify would build every
# dependency again in a directory of its own).
crate:
	cargo package -p ingest-core --allow-dirty --no-verify

# The .crate unpacked, built and tested on its own, with every feature its
# tests need (the test hooks come from a dev-dependency on itself in the
# workspace, which a package does not carry).
crate-check: crate
	rm -rf $(DIST_OUT)/crate-check && mkdir -p $(DIST_OUT)/crate-check
	tar -xzf target/package/ingest-core-$(INGEST_VERSION).crate -C $(DIST_OUT)/crate-check
	# A workspace of its own, not the checkout's it is unpacked under.
	printf '\n[workspace]\n' >> $(DIST_OUT)/crate-check/ingest-core-$(INGEST_VERSION)/Cargo.toml
	cd $(DIST_OUT)/crate-check/ingest-core-$(INGEST_VERSION) && \
		CARGO_TARGET_DIR=$(abspath target/crate-check) cargo test --features test-hooks,postgres

# CMake from Debian's packages when it is missing (as the browser tests
# install Chromium): the CMake half of test-install needs it, and under CI
# a missing tool fails rather than skips.
cmake:
	@command -v cmake >/dev/null || { \
		echo "cmake is missing: installing Debian's package"; \
		apt-get install -y -qq cmake >/dev/null 2>&1 || \
			{ apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }; }
	@cmake --version | head -n1

# The debug build test-c made, installed: the same files and layout as a
# release install, without a second full build in make test.
test-install: c-lib cmake
	rm -rf $(DIST_OUT)/prefix $(DIST_OUT)/stage $(DIST_OUT)/cmake-build
	$(MAKE) --no-print-directory install INSTALL_PROFILE=debug PREFIX=$(abspath $(DIST_OUT))/prefix
	$(MAKE) --no-print-directory install INSTALL_PROFILE=debug PREFIX=/opt/ingest DESTDIR=$(abspath $(DIST_OUT))/stage
	tests/install/check.sh $(abspath $(DIST_OUT))/prefix $(abspath $(DIST_OUT))/stage/opt/ingest \
		$(INGEST_VERSION) $(abspath $(DIST_OUT))
	$(MAKE) --no-print-directory uninstall PREFIX=$(abspath $(DIST_OUT))/prefix
	@left=$$(find $(DIST_OUT)/prefix -type f -o -type l); \
		if [ -n "$$left" ]; then echo "make uninstall left: $$left"; exit 1; fi
	@echo "test-install: C, C++ and CMake programs built and run against the installed library"

test-wheel: dist
	tests/install/wheel.sh $(abspath $(DIST)) $(abspath $(DIST_OUT))/wheel-venv $(INGEST_VERSION)

test-crate: crate
	RUSTDOCFLAGS="-D warnings" cargo doc -p ingest-core --no-deps --features postgres
	tests/install/crate.sh $(abspath target/package/ingest-core-$(INGEST_VERSION).crate) $(INGEST_VERSION)

test-dist: test-install test-wheel test-crate
