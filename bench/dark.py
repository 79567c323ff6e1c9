"""Dark book cost per quote: the sorted index against a naive scan.

    uv run python bench/dark.py [--orders 100000]

Rests N dark orders (buys and sells, above and below the market) on one
fqme and measures what emsd pays per incoming quote:

1. no fire: quotes wander inside the band with no resting level - the
   common case, which the index answers with a comparison per list end
   (target <= 20 us per quote, >= 500x faster than scanning);
2. a naive scan of every resting order per quote, as the reference;
3. with fires: quotes sweep up through N triggers, firing ~N/10,000 each.

In-process only (no actors); runs in a few seconds.
"""
from __future__ import annotations

import argparse
import random
import time

from piker.clearing._dark import DarkBook

FQME = 'btcusdt.sim'
MID = 30_000.0
TICKS = ('ask', 'bid', 'trade')


def mk_quote(rng: random.Random, lo: float, hi: float) -> dict:
    last = rng.uniform(lo, hi)
    return {
        'symbol': FQME,
        'ticks': [
            {'type': 'bid', 'price': last - 0.5, 'size': 1.0},
            {'type': 'ask', 'price': last + 0.5, 'size': 1.0},
            {'type': 'trade', 'price': last, 'size': 0.1},
        ],
    }


def fill_book(n: int, rng: random.Random) -> tuple[DarkBook, list[tuple]]:
    """N orders resting at least 50 away from MID (nothing fires in the band)."""
    book = DarkBook()
    orders = []
    for i in range(n):
        action = rng.choice(('buy', 'sell', 'alert'))
        side = rng.choice((-1, 1))
        level = round(MID + side * rng.uniform(50, 5_000), 1)
        oid = f'o{i}'
        book.arm(oid, FQME, action, level, last_price=MID,
                 size=1.0, price_tick='0.1', pad_ticks=5)
        orders.append((oid, action, level, 'up' if level > MID else 'down'))
    return book, orders


_WATCH = {
    'buy': {'ask', 'last', 'trade'},
    'sell': {'bid', 'last', 'trade'},
    'alert': {'last', 'trade'},
}


def naive_scan(orders: list[tuple], quote: dict) -> list[str]:
    """What a book without an index does: test every order on every tick."""
    out = []
    for tick in quote['ticks']:
        p = tick['price']
        for oid, action, level, direction in orders:
            if tick['type'] in _WATCH[action] and (
                (direction == 'up' and p >= level) or (direction == 'down' and p <= level)
            ):
                out.append(oid)
    return out


def per_quote(fn, quotes: list[dict]) -> float:
    t0 = time.perf_counter()
    for quote in quotes:
        fn(quote)
    return (time.perf_counter() - t0) / len(quotes)


def measure(n_orders: int = 100_000, n_quotes: int = 50_000, seed: int = 7) -> list[str]:
    """Run the three measurements; return the report lines (with verdicts).

    `bench/ems.py` prints them too, so the EMS bench has every figure of
    its issue in one run.
    """
    rng = random.Random(seed)
    out = []
    t0 = time.perf_counter()
    book, orders = fill_book(n_orders, rng)
    arm_us = (time.perf_counter() - t0) / n_orders * 1e6
    out.append(f'dark book: {n_orders:,} resting orders on {FQME} '
               f'(arm: {arm_us:.1f} us/order), in-process')

    # 1. no fire
    quotes = [mk_quote(rng, MID - 40, MID + 40) for _ in range(n_quotes)]
    fired = 0

    def index(quote: dict) -> None:
        nonlocal fired
        fired += len(book.process_quote(FQME, quote))

    idx = min(per_quote(index, quotes) for _ in range(3))
    assert fired == 0, fired

    # 2. naive scan (few quotes: it is slow)
    scan_quotes = quotes[:20]
    naive = per_quote(lambda quote: naive_scan(orders, quote), scan_quotes)
    speedup = naive / idx
    out.append(f'  no fire:     {idx * 1e6:8.2f} us/quote   (target <= 20 us)   '
               f'{"OK" if idx <= 20e-6 else "SLOW"}')
    out.append(f'  naive scan:  {naive * 1e6:8.0f} us/quote   -> index is {speedup:,.0f}x '
               f'faster (target >= 500x)   {"OK" if speedup >= 500 else "SLOW"}')

    # 3. with fires: a book of N triggers above the market, all 'up'; the
    # price sweeps upwards through them so each quote fires the next few
    rng = random.Random(seed + 1)
    book = DarkBook()
    levels = []
    for i in range(n_orders):
        level = round(MID + rng.uniform(1, 5_000), 1)
        levels.append(level)
        book.arm(f'o{i}', FQME, rng.choice(('buy', 'sell', 'alert')), level,
                 last_price=MID, size=1.0, price_tick='0.1', pad_ticks=5)
    levels.sort()
    sweeps = 10_000
    step = len(levels) // sweeps
    sweep = [levels[min(i * step + step - 1, len(levels) - 1)] for i in range(sweeps)]
    sweep.append(levels[-1] + 1)
    fired_total = 0
    t0 = time.perf_counter()
    for price in sweep:
        fired_total += len(book.process_quote(FQME, {'symbol': FQME, 'ticks': [
            {'type': 'trade', 'price': price, 'size': 1.0},
            {'type': 'ask', 'price': price + 0.5, 'size': 1.0},
            {'type': 'bid', 'price': price - 0.5, 'size': 1.0},
        ]}))
    dt = time.perf_counter() - t0
    assert fired_total == n_orders and len(book) == 0
    out.append(f'  with fires:  {dt / len(sweep) * 1e6:8.2f} us/quote at '
               f'{fired_total / len(sweep):.1f} fired/quote '
               f'({dt / fired_total * 1e6:.2f} us per fired trigger, padding included)')
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--orders', type=int, default=100_000)
    ap.add_argument('--quotes', type=int, default=50_000)
    ap.add_argument('--seed', type=int, default=7)
    args = ap.parse_args()
    print('\n'.join(measure(args.orders, args.quotes, args.seed)))


if __name__ == '__main__':
    main()
