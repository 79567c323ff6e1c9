"""brokerd's per-session sender (`_send_batches`): a busy feed is shipped
in batches at most every `COALESCE` seconds, a quiet one quote by quote.
Driven by trio's MockClock, so the timing is exact and instant."""
from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from piker.brokers._brokerd import COALESCE, RATE_WINDOW, _send_batches, decode_batch
from piker.buffers import QuoteBuffer

pytestmark = pytest.mark.timeout(30)


class _Chan:
    def connected(self) -> bool:
        return True


class _Ctx:
    chan = _Chan()


class _Stream:
    def __init__(self) -> None:
        self.frames: list[tuple[float, list]] = []

    async def send(self, msg: list) -> None:
        self.frames.append((trio.current_time(), msg))


def _run(rate: float, seconds: float = 1.0) -> tuple[list[tuple[float, list]], list[float]]:
    """Feed `rate` quotes/s for `seconds`; return the frames and put times."""
    async def main() -> tuple[list[tuple[float, list]], list[float]]:
        buf, stream = QuoteBuffer(), _Stream()
        puts = []
        async with trio.open_nursery() as n:
            n.start_soon(_send_batches, _Ctx(), stream, buf)
            t = trio.current_time()
            for i in range(int(seconds * rate)):
                buf.put('btcusdt.sim', {'symbol': 'btcusdt.sim', 'last': float(i),
                                        'ticks': [{'type': 'trade', 'price': float(i)}]})
                puts.append(trio.current_time())
                t += 1 / rate
                await trio.sleep_until(t)
            await trio.sleep(0.01)
            n.cancel_scope.cancel()
        return [f for f in stream.frames if f[1][0] == 'q'], puts

    return trio.run(main, clock=MockClock(autojump_threshold=0))


def _ticks(frames: list[tuple[float, list]]) -> int:
    return sum(len(q['ticks']) for _, (_, data) in frames
               for q in decode_batch(data).values())


def test_a_busy_feed_ships_a_batch_per_coalesce_period():
    frames, puts = _run(rate=5_000)
    # once its rate is known (after the first RATE_WINDOW, shipped quote by
    # quote): one frame per COALESCE, not one per quote
    later = [t for t, _ in frames if RATE_WINDOW < t <= 1.0]
    assert len(later) <= (1.0 - RATE_WINDOW) / COALESCE + 2
    assert min(b - a for a, b in zip(later, later[1:], strict=False)) >= COALESCE - 1e-9
    # conflated, never lost: every trade tick arrives
    assert _ticks(frames) == len(puts)


def test_a_quiet_feed_ships_every_quote_at_once():
    rate = round(0.5 / COALESCE)  # half the busy threshold
    frames, puts = _run(rate=rate)
    assert len(frames) == len(puts) == rate
    assert [t for t, _ in frames] == puts  # no added delay
