"""What every fake venue shares (venue-neutral, like `_harness`): its
base class (`FakeVenue`: address, request log, brokers.toml table), the
argument checks of its fault switches, and its apps' websocket read loop."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

# how long a fake may hold an order reply back (`delay_acks`)
MAX_ACK_DELAY = 60.0


def count(name: str, n: int) -> int:
    """`n` as a switch's count (an int >= 0), or a `ValueError` naming it."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f'{name} needs a count >= 0, got {n!r}')
    return n


def ack_delay(seconds: float) -> float:
    """`seconds` as a `delay_acks` delay (0: off), or a `ValueError`."""
    seconds = float(seconds)
    if not 0 <= seconds <= MAX_ACK_DELAY:
        raise ValueError(f'delay_acks takes 0..{MAX_ACK_DELAY:g} seconds, got {seconds!r}')
    return seconds


async def texts(websocket: Any) -> AsyncIterator[str]:
    """The text of each frame a client sends (binary frames decoded as
    UTF-8) until it disconnects."""
    while True:
        msg = await websocket.receive()
        if msg['type'] == 'websocket.disconnect':
            return
        text = msg.get('text')
        if text is None and msg.get('bytes') is not None:
            text = msg['bytes'].decode('utf-8', 'replace')
        if text is not None:
            yield text


class FakeVenue:
    """What every fake venue shares: its loopback address (`host`,
    `port`), its request log (`requests`) and the brokers.toml table that
    points piker at it. A fake names its backend (`BROKER`) and the URLs
    that table sets (`URL_KEYS`: properties of the fake)."""

    BROKER: str
    URL_KEYS: tuple[str, ...] = ('rest_url', 'ws_url')
    host: str
    port: int
    api_key: str
    api_secret: str
    requests: Any  # a bounded deque of dicts, oldest first

    @property
    def rest_url(self) -> str:
        return f'http://{self.host}:{self.port}'

    def config_toml(self, accounts: tuple[str, ...] = ('paper', 'spot')) -> str:
        """The `[<broker>]` table of brokers.toml that points piker here."""
        accts = ', '.join(f'"{a}"' for a in accounts)
        urls = ''.join(f'{key} = "{getattr(self, key)}"\n' for key in self.URL_KEYS)
        return (
            f'[{self.BROKER}]\n' + urls
            + f'api_key = "{self.api_key}"\n'
            f'api_secret = "{self.api_secret}"\n'
            f'accounts = [{accts}]\n'
        )

    def request_log(self, path: str | None = None) -> list[dict]:
        """Logged REST requests (optionally of one path), oldest first."""
        return [r for r in self.requests if path is None or r['path'] == path]
