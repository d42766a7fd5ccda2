#!/usr/bin/env bash
# The full test suite: the one command the README gives for tests, and what
# CI runs after its format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked --all-targets "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --locked --doc
