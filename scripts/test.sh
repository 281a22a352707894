#!/usr/bin/env bash
# Builds and runs the whole test suite on a fresh Debian machine.
# Tests generate every file they read: no dataset or network access needed
# beyond crates.io for the first build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# A fresh machine builds once, so cargo's incremental caches (about a third
# of the build's disk, several GB) would only be written, never reused. A CI
# run once failed with "No space left on device"; say how much there was.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
avail_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ -n "$avail_kib" ] && [ "$avail_kib" -lt $((4 * 1024 * 1024)) ]; then
  echo "warning: only $((avail_kib / 1024)) MiB free on $(pwd): the test build needs about 3 GiB" >&2
fi

# One profile (dev, dependencies optimised; see Cargo.toml): the test build
# and the main job share Burn's compilation.
cargo test --locked --workspace --all-targets 2>&1

# The kernels' unit tests again with debug assertions on, for this crate
# only: the profile above keeps them off (they cost gemm a factor of 3-4),
# so the checks inside the unsafe GEMM calls' inlined code (gemm's own
# `debug_assert!`s, std's precondition checks) run nowhere else. Only the
# library's test target is rebuilt (dependencies keep their build); the
# kernels' own guards are plain `assert!`s and ran in the pass above.
cargo test --locked -p selmask --lib --config 'profile.dev.package.selmask.debug-assertions=true' kernels:: 2>&1
