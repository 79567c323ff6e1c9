"""Listen keys of the user data stream (`/api/v3/userDataStream`).

A key lives `ttl` seconds from its creation or last keepalive (PUT); an
expired key gets a `listenKeyExpired` event on its sockets, which are
then closed, and is forgotten. POST while a key is live returns the same
key (and extends it), as Binance does.
"""
from __future__ import annotations

from collections.abc import Callable

from ._auth import new_key
from ._errors import unknown_listen_key
from ._streams import Hub

DEFAULT_TTL = 3600.0


class UserStreams:
    def __init__(self, hub: Hub, clock: Callable[[], float], ttl: float = DEFAULT_TTL) -> None:
        self.hub = hub
        self.clock = clock
        self.ttl = ttl
        self.keys: dict[str, float] = {}   # listenKey -> expiry (epoch s)

    def create(self) -> str:
        self.expire()
        now = self.clock()
        for key in self.keys:
            self.keys[key] = now + self.ttl
            return key
        key = new_key(60)
        self.keys[key] = now + self.ttl
        return key

    def keepalive(self, key: str) -> None:
        self.expire()
        if key not in self.keys:
            raise unknown_listen_key()
        self.keys[key] = self.clock() + self.ttl

    def close(self, key: str) -> None:
        if self.keys.pop(key, None) is None:
            raise unknown_listen_key()
        self.hub.disconnect('user', listen_key=key)

    def is_live(self, key: str) -> bool:
        self.expire()
        return key in self.keys

    def expire(self, key: str | None = None) -> list[str]:
        """Expire keys past their time (or `key` now); returns them."""
        now = self.clock()
        gone = [k for k, t in self.keys.items() if t <= now or k == key]
        for k in gone:
            del self.keys[k]
            self.hub.publish_user(
                {'e': 'listenKeyExpired', 'E': int(now * 1000), 'listenKey': k}, listen_key=k)
            self.hub.disconnect('user', listen_key=k)
        return gone
