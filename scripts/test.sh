#!/usr/bin/env bash
# The README's test command: the peers first, then every test of the host workspace, then the plugins' own
# unit tests and the example plugins'. The plugins are tested one package at a time: each turns on the SDK
# feature of its own kind, and those cannot be compiled together (see host/build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace
for pkg in $(bash scripts/plugin-packages.sh); do
  cargo test --manifest-path plugins/Cargo.toml -p "$pkg"
done
for d in examples/plugins/*/; do
  cargo test --manifest-path "$d/Cargo.toml"
done
