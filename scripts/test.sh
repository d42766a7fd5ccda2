#!/usr/bin/env bash
# The full test suite: the one command the README gives for tests, and what
# CI runs after its format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# mpc-core's TCP transport (feature `tcp`) is only used by benchmarks; test it anyway.
cargo test --workspace --locked --all-targets --features mpc-core/tcp "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --locked --doc
