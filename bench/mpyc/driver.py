"""Runs mpc-core and MPyC side by side on the same rows and prints a markdown table.

Each party is a separate OS process on loopback TCP. For every row and framework the run is
repeated REPS times; the reported time is the median over runs of the slowest party's compute
time (from connected mesh with PRSS keys exchanged to opened result: MPyC exchanges its keys
while connecting, mpc-core in its engine set-up, both before the clock starts). "e2e" is the median wall time from
launching the processes until all have exited (interpreter start-up, connection set-up, shutdown).
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get('CARGO_TARGET_DIR') or os.path.join(ROOT, 'target')
RUST = os.path.join(TARGET, 'release', 'mpc-core-bench-party')
PY = os.path.join(ROOT, '.venv-mpyc', 'bin', 'python')
SCRIPT = os.path.join(ROOT, 'bench', 'mpyc', 'bench_mpyc.py')
REPS = int(os.environ.get('REPS', '5'))
ROWS = [('secret-santa', n) for n in (4, 8, 12)] + [('sort', n) for n in (8, 32, 64)]
PARTIES = (3, 5)
_port = [21000]


def next_port(m):
    _port[0] += m + 3
    return _port[0]


def launch(kind, program, n, m):
    base = next_port(m)
    procs = []
    start = time.perf_counter()
    for i in range(m):
        if kind == 'rust':
            cmd = [RUST, str(i), str(m), str(base), program, str(n)]
            env = None
        else:
            cmd = [PY, SCRIPT, '-M', str(m), '-I', str(i), '-B', str(base), '--no-log']
            env = dict(os.environ, BENCH_PROGRAM=program, BENCH_N=str(n))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=env, text=True))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            sys.exit(f'{kind} {program} {n} m={m} failed:\n{err}')
        results.append(json.loads(out.strip().splitlines()[-1]))
    e2e = time.perf_counter() - start
    outputs = {r['output'] for r in results}
    if len(outputs) != 1:
        sys.exit(f'{kind} {program} {n} m={m}: parties disagree: {outputs}')
    return {
        'seconds': max(r['seconds'] for r in results),
        'e2e': e2e,
        'rounds': max(r.get('rounds', 0) for r in results),
        'messages': max(r['messages'] for r in results),
        'bytes': max(r['bytes'] for r in results),
        'output': outputs.pop(),
    }


def measure(kind, program, n, m):
    runs = [launch(kind, program, n, m) for _ in range(REPS)]
    med = lambda key: statistics.median(r[key] for r in runs)
    return {'seconds': med('seconds'), 'e2e': med('e2e'), 'rounds': med('rounds'),
            'messages': med('messages'), 'bytes': med('bytes'), 'output': runs[0]['output']}


def check_sort_agrees(a, b):
    if a['output'] != b['output']:
        sys.exit(f'sort outputs differ:\n{a["output"]}\n{b["output"]}')


def main():
    print(f'| program | n | m | MPyC s | mpc-core s | ratio | MPyC e2e s | mpc-core e2e s | e2e ratio '
          f'| mpc-core rounds | MPyC msgs/bytes per party | mpc-core msgs/bytes per party |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for program, n in ROWS:
        for m in PARTIES:
            py = measure('mpyc', program, n, m)
            rs = measure('rust', program, n, m)
            if program == 'sort':
                check_sort_agrees(py, rs)
            print(f'| {program} | {n} | {m} | {py["seconds"]:.4f} | {rs["seconds"]:.4f} '
                  f'| {py["seconds"] / rs["seconds"]:.0f}x | {py["e2e"]:.3f} | {rs["e2e"]:.3f} '
                  f'| {py["e2e"] / rs["e2e"]:.0f}x | {rs["rounds"]:.0f} '
                  f'| {py["messages"]:.0f} / {py["bytes"]:.0f} | {rs["messages"]:.0f} / {rs["bytes"]:.0f} |',
                  flush=True)


if __name__ == '__main__':
    main()
