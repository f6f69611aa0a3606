#!/usr/bin/env bash
# The packaged crate, unpacked, is a dependency a new project builds: the
# README's Rust example runs there. Run by `make test-dist` (mk/dist.mk).
#   crate.sh CRATE VERSION
set -euo pipefail
crate=$1 version=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "test-crate: $*" >&2; exit 1; }

# Outside the checkout: cargo must not take the new project, or the
# unpacked crate, for part of the checkout's workspace.
dir=$(mktemp -d "${TMPDIR:-/tmp}/ingest-crate-XXXXXX")
trap 'rm -rf "$dir"' EXIT
tar -xzf "$crate" -C "$dir"
unpacked=$dir/ingest-core-$version
[ -f "$unpacked/Cargo.toml" ] || fail "no Cargo.toml in $crate"
cargo new --quiet --vcs none --name readme_example "$dir/user"
cat >> "$dir/user/Cargo.toml" <<TOML
ingest-core = { path = "../ingest-core-$version" }
serde_json = "1"
tempfile = "3"

# A workspace of its own, not the checkout's it happens to sit under.
[workspace]
TOML
# The workspace's resolved versions: no surprise from a newer release.
cp "$root/Cargo.lock" "$dir/user/Cargo.lock"
awk '/^## Rust/ {s = 1} s && /^```rust$/ {p = 1; next} p && /^```$/ {exit} p' "$root/README.md" > "$dir/user/src/main.rs"
[ -s "$dir/user/src/main.rs" ] || fail "README.md: no Rust example in the Rust section"
# The workspace's target dir: its dependencies are already built.
(cd "$dir/user" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" cargo run --quiet) \
  || fail "the README's Rust example failed against the packaged crate"
echo "crate $(basename "$crate"): the README's Rust example ran in a new project"
