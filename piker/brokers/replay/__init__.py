"""`replay`: a recorded span of a market, served as a live market.

`<fqme>.replay` (e.g. `btcusdt.sim.replay`, `btcusdt.binance.replay`)
replays what `piker record` / `[storage] record` stored for `<fqme>`
(`piker.storage.TickStore`) through the backend contract, so the paper
engine fills against it and a chart, a script or a test run unchanged.
Recorded fqmes of at most three tokens can be replayed (an fqme has at
most four: `.replay` takes one).

`brokers.toml`:

    [replay]
    start = "2026-11-30T14:00"   # span (ISO, naive = UTC); default: all recorded
    end = "2026-11-30T16:00"
    speed = 1.0                  # 1 = real time, N = N x, 0 = no pacing
    paused = false               # wait for `open_replay_control(fqme).play()`

`piker chart FQME --replay 2026-11-30T14:00/16:00 --speed 10` charts
`FQME.replay` over that span (it starts its own service tree for it).

Quotes keep their recorded `time_ns`: the same recording gives the same
quotes in the same order at every speed (bars, fills and their times
too). At `speed = 0` quotes go out back to back, one scheduler yield
apart: a consumer that falls behind gets them conflated (latest L1,
every tick kept, see `piker.buffers`), so the paper engine, which
fills on ticks, fills the same as at a paced speed (tested). History (`open_history`) is the stored bars of `<fqme>` before
the span starts. When the span is over the market goes quiet (no quotes,
brokerd's heartbeat goes on).
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import trio

from ...accounting import MktPair, unpack_fqme
from ...storage import BarStore, TickStore, rows_to_quotes
from .._errors import SymbolNotFound
from ._control import replay_state

__enable_modules__: list[str] = ['piker.brokers.replay._control']

# brokerd serves what is stored: no backfill into the store, no live bars
SERVES_STORE = True

Quote = dict


def recorded_fqme(bs_fqme: str) -> str:
    """`btcusdt.sim` from `btcusdt.sim` or `btcusdt.sim.replay`."""
    key = bs_fqme.strip().lower()
    return key[: -len('.replay')] if key.endswith('.replay') else key


def _conf() -> dict:
    from ...config import load_brokers_conf
    conf = load_brokers_conf().backend('replay')
    return dict(conf.model_extra or {})


def _epoch(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f'brokers.toml [replay] {what}: {text!r} is not an ISO date/time') from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


# `piker chart --replay` passes its span to the brokerd it starts this way
ENV_SPAN = 'PIKER_REPLAY_SPAN'     # "<start ISO>/<end ISO>"
ENV_SPEED = 'PIKER_REPLAY_SPEED'


def span() -> tuple[int | None, int | None, float, bool]:
    """`(start, end, speed, paused)` from `brokers.toml [replay]`, or from
    `$PIKER_REPLAY_SPAN` / `$PIKER_REPLAY_SPEED` when set."""
    import os

    conf = _conf()
    if os.environ.get(ENV_SPAN):
        conf['start'], _, conf['end'] = os.environ[ENV_SPAN].partition('/')
    if os.environ.get(ENV_SPEED):
        conf['speed'] = os.environ[ENV_SPEED]
    try:
        speed = float(conf.get('speed', 1.0))
    except ValueError:
        raise ValueError(f'replay speed must be a number, got {conf["speed"]!r}') from None
    if not math.isfinite(speed) or speed < 0:
        raise ValueError(f'brokers.toml [replay] speed must be >= 0, got {speed}')
    return (_epoch(conf.get('start'), 'start'), _epoch(conf.get('end'), 'end'), speed,
            bool(conf.get('paused', False)))


def _mkt(bs_fqme: str) -> MktPair:
    src = recorded_fqme(bs_fqme)
    store = TickStore()
    raw = store.read_mkt(src) if src in store.markets() else None
    if raw is None:
        known = ', '.join(f'{m}.replay' for m in store.markets()) or 'none yet'
        raise SymbolNotFound(f'nothing recorded for {src!r} to replay (recorded: {known}); '
                             f'record it with `piker record {src}`')
    broker, pair, venue, suffix = unpack_fqme(src)
    if suffix:
        raise SymbolNotFound(f'{src!r} has too many parts to replay as {src}.replay')
    mkt = MktPair.from_msg(raw)
    return mkt.copy(update={'broker': 'replay', 'venue': venue or broker,
                            'expiry': broker if venue else ''})


async def get_mkt_info(bs_fqme: str) -> MktPair:
    return _mkt(bs_fqme)


async def symbol_search(pattern: str) -> dict[str, MktPair]:
    pattern = pattern.strip().lower()
    out = {}
    for m in TickStore().markets():
        if pattern in m:
            try:
                mkt = _mkt(m)
            except SymbolNotFound:
                continue
            out[mkt.fqme] = mkt
    return out


async def open_history(bs_fqme: str, timeframe: int, *, start: int | None = None,
                       end: int | None = None) -> np.ndarray:
    """Stored bars of the recorded market before the span's start (the
    replay's "now"), those opening in `[start, end]` if given."""
    src = recorded_fqme(bs_fqme)
    _mkt(src)
    now, *_ = span()
    if now is None:
        first = load_quotes(src)[:1]
        now = first[0]['time_ns'] // 10**9 if first else None
    stop = end + 1 if end is not None else None
    if now is not None:
        stop = now if stop is None else min(stop, now)
    return await trio.to_thread.run_sync(BarStore().read, src, int(timeframe), start, stop)


def load_quotes(src: str) -> list[Quote]:
    start, end, *_ = span()
    rows = TickStore().read(src, None if start is None else start * 10**9,
                            None if end is None else end * 10**9)
    return rows_to_quotes(rows.sort('time_ns', 'seq', maintain_order=True), symbol=src)


async def stream_quotes(
    send_chan: trio.abc.SendChannel[Quote],
    bs_fqmes: list[str],
    *,
    task_status: trio.TaskStatus[dict[str, Quote]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Replay each market's recorded quotes (see module doc)."""
    _, _, speed, paused = span()
    tapes = {}
    for key in bs_fqmes:
        src = recorded_fqme(key)
        _mkt(src)
        quotes = await trio.to_thread.run_sync(load_quotes, src)
        if not quotes:
            raise SymbolNotFound(f'no recorded quotes of {src} in the replay span '
                                 '(brokers.toml [replay] start/end)')
        tapes[key] = quotes
    first = {key: {**tape[0], 'symbol': key} for key, tape in tapes.items()}
    task_status.started(first)
    async with trio.open_nursery() as n:
        for key, tape in tapes.items():
            n.start_soon(_play, send_chan, key, tape[1:], speed, paused, tape[0]['time_ns'])


async def _play(send_chan, key: str, tape: list[Quote], speed: float, paused: bool,
                t0_ns: int) -> None:
    state = replay_state(recorded_fqme(key))
    if not paused:
        state.play.set()
    await state.play.wait()
    clock0 = trio.current_time()
    for quote in tape:
        if speed > 0:
            await trio.sleep_until(clock0 + (quote['time_ns'] - t0_ns) / 1e9 / speed)
        else:
            await trio.lowlevel.checkpoint()
        await send_chan.send({**quote, 'symbol': key, 'ticks': list(quote['ticks'])})
        state.sent += 1
    state.done.set()
    await trio.sleep_forever()
