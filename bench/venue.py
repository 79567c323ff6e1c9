"""A real venue's latency: the binance backend against the fake Binance,
next to the paper engine, in one run, through the real actor tree.

    uv run python bench/venue.py [--quotes 300] [--orders 200]

This process serves the fake Binance (`piker.testing.open_fake_binance`,
a loopback HTTP + websocket server, walk paused) and runs pikerd and the
clients; `brokerd.binance`, `brokerd.sim`, `emsd` and the paper venues are
daemons under it. Measured, one at a time:

- websocket frame at the fake -> quote at a client: `fake.push()` puts a
  bookTicker frame in the fake's outbox; the time until `open_feed()` in
  this process yields it (fake -> ws -> brokerd.binance -> client);
  the same for the sim (`open_market_control().push()` -> client);
- order -> open, live: a resting limit order through emsd and
  brokerd.binance (signed REST to the fake, its executionReport back on
  the user data stream); and the same order in paper mode
  (emsd -> paperboi.binance), on the same market and quotes.

Loopback only, one host: the figures are piker's own overhead plus the
fake's (Starlette/hypercorn), not Binance's network. The header prints
the load average; compare runs at similar load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

FQME = 'btcusdt.binance'
SIM = 'btcusdt.sim'
BID, ASK = 64_000.0, 64_000.5
REST = 50_000.0
SIZE = 0.001
WARMUP = 20


async def quote_latency(res, name: str, push, stream, fqme: str, n: int,
                        base: float) -> None:
    """`push(bid)` then wait for the quote with that bid on `stream`."""
    for i in range(WARMUP + n):
        bid = round(base + (i % 500) * 0.01 + (0.5 if i % 2 else 0.0), 2)
        t0 = time.perf_counter()
        await push(bid)
        with trio.fail_after(10):
            async for batch in stream:
                q = batch.get(fqme)
                if q is not None and q.get('bid') == bid:
                    break
        if i >= WARMUP:
            res.add(name, (time.perf_counter() - t0) * 1e3)


async def order_to_open(res, name: str, client, trades, n: int, account: str) -> None:
    # bench/ems.py, imported lazily: sub-actors re-run this file
    from ems import _until
    oids = []
    for i in range(WARMUP + n):
        order = client.mk_order('buy', REST, SIZE, account=account)
        t0 = time.perf_counter()
        client.send_nowait(order)
        await _until(trades, order.oid, {'open'})
        if i >= WARMUP:
            res.add(name, (time.perf_counter() - t0) * 1e3)
        oids.append(order.oid)
    for oid in oids:
        client.cancel_nowait(oid)
        await _until(trades, oid, {'canceled'})


async def run_tree(args: argparse.Namespace, res) -> None:
    from piker.brokers.sim import open_market_control
    from piker.clearing import open_ems
    from piker.data import open_feed
    from piker.service import maybe_open_pikerd
    from piker.testing import open_fake_binance
    from piker.testing._binance import binance_conf

    confdir = Path(os.environ['PIKER_CONFIG_DIR'])
    # orders_10s: the bench sends faster than Binance's order-rate limit allows
    async with open_fake_binance(quote_rate=0, balances={'USDT': 10_000_000},
                                 orders_10s=1_000_000) as fake:
        (confdir / 'brokers.toml').write_text(
            binance_conf(fake, extra={'sim': {'seed': 1, 'quote_rate': 0.0}}))
        fake.push('BTCUSDT', bid=BID, ask=ASK, bsize=5, asize=5)
        async with maybe_open_pikerd():
            async with open_feed([FQME]) as feed:
                async def push_binance(bid: float) -> None:
                    fake.push('BTCUSDT', bid=bid, ask=bid + 0.5, bsize=5, asize=5)
                await quote_latency(res, 'quote: fake ws frame -> client (binance)',
                                    push_binance, feed.stream, FQME, args.quotes, BID)
            async with (
                open_market_control(SIM, resume_on_exit=False) as ctl,
                open_feed([SIM]) as feed,
            ):
                async def push_sim(bid: float) -> None:
                    await ctl.push(bid=bid, ask=bid + 0.5, bsize=5, asize=5)
                await quote_latency(res, 'quote: sim push -> client (sim)',
                                    push_sim, feed.stream, SIM, args.quotes, BID)
            fake.push('BTCUSDT', bid=BID, ask=ASK, bsize=5, asize=5)
            async with open_ems(FQME, mode='live') as (client, trades, *_):
                await order_to_open(res, 'order -> open, live (brokerd.binance + fake)',
                                    client, trades, args.orders, 'spot')
            async with open_ems(FQME, mode='paper') as (client, trades, *_):
                await order_to_open(res, 'order -> open, paper (paperboi.binance)',
                                    client, trades, args.orders, 'paper')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quotes', type=int, default=300, help='quotes per feed phase')
    parser.add_argument('--orders', type=int, default=200, help='orders per mode')
    args = parser.parse_args()

    from ems import Results, pct  # bench/ems.py

    from piker.testing import free_port  # importing piker silences trio warnings

    conf = Path(tempfile.mkdtemp(prefix='piker-bench-venue-'))
    os.environ['PIKER_CONFIG_DIR'] = str(conf)
    os.environ['PIKER_REGISTRY_ADDR'] = f'127.0.0.1:{free_port()}'
    for var in ('PIKER_BINANCE_API_KEY', 'PIKER_BINANCE_API_SECRET'):
        os.environ.pop(var, None)
    print(f'piker venue bench: {FQME} on the fake Binance vs paper/sim, {args.quotes} '
          f'quotes / {args.orders} orders per phase, python {sys.version.split()[0]}, '
          f'{os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.2f}', flush=True)
    res = Results()
    t0 = time.perf_counter()
    try:
        trio.run(run_tree, args, res)
    finally:
        shutil.rmtree(conf, ignore_errors=True)
    print()
    print(res.table().split('\n\nthroughput')[0])
    live = res.lat.get('order -> open, live (brokerd.binance + fake)')
    paper = res.lat.get('order -> open, paper (paperboi.binance)')
    if live and paper:
        print(f'\nlive order -> open p50 is {pct(live, 50) / pct(paper, 50):.1f} x paper\'s')
    print(f'(tree run {time.perf_counter() - t0:.1f}s, load avg {os.getloadavg()[0]:.2f})')


if __name__ == '__main__':
    main()
