"""Broker backends, and `brokerd.<broker>`, the daemon that serves them.

A backend is a module or package `piker.brokers.<name>` (no leading
underscore); `get_brokermod(name)` loads it and `available_backends()`
lists them. `brokerd.<name>` is spawned on demand under pikerd by
`maybe_spawn_brokerd(name)` and serves the backend to every client:
market info, search, history and the quote feed bus (one upstream per
fqme fanned out to every subscriber, see `_feedbus.py`). The built-in
reference backend is `piker.brokers.sim`.

Writing a backend, faking its venue and checking it with the
conformance kit (`pytest --pyargs piker.testing.conformance --backend
NAME`): see docs/backends.md.

The backend contract
====================

Keys. A backend never sees an fqme's `.<broker>` suffix: brokerd calls it
with the broker-native key `bs_fqme` (`strip_broker(fqme)`, e.g.
`btcusdt`, `mnq.cme.20261218`). Backend endpoints are coroutines, so a
network backend can do I/O. Expected user errors are raised as
`SymbolNotFound` (unknown market, message listing close matches) or
`ValueError` (bad argument); brokerd turns them into error replies that
the client re-raises as the same class.

Required:

    async def get_mkt_info(bs_fqme: str) -> MktPair
        The market's `piker.accounting.MktPair` (broker = this backend's
        name, price/size ticks, `fqme_without_src` for stock-likes).

    async def symbol_search(pattern: str) -> dict[str, MktPair]
        Markets matching `pattern`, best match first, keyed by fqme.
        An empty pattern may list everything.

    async def open_history(
        bs_fqme: str, timeframe: int, *,
        start: int | None = None, end: int | None = None,
    ) -> np.ndarray
        OHLC bars of `timeframe` seconds (at least 1 and 60) as a
        structured array of `piker.data.OHLC_DTYPE`: `time` (int64, bar
        open, epoch seconds, increasing), `open`, `high`, `low`, `close`,
        `volume` (float64), `low <= open, close <= high`.
        Unsupported timeframe -> `ValueError`.
        Time range: only bars opening in `[start, end]` (epoch seconds,
        both inclusive). `end=None` is now; `start=None` is the backend's
        default depth back from `end` (what a chart wants at once: e.g.
        a day of 1 min bars). With a `start`, serve everything the venue
        has in the range, paging its API under its page size and rate
        limits. What the venue cannot serve (before the listing, a closed
        market, past a depth limit like Kraken's 720 OHLC bars) is simply
        absent: brokerd records the asked span it got no bars for as the
        venue's own gap and never asks for it again. A backend whose
        `open_history` takes no `start`/`end` still works, but gets no
        deep backfill (`piker store backfill --since`).

    async def stream_quotes(
        send_chan: trio.abc.SendChannel[dict],
        bs_fqmes: list[str],
        *,
        task_status: trio.TaskStatus[dict[str, dict]] = trio.TASK_STATUS_IGNORED,
    ) -> None
        Run with `nursery.start()`. Connect, then call
        `task_status.started({bs_fqme: first_quote})` with the current
        quote of each market, then `await send_chan.send(quote)` for every
        update until cancelled (returning counts as a failure of the feed).
        Raise before `started()` for an unknown market. brokerd runs one
        call per fqme and passes a `FanOut` whose `send()` never blocks;
        brokerd takes ownership of each sent dict (it sets `symbol` to the
        fqme), so send a fresh dict per quote. Quote format (all keys):

            {'symbol': bs_fqme, 'last': float, 'bid': float, 'ask': float,
             'bsize': float, 'asize': float, 'volume': float (cumulative),
             'time_ns': int (time.time_ns() at creation),
             'ticks': [{'type': 'bid'|'ask'|'trade'|'last',
                        'price': float, 'size': float}, ...]}

        `ticks` lists what changed in this update, in order. A backend
        that heals its own upstream (reconnects) says so with a tick
        `{'type': 'gap', 'price': nan, 'size': 0.0, 'reason': str}` when
        it loses it and when it is back; emsd tells dark orders.

Optional:

    trades_dialogue   a `@tractor.context` endpoint speaking DESIGN.md
                      section 5 (live order execution). Without it the
                      backend is paper-only (the sim is). emsd may send
                      several commands as one batch frame: unpack it
                      with `piker.clearing.commands_of` and handle them
                      in order (`_dialogue.serve_commands` does).
    REPORTS_ORDERS = True
    TIME_IN_FORCE = ('gtc', 'ioc', ...)
                      the `BrokerdOrder.tif` values the venue honours
                      (default gtc only); emsd refuses an order with any
                      other before it is sent (gtd is emsd's own).
                      the `trades_dialogue` opens with an order report
                      (below). Strongly recommended: without it emsd
                      cannot tell what happened to its orders while its
                      connection to the broker was down.

Order report (recovery after a restart or a lost connection). Right after
`ctx.started((positions, accounts))` a reporting backend sends, on the
stream: the fills (`BrokerdFill`) and final statuses (`BrokerdStatus`
'closed'/'canceled') of the recent past that emsd may have missed, oldest
first (repeats are harmless: emsd drops fills by tid and a second final
status); one `BrokerdStatus(status='open', reqid, oid, req=BrokerdOrder(...),
filled, remaining)` per order working at the broker (set `oid` when the
broker knows emsd's id for it, e.g. as the order's client id); then
`BrokerdOrdersSynced(reqids=[every working reqid])`. emsd holds its own
requests back until then and reconciles (`piker.clearing._reconcile`):
events apply to the dialogs they name (by reqid, else oid; a dialog whose
ack was lost takes the reqid from them), an unknown working order becomes
an external dialog, and an emsd dialog at this venue that the broker does
not list as working is resolved (`closed` if filled, else `canceled`,
"not found at venue after reconnect"; `error` if it was never acked). The
paper engine (`piker.clearing._paper_engine`) is the reference
implementation.
    __enable_modules__: list[str]
                      extra modules brokerd must expose (e.g. the sim's
                      `_control`), appended to brokerd's `enable_modules`.

Client side, nobody calls backends directly: use `piker.data.open_feed()`
(quotes, `MktPair`s, history) or brokerd's endpoints via
`maybe_spawn_brokerd()` (see `_brokerd.py`).
"""
from ._brokerd import (
    BROKERD,
    brokerd_spec,
    daemon_name,
    maybe_spawn_brokerd,
)
from ._errors import BrokerError, FeedError, NoSuchBackend, SymbolNotFound
from ._registry import REQUIRED_ENDPOINTS, available_backends, get_brokermod

__all__ = [
    'BROKERD',
    'REQUIRED_ENDPOINTS',
    'BrokerError',
    'FeedError',
    'NoSuchBackend',
    'SymbolNotFound',
    'available_backends',
    'brokerd_spec',
    'daemon_name',
    'get_brokermod',
    'maybe_spawn_brokerd',
]
