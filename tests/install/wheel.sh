#!/usr/bin/env bash
# The wheel `make dist` built installs into a new virtual environment on a
# machine without Rust and runs the README's Python example: run by
# `make test-dist` (mk/dist.mk).
#   wheel.sh DIST VENV VERSION
set -euo pipefail
dist=$1 venv=$2 version=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "test-wheel: $*" >&2; exit 1; }

shopt -s nullglob
wheels=("$dist"/ingest-"$version"-*.whl)
sdists=("$dist"/ingest-"$version".tar.gz)
[ ${#wheels[@]} -eq 1 ] || fail "want one wheel in $dist, found ${#wheels[@]}"
[ ${#sdists[@]} -eq 1 ] || fail "want one sdist in $dist, found ${#sdists[@]}"
wheel=${wheels[0]}
# One wheel for every CPython from 3.10 on, checked against a manylinux policy.
case $(basename "$wheel") in
  ingest-"$version"-cp310-abi3-manylinux_*_x86_64.whl | ingest-"$version"-cp310-abi3-manylinux*_aarch64.whl) ;;
  *) fail "wheel name $(basename "$wheel") is not abi3 with a manylinux tag" ;;
esac
# The sdist builds the extension from source: the core's sources are in it.
listing=$(tar -tzf "${sdists[0]}")
for f in pyproject.toml core/src/lib.rs python/src/lib.rs ingest/__init__.py LICENSE-MIT LICENSE-APACHE; do
  grep -q "/$f\$" <<<"$listing" || fail "the sdist has no $f"
done

# A new venv, used with a PATH that has no cargo or rustc on it.
python=$(python3 -c 'import sys; print(sys.executable)')
rm -rf "$venv"
"$python" -m venv "$venv"
bare() { env -i HOME="$HOME" LANG=C.UTF-8 PATH="$venv/bin:/usr/bin:/bin" "$@"; }
if bare sh -c 'command -v cargo || command -v rustc' >/dev/null; then fail "Rust is on the bare PATH"; fi
bare "$venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$wheel"
[ "$(bare "$venv/bin/python" -m ingest --version)" = "ingest $version" ] || fail "python -m ingest --version"
# The README's first Python example, as a user would paste it.
awk '/^## Python/ {s = 1} s && /^```python$/ {p = 1; next} p && /^```$/ {exit} p' "$root/README.md" > "$venv/readme.py"
[ -s "$venv/readme.py" ] || fail "README.md: no Python example in the Python section"
(cd "$venv" && bare "$venv/bin/python" readme.py) || fail "the README's Python example failed"
# And the package's own README, the page a package index shows.
awk '/^```python$/ {p = 1; next} p && /^```$/ {exit} p' "$root/python/README.md" > "$venv/pypi_readme.py"
[ -s "$venv/pypi_readme.py" ] || fail "python/README.md: no Python example"
(cd "$venv" && rm -f events.db && bare "$venv/bin/python" pypi_readme.py >/dev/null) || fail "python/README.md's example failed"
# PostgreSQL support is inside the wheel: an unreachable server is a storage
# error, not "built without postgres".
bare "$venv/bin/python" - <<'PY' || fail "the wheel has no PostgreSQL support"
import ingest
try:
    ingest.Ingestor("postgres://postgres@127.0.0.1:1/none?connect_timeout=1")
except ingest.StorageError:
    pass
else:
    raise SystemExit("opened a server that is not there")
PY
echo "wheel $(basename "$wheel"): installed without Rust, README example ran"
