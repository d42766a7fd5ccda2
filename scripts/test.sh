#!/usr/bin/env bash
# The full test suite: the one command the README gives for tests, and what
# CI runs after its format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# The broker's store tests run against a real redis-server, which the test
# harness starts on a free port. Install it when missing.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server not found; installing it with apt-get" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq redis-server >/dev/null
    # Debian starts a system instance on 6379; the tests do not use it.
fi

# mpc-core's TCP transport (feature `tcp`) is only used by benchmarks; test it anyway.
cargo test --workspace --locked --all-targets --features mpc-core/tcp "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --locked --doc
