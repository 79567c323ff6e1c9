"""One REST client and market cache per trio run (brokerd's life), from
`brokers.toml` `[kraken]` at first use (a `RunVar`, as for binance: no
client bound to another run's event loop is ever reused)."""
from __future__ import annotations

import trio

from ...config import KrakenConf, load_brokers_conf
from ._markets import MarketCache
from ._rest import Client


class Session:
    def __init__(self, conf: KrakenConf) -> None:
        self.conf = conf
        self.client = Client(conf.rest_url, conf.api_key, conf.api_secret)
        self.markets = MarketCache()


_session: trio.lowlevel.RunVar[Session] = trio.lowlevel.RunVar('kraken_session')


def get_session() -> Session:
    try:
        return _session.get()
    except LookupError:
        sess = Session(load_brokers_conf().kraken)
        _session.set(sess)
        return sess


__all__ = ['Session', 'get_session']
