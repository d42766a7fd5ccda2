#!/usr/bin/env bash
# The full test suite: the one command the README gives for tests, and what
# CI runs after its format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# The broker's store tests run against a real redis-server, which the test
# harness starts on a free port; node/tests/cluster_script.rs runs
# scripts/cluster.sh, which also starts nginx and coturn's turnserver. Install
# whichever is missing (nginx lives in /usr/sbin, not on every user's PATH).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
if [ ${#missing[@]} -gt 0 ]; then
    echo "${missing[*]} not found; installing with apt-get" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    # Debian starts system instances on install (redis on 6379, nginx on 80); the
    # tests use none of them, and a busy port 80 would fail nginx's install. A
    # policy-rc.d that refuses every start prevents that, for the install only.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
        $sudo_cmd chmod 0755 "$policy"
    fi
    status=0
    $sudo_cmd apt-get update -qq || status=$?
    if [ "$status" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
    fi
    if [ -n "$policy" ]; then $sudo_cmd rm -f "$policy"; fi
    if [ "$status" -ne 0 ]; then
        echo "installing ${missing[*]} failed (apt-get exit $status)" >&2
        exit "$status"
    fi
fi

# mpc-core's TCP transport (feature `tcp`) is only used by benchmarks; test it anyway.
cargo test --workspace --locked --all-targets --features mpc-core/tcp "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --locked --doc
