"""Order latency and status fan-out across hosts (network namespaces, root).

    sudo uv run python bench/multihost.py [--orders 200] [--clients 1,10,50]

Builds the three-host tree of tests/test_multihost.py (A: pikerd + emsd,
B: a joined supervisor serving brokerd.sim and paperboi.sim, C: clients;
mutual TLS between hosts) and, in the same run, the same daemons on one
host's loopback (plain TCP). Measured, one order at a time, resting paper
buys far below the market (never fill):

- order -> `open` p50 / p99 from C through A to the venue in B, versus
  the loopback tree;
- fan-out: K listening sessions in C (one process, each its own EMS
  session over the one TLS connection tractor keeps per peer) while a
  driver session places orders; per order, the time from send until every
  listener holds its `open` status, divided by K = the per-client cost
  per status, for K in `--clients`. Target: flat within 20 % from 10 to 50.

Each namespace's processes share one clock (CLOCK_MONOTONIC is
system-wide), so cross-process times are comparable.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FQME = 'btcusdt.sim'
PRICE = 60_000.0  # a resting buy: the sim starts near 65,000


# --- the client (run inside a namespace) ------------------------------------------

async def _client(orders: int, listeners: int) -> None:
    import trio

    from piker.clearing import Status, open_ems, wait_for_status
    from piker.service import maybe_open_pikerd

    got: dict[str, list[int]] = {}
    async with maybe_open_pikerd(), trio.open_nursery() as n:

        async def listen(ready: trio.Event) -> None:
            async with open_ems(FQME) as (_client, trades, *_):
                ready.set()
                async for msg in trades:
                    if isinstance(msg, Status) and msg.resp == 'open':
                        got.setdefault(msg.oid, []).append(time.monotonic_ns())

        for _ in range(listeners):
            ready = trio.Event()
            n.start_soon(listen, ready)
            await ready.wait()
        lat, fan = [], []
        async with open_ems(FQME) as (client, trades, *_):
            for i in range(orders + 5):
                t0 = time.monotonic_ns()
                oid = await client.send(client.mk_order('buy', PRICE, 0.001))
                await wait_for_status(trades, oid, 'open')
                t1 = time.monotonic_ns()
                if listeners:
                    with trio.fail_after(10):
                        while len(got.get(oid, ())) < listeners:
                            await trio.sleep(0.0005)
                    fan.append((max(got[oid]) - t0) / 1e3)
                await client.cancel(oid)
                await wait_for_status(trades, oid, 'canceled')
                if i >= 5:  # warm-up
                    lat.append((t1 - t0) / 1e3)
        print(json.dumps({'open_us': lat, 'fanout_us': fan}), flush=True)
        n.cancel_scope.cancel()


# --- the harness -----------------------------------------------------------------

def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--orders', type=int, default=200)
    ap.add_argument('--clients', default='1,10,50')
    ap.add_argument('--client', nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        import trio
        trio.run(_client, *args.client)
        return

    from piker.testing._netns import ADDR, PIKER, Hosts, NetnsUnavailable

    if os.geteuid() != 0:
        sys.exit('bench/multihost.py needs root (network namespaces)')
    root = Path(tempfile.mkdtemp(prefix='piker-multihost-'))
    h = Hosts(root)
    try:
        h.up()
    except NetnsUnavailable as err:
        sys.exit(f'cannot create network namespaces: {err}')
    reg = f'{ADDR["A"]}:6116'
    me = [sys.executable, str(Path(__file__).resolve())]

    def run_client(host: str, env: dict, orders: int, listeners: int) -> dict:
        r = h.run(host, [*me, '--client', str(orders), str(listeners)], env, timeout=900)
        line = [x for x in r.stdout.splitlines() if x.startswith('{')]
        if r.returncode or not line:
            sys.exit(f'client failed:\n{r.stderr[-3000:]}')
        return json.loads(line[-1])

    def wait_services(host: str, env: dict, names: set[str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = h.run(host, [PIKER, 'services'], env).stdout
            if all(n in out for n in names):
                return
            time.sleep(0.3)
        sys.exit('the tree did not come up')

    try:
        ca = h.env('A', reg, loglevel='error')
        for argv in (['certs', 'init'],
                     ['certs', 'issue', 'hostA', '--host', ADDR['A'], '--install'],
                     ['certs', 'issue', 'hostB', '--host', ADDR['B']],
                     ['certs', 'issue', 'clientC', '--host', ADDR['C']]):
            subprocess.run(h.cmd('A', PIKER, *argv), env=ca, check=True, capture_output=True)
        for name, host in (('hostB', 'B'), ('clientC', 'C')):
            shutil.copytree(h.dirs['A'] / 'certs' / 'bundles' / name, h.dirs[host] / 'certs')
        for d in h.dirs.values():  # no paper latency, resting orders only
            (d / 'brokers.toml').write_text('[sim.paper]\nlatency_ms = 0.0\n')

        # loopback: the same daemons on host A's loopback, plain TCP
        lo = h.env('A', '127.0.0.1:7116', loglevel='error')
        lo['PIKER_CONFIG_DIR'] = str(root / 'lo')
        (root / 'lo').mkdir()
        (root / 'lo' / 'brokers.toml').write_text('[sim.paper]\nlatency_ms = 0.0\n')
        h.spawn('A', [PIKER, 'pikerd', '--port', '7116'], lo, root / 'lo.log')
        wait_services('A', lo, set())
        loop = run_client('A', lo, args.orders, 0)

        h.spawn('A', [PIKER, 'pikerd', '--host', ADDR['A']], ca, root / 'A.log')
        wait_services('C', h.env('C', reg), set())
        h.spawn('B', [PIKER, 'pikerd', '--join', reg, '--host', ADDR['B'], '--serve',
                      'brokerd.sim,paperboi.sim'], h.env('B', reg, loglevel='error'),
                root / 'B.log')
        env_c = h.env('C', reg, loglevel='error')
        wait_services('C', env_c, {'brokerd.sim', 'paperboi.sim'})
        multi = run_client('C', env_c, args.orders, 0)

        print(f'load average {os.getloadavg()[0]:.2f}; {args.orders} orders each')
        print('order -> open (us)        p50       p99')
        for name, res in (('loopback (A only)', loop), ('C -> A -> B (TLS)', multi)):
            print(f'{name:22s} {_pct(res["open_us"], .5):9.0f} {_pct(res["open_us"], .99):9.0f}')
        print('fan-out per status, K listeners in C: until all K hold it, and / K')
        per = {}
        for k in (int(x) for x in args.clients.split(',')):
            res = run_client('C', env_c, max(50, args.orders // 4), k)
            p50 = statistics.median(res['fanout_us'])
            per[k] = p50 / k
            print(f'  K={k:3d}  all: p50 {p50:8.0f} us   per client: {per[k]:7.1f} us')
        if 10 in per and 50 in per:
            ratio = per[50] / per[10]
            print(f'per-client cost 50 vs 10: {ratio:.2f}x (target within 1.20x)')
    finally:
        h.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
