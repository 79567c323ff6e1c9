"""Make tests/data/recording: a small recorded span of btcusdt.sim (400
quotes, 20 s, 2026-11-30T14:00Z), in `piker.storage`'s tick layout.

    uv run python tests/data/make_recording.py
"""
from pathlib import Path

import numpy as np

from piker.brokers.sim._markets import MARKETS
from piker.storage import TickStore, quotes_to_rows

T0_NS = 1_796_047_200 * 10**9  # 2026-11-30T14:00:00Z


def quotes() -> list[dict]:
    rng = np.random.default_rng(14)
    last, vol, out = 100.0, 0.0, []
    for i in range(400):
        last = round(max(90.0, last + 0.1 * rng.integers(-3, 4)), 1)
        size = round(float(rng.uniform(0.01, 1.0)), 5)
        vol = round(vol + size, 5)
        bid, ask = round(last - 0.5, 1), round(last + 0.5, 1)
        out.append({
            'time_ns': T0_NS + i * 50_000_000, 'last': last, 'bid': bid, 'ask': ask,
            'bsize': 5.0, 'asize': 5.0, 'volume': vol,
            'ticks': [{'type': 'trade', 'price': last, 'size': size},
                      {'type': 'bid', 'price': bid, 'size': 5.0},
                      {'type': 'ask', 'price': ask, 'size': 5.0}],
        })
    return out


if __name__ == '__main__':
    root = Path(__file__).parent / 'recording'
    store = TickStore(root)
    store.delete('btcusdt.sim')
    store.write_mkt('btcusdt.sim', MARKETS['btcusdt'].mkt.to_builtins())
    store.append('btcusdt.sim', quotes_to_rows(quotes()))
    print(sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file()))
