"""One MPyC party of the mpc-core vs MPyC benchmark.

Run as: python bench_mpyc.py -M m -I i -B base_port   with BENCH_PROGRAM=sort|secret-santa,
BENCH_N=n (and optional BENCH_SEED). Prints one JSON line like mpc-core-bench-party.

The algorithms are the ones mpc-core implements: secure shuffles with secret random unit
vectors and rejection of permutations with a fixed point (mpyc.random.random_derangement) and
Batcher's merge-exchange sort (mpc.sorted), on 32-bit secure integers (MPyC's default secint).
"""
import json
import os
import time

from mpyc import asyncoro
from mpyc.runtime import mpc

MESSAGES = [0]
_send = asyncoro.MessageExchanger.send


def _counting_send(self, pc, payload):
    MESSAGES[0] += 1
    return _send(self, pc, payload)


asyncoro.MessageExchanger.send = _counting_send


def input_value(j, seed):
    """Same inputs as mpc-core-bench-party: value j of n."""
    x = ((j + seed) * 2654435761) % (1 << 64) % (1 << 32)
    return x - (1 << 31)


async def main():
    program = os.environ.get('BENCH_PROGRAM', 'secret-santa')
    n = int(os.environ.get('BENCH_N', '8'))
    seed = int(os.environ.get('BENCH_SEED', '1'))
    secint = mpc.SecInt(32)
    await mpc.start()
    m, me = len(mpc.parties), mpc.pid
    start = time.perf_counter()
    if program == 'sort':
        xs = []
        for i in range(m):
            count = len([j for j in range(n) if j % m == i])
            if i == me:
                mine = [secint(input_value(j, seed)) for j in range(n) if j % m == i]
            else:
                mine = [secint(None)] * count
            xs.extend(mpc.input(mine, senders=i))
        result = await mpc.output(mpc.sorted(xs))
        output = 'sorted: ' + str(result)
    elif program == 'secret-santa':
        perm = mpc.random.random_derangement(secint, n)
        result = await mpc.output(perm)
        output = f'secret santa among {n}: ' + ' '.join(f'{i}->{r}' for i, r in enumerate(result))
    else:
        raise SystemExit(f'unknown program {program}')
    seconds = time.perf_counter() - start
    nbytes = sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != me)
    await mpc.shutdown()
    print(json.dumps({'party': me, 'seconds': seconds, 'messages': MESSAGES[0],
                      'bytes': nbytes, 'output': output}), flush=True)


if __name__ == '__main__':
    mpc.run(main())
