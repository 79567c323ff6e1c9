"""The fqme grammar (DESIGN.md section 4): parse, build and strip fqmes.

An *fqme* (fully qualified market endpoint) is the lower-case dotted name
clients use everywhere: `<pair>[.<venue>][.<suffix>].<broker>`, e.g.
`btcusdt.sim` or `mnq.cme.20261218.ib`. A backend only ever sees the
broker-native key: the fqme with its `.<broker>` suffix stripped
(`strip_broker()`).

Why a bottom-floor module of its own: `config` validates fqme keys and
`accounting` builds `MktPair`s on them, so the grammar must import
nothing of piker's (no cycle, no lazy import). `piker.accounting`
re-exports these names.
"""
from __future__ import annotations

import functools

__all__ = ['check_token', 'mk_fqme', 'strip_broker', 'unpack_fqme']

_FQME_HELP = (
    'expected <pair>[.<venue>][.<suffix>].<broker>, '
    "e.g. 'btcusdt.sim', 'mnq.cme.ib' or 'mnq.cme.20261218.ib'"
)


def check_token(value: str, what: str, *, required: bool) -> None:
    """Reject fqme tokens that would not survive a dotted round-trip."""
    if not isinstance(value, str):
        raise ValueError(f'{what} must be a string, got {value!r}')
    if not value:
        if required:
            raise ValueError(f'{what} must not be empty')
        return
    if '.' in value or any(c.isspace() for c in value):
        raise ValueError(
            f'{what} {value!r} must not contain dots or whitespace'
        )


def unpack_fqme(fqme: str) -> tuple[str, str, str, str]:
    """Split an fqme into `(broker, pair, venue, suffix)`, lower-cased.

    `btcusdt.sim` -> `('sim', 'btcusdt', '', '')`,
    `mnq.cme.ib` -> `('ib', 'mnq', 'cme', '')`,
    `mnq.cme.20261218.ib` -> `('ib', 'mnq', 'cme', '20261218')`.
    Anything else raises `ValueError` saying what a valid fqme looks like.
    """
    if not isinstance(fqme, str):
        raise ValueError(f'fqme must be a string, got {fqme!r}; {_FQME_HELP}')
    return _unpack_fqme(fqme)


@functools.lru_cache(maxsize=4096)
def _unpack_fqme(fqme: str) -> tuple[str, str, str, str]:
    # cached: the order path splits the same few fqmes many times per
    # order (errors raise, so they are never cached)
    if not fqme:
        raise ValueError(f'empty fqme; {_FQME_HELP}')
    if any(c.isspace() for c in fqme):
        raise ValueError(f'fqme {fqme!r} contains whitespace; {_FQME_HELP}')
    tokens = fqme.lower().split('.')
    if len(tokens) < 2:
        raise ValueError(
            f'fqme {fqme!r} has no broker suffix; {_FQME_HELP}'
        )
    if len(tokens) > 4:
        raise ValueError(
            f'fqme {fqme!r} has {len(tokens)} parts (at most 4); {_FQME_HELP}'
        )
    if not all(tokens):
        raise ValueError(f'fqme {fqme!r} has an empty part; {_FQME_HELP}')
    pair, *middle, broker = tokens
    venue, suffix = (middle + ['', ''])[:2]
    return broker, pair, venue, suffix


def mk_fqme(broker: str, pair: str, venue: str = '', suffix: str = '') -> str:
    """Build an fqme from its parts (the inverse of `unpack_fqme()`).

    A `suffix` needs a `venue`: `pair.suffix.broker` would read back as a
    venue.
    """
    check_token(broker, 'broker', required=True)
    check_token(pair, 'pair', required=True)
    check_token(venue, 'venue', required=False)
    check_token(suffix, 'suffix', required=False)
    if suffix and not venue:
        raise ValueError(
            f'suffix {suffix!r} needs a venue: {pair}.{suffix}.{broker} '
            'would parse as venue'
        )
    return '.'.join(t for t in (pair, venue, suffix, broker) if t).lower()


def strip_broker(fqme: str, broker: str | None = None) -> str:
    """Return the broker-native key: `fqme` without its `.<broker>` suffix.

    Strips the last token only (never `str.replace`, which would also eat
    a pair or venue that happens to contain the broker name). If `broker`
    is given the fqme must belong to it.
    """
    fbroker, *_ = unpack_fqme(fqme)
    if broker is not None and fbroker != broker.lower():
        raise ValueError(
            f'fqme {fqme!r} belongs to broker {fbroker!r}, not {broker!r}'
        )
    return fqme.lower()[: -(len(fbroker) + 1)]
