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

# One profile (dev, dependencies optimised; see Cargo.toml): the test build
# and the main job share Burn's compilation.
cargo test --locked --all-targets 2>&1
