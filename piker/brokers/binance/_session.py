"""One REST client and market cache per trio run (brokerd's life).

Both come from `brokers.toml` `[binance]` at first use; a `RunVar` keeps
them per run, so tests running several trio runs in one process (or a
config that changed between runs) never share a client bound to another
event loop.
"""
from __future__ import annotations

import trio

from ...config import BinanceConf, load_brokers_conf
from ._markets import MarketCache
from ._rest import Client


class Session:
    def __init__(self, conf: BinanceConf) -> None:
        self.conf = conf
        self.client = Client(
            conf.rest_url, conf.api_key, conf.api_secret,
            recv_window_ms=conf.recv_window_ms,
        )
        self.markets = MarketCache()


_session: trio.lowlevel.RunVar[Session] = trio.lowlevel.RunVar('binance_session')


def get_session() -> Session:
    """This run's `Session`, created from the config on first use."""
    try:
        return _session.get()
    except LookupError:
        sess = Session(load_brokers_conf().binance)
        _session.set(sess)
        return sess


__all__ = ['Session', 'get_session']
