#!/usr/bin/env bash
# What `make install` put under a prefix is what C, C++ and CMake users
# need: run by `make test-dist` (mk/dist.mk).
#   check.sh PREFIX STAGED_PREFIX VERSION SCRATCH
set -euo pipefail
prefix=$1 staged=$2 version=$3 scratch=$4
major=${version%%.*}
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "test-install: $*" >&2; exit 1; }

for root in "$prefix" "$staged"; do
  for f in lib/libingest.so.$version lib/libingest.a include/ingest.h lib/pkgconfig/ingest.pc \
           lib/cmake/ingest/IngestConfig.cmake lib/cmake/ingest/IngestConfigVersion.cmake \
           lib/cmake/ingest/ingest-config.cmake lib/cmake/ingest/ingest-config-version.cmake; do
    [ -f "$root/$f" ] || fail "missing $root/$f"
  done
  [ "$(readlink "$root/lib/libingest.so.$major")" = "libingest.so.$version" ] || fail "libingest.so.$major link"
  [ "$(readlink "$root/lib/libingest.so")" = "libingest.so.$major" ] || fail "libingest.so link"
done
soname=$(readelf -d "$prefix/lib/libingest.so.$version" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libingest.so.$major" ] || fail "SONAME is '$soname', not libingest.so.$major"
# A DESTDIR install names the final prefix, not the staging tree.
grep -qx "prefix=/opt/ingest" "$staged/lib/pkgconfig/ingest.pc" || fail "staged ingest.pc names the staging tree"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion ingest)" = "$version" ] || fail "pkg-config --modversion"
out=$scratch/consumers
mkdir -p "$out"
# Programs load the installed library through its SONAME, found by rpath.
rpath="-Wl,-rpath,$prefix/lib"
cc -std=c11 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags ingest) "$here/consumer.c" \
  -o "$out/consumer-c" $(pkg-config --libs ingest) "$rpath"
c++ -std=c++17 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags ingest) "$here/consumer.cpp" \
  -o "$out/consumer-cpp" $(pkg-config --libs ingest) "$rpath"
cc -std=c11 $(pkg-config --cflags ingest) "$here/consumer.c" -o "$out/consumer-static" \
  "$prefix/lib/libingest.a" $(pkg-config --static --libs-only-l ingest | sed 's/-lingest//')
for p in consumer-c consumer-cpp consumer-static; do
  "$out/$p" || fail "$p failed"
done
# ldd's output is read whole before it is searched: `ldd | grep -q` under
# pipefail fails whenever grep stops reading first and ldd gets SIGPIPE.
loaded=$(ldd "$out/consumer-c")
case $loaded in
  *"libingest.so.$major => $prefix/lib/"*) ;;
  *) fail "consumer-c does not load the installed library: $loaded" ;;
esac
loaded=$(ldd "$out/consumer-static")
case $loaded in *libingest*) fail "consumer-static links libingest.so: $loaded" ;; esac

# CMake: find_package(ingest 0.1) with the imported targets, shared and static.
cmake -S "$here/cmake" -B "$scratch/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_RPATH="$prefix/lib" >/dev/null || fail "cmake configure"
cmake --build "$scratch/cmake-build" >/dev/null || fail "cmake build"
"$scratch/cmake-build/consumer" || fail "the CMake consumer failed"
"$scratch/cmake-build/consumer_static" || fail "the static CMake consumer failed"
# Another major version is not this one.
mkdir -p "$scratch/cmake-major"
sed 's/find_package(ingest 0.1 REQUIRED)/find_package(ingest 1.0 REQUIRED)/; s|\.\./consumer\.c|'"$here"'/consumer.c|' \
  "$here/cmake/CMakeLists.txt" > "$scratch/cmake-major/CMakeLists.txt"
if cmake -S "$scratch/cmake-major" -B "$scratch/cmake-major/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  fail "find_package(ingest 1.0) accepted version $version"
fi
echo "installed layout, SONAME, pkg-config, C, C++, static and CMake consumers: ok"
