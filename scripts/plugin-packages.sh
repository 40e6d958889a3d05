#!/usr/bin/env bash
# The package names of the plugins/ workspace, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --manifest-path plugins/Cargo.toml --no-deps --format-version 1 |
  python3 -c 'import json, sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))'
