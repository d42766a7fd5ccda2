#!/usr/bin/env bash
# mpc-core vs MPyC 0.11: secret santa (N = 4, 8, 12) and sorting (8, 32, 64 numbers) for m = 3
# and m = 5 parties, each party a separate process on loopback TCP. Prints a markdown table.
# Usage: bash bench/mpyc/run.sh        (REPS=9 bash bench/mpyc/run.sh for more repetitions; the
# build honours CARGO_TARGET_DIR). Timings are only as good as the machine is quiet: the load
# average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."

nice -n 10 cargo build --release --locked -p mpc-core --features tcp --bin mpc-core-bench-party

if ! .venv-mpyc/bin/python -c 'import mpyc, sys; sys.exit(mpyc.__version__ != "0.11")' 2>/dev/null; then
    python3 -m venv .venv-mpyc
    .venv-mpyc/bin/pip install --quiet mpyc==0.11
fi

echo "machine: $(nproc) cores, $(uname -sr); MPyC $(.venv-mpyc/bin/python -c 'import mpyc; print(mpyc.__version__)') on $(.venv-mpyc/bin/python -V)"
echo "load before: $(uptime)"
python3 bench/mpyc/driver.py
echo "load after: $(uptime)"
